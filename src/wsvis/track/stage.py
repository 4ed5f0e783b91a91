"""The track stage: predictions artifact (+ flow, depth) of one video -> tracks, as result files.

Outputs (``DESIGN.md``, "Artifacts", ``tracks/{method}/{tracker}.json``):

* YouTube-VIS results JSON: a list of dicts, one per track,
  ``{"video": name, "category_id": int, "score": float, "segmentations": [RLE
  dict (``counts`` str) or None per frame]}``. The per-video fragments written
  by :func:`track_video` are joined by :func:`merge_video_tracks`; the
  evaluation maps ``video`` names to ground-truth video ids.
* KITTI-MOTS txt (:func:`write_mots_txt`): one line per (frame, object),
  ``frame obj_id class_id height width rle`` with ``obj_id = class_id * 1000 +
  track index`` (Voigtlaender et al., CVPR 2019, the MOTS tools' format).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from wsvis.io.images import read_image
from wsvis.io.predictions import frame_predictions, fuse_instances, read_predictions
from wsvis.io.rle import decode_rle, encode_mask
from wsvis.io.store import atomic_file
from wsvis.track import make_tracker
from wsvis.track.common import Track

__all__ = [
    "tracks_to_size",
    "run_tracker",
    "tracks_to_results",
    "track_video",
    "write_tracks",
    "read_tracks",
    "write_mots_txt",
    "read_mots_txt",
    "merge_video_tracks",
]


def run_tracker(
    predictions_path: str | os.PathLike,
    *,
    tracker: str,
    options: Mapping[str, Any] | None = None,
    flow_path: str | os.PathLike | None = None,
    depth_path: str | os.PathLike | None = None,
    image_paths: Sequence[str | os.PathLike] | None = None,
) -> tuple[list[Track], dict[str, Any]]:
    """Read one video's artifacts and run a tracker: ``(tracks, prediction attrs)``.

    Args:
        predictions_path: ``predictions/{method}/{video}.zarr``.
        tracker: a key of :data:`wsvis.track.TRACKERS`; ``options`` its keyword options.
        flow_path: optional ``flow/{video}.zarr`` (gap 1 is used).
        depth_path: optional ``depth/{video}.zarr``.
        image_paths: optional frame files (T), for the ``unovost`` appearance cue.

    Raises:
        ArtifactError: a missing or incomplete artifact; KeyError: no gap-1 flow;
        ValueError: unknown tracker/option, or inputs that disagree in shape.
    """
    from wsvis.depth.stage import read_depth
    from wsvis.flow.stage import read_flow

    trk = make_tracker(tracker, **dict(options or {}))
    group, attrs = read_predictions(predictions_path)
    num = group["labels"].shape[0]
    predictions = [frame_predictions(group, t) for t in range(num)]
    flow = None
    if flow_path is not None:
        flow = {d: read_flow(flow_path, gap=1, direction=d) for d in ("forward", "backward")}
    depth = read_depth(depth_path) if depth_path is not None else None
    images = [read_image(p) for p in image_paths] if image_paths is not None else None
    return trk(predictions, flow=flow, depth=depth, images=images), attrs


def tracks_to_size(tracks: Sequence[Track], size: tuple[int, int]) -> list[Track]:
    """The tracks with every mask resized to ``size`` (H, W) pixels (:func:`wsvis.transforms.resize_masks`).

    Tracks are a run's final product, so they are written at the source frames'
    size: a run at a processing size (``dataset.process_size``) upsamples here,
    as YouTube-VIS / KITTI-MOTS results must match the annotations' resolution.
    Tracks already at ``size`` are returned as they are.
    """
    from dataclasses import replace

    from wsvis.transforms import resize_masks

    return [
        replace(tr, frames={t: (resize_masks(m, size), s) for t, (m, s) in tr.frames.items()}) for tr in tracks
    ]


def tracks_to_results(tracks: Sequence[Track], video: str, num_frames: int) -> list[dict]:
    """YouTube-VIS result dicts of one video's tracks (module docstring); frames without a mask get ``None``."""
    out = []
    for tr in tracks:
        segs = [encode_mask(tr.frames[t][0]) if t in tr.frames else None for t in range(num_frames)]
        out.append(
            {"video": video, "category_id": int(tr.category_id), "score": float(tr.score), "segmentations": segs}
        )
    return out


def track_video(
    predictions_path: str | os.PathLike,
    out_json: str | os.PathLike | None = None,
    *,
    tracker: str,
    options: Mapping[str, Any] | None = None,
    flow_path: str | os.PathLike | None = None,
    depth_path: str | os.PathLike | None = None,
    image_paths: Sequence[str | os.PathLike] | None = None,
    video: str | None = None,
) -> list[dict]:
    """Track one video and return (and, if ``out_json`` is given, write) its YouTube-VIS results.

    Args:
        predictions_path, tracker, options, flow_path, depth_path, image_paths: as :func:`run_tracker`.
        out_json: optional per-video fragment to write (atomically) with :func:`write_tracks`.
        video: the video name in the results (default: the predictions path's stem).

    Returns:
        One dict per track (module docstring), in track-id order.
    """
    tracks, _attrs = run_tracker(
        predictions_path,
        tracker=tracker,
        options=options,
        flow_path=flow_path,
        depth_path=depth_path,
        image_paths=image_paths,
    )
    group, _ = read_predictions(predictions_path)
    name = video if video is not None else Path(os.fspath(predictions_path)).name.removesuffix(".zarr")
    results = tracks_to_results(tracks, name, group["labels"].shape[0])
    if out_json is not None:
        write_tracks(results, out_json)
    return results


def write_tracks(results: Sequence[dict], out_json: str | os.PathLike) -> None:
    """Write a YouTube-VIS results list as JSON, atomically."""
    with atomic_file(out_json) as tmp:
        with open(tmp, "w") as f:
            json.dump(list(results), f)


def read_tracks(path: str | os.PathLike) -> list[dict]:
    """Read a YouTube-VIS results JSON (ValueError if it is not a list of result dicts)."""
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, list) or any(not isinstance(r, dict) or "segmentations" not in r for r in data):
        raise ValueError(f"{path}: not a YouTube-VIS results list")
    return data


def merge_video_tracks(paths: Sequence[str | os.PathLike], out: str | os.PathLike) -> list[dict]:
    """Concatenate per-video result fragments into one results JSON (atomic); returns the list.

    Raises:
        ValueError: a fragment is not a results list, or two fragments hold the same video.
    """
    merged: list[dict] = []
    owner: dict[str, str] = {}
    for p in paths:
        results = read_tracks(p)
        for v in {r.get("video") for r in results}:
            if v in owner:
                raise ValueError(f"video {v!r} appears in both {owner[v]} and {p}")
            owner[v] = os.fspath(p)
        merged.extend(results)
    write_tracks(merged, out)
    return merged


def write_mots_txt(tracks: Sequence[Track], out_txt: str | os.PathLike, frame_size: tuple[int, int]) -> None:
    """Write one video's tracks in KITTI-MOTS txt format, atomically.

    Each line: ``frame obj_id class_id height width rle`` where ``obj_id =
    class_id * 1000 + i`` for the i-th track of ``tracks`` (1-based),
    ``class_id`` the track's category id and ``rle`` the COCO compressed RLE
    string. MOTS requires non-overlapping masks in a frame, so a pixel
    claimed by several tracks goes to the track with the higher score (ties:
    earlier track); a mask left empty is not written. Lines are sorted by
    frame, then obj_id.

    Raises:
        ValueError: more than 999 tracks (obj_id would overflow into the next
            class), or a mask whose size differs from ``frame_size``.
    """
    if len(tracks) > 999:
        raise ValueError(f"KITTI-MOTS allows at most 999 tracks per class and video, got {len(tracks)}")
    h, w = (int(s) for s in frame_size)
    by_frame: dict[int, list[tuple[float, int, int, np.ndarray]]] = {}
    for i, tr in enumerate(tracks, 1):
        cls = int(tr.category_id)
        for t, (m, _s) in tr.frames.items():
            if m.shape != (h, w):
                raise ValueError(f"track {tr.track_id} frame {t}: mask {m.shape} differs from frame_size {(h, w)}")
            by_frame.setdefault(t, []).append((tr.score, i, cls, m))
    lines = []
    for t in sorted(by_frame):
        entries = by_frame[t]
        keep, visible = fuse_instances(np.stack([e[3] for e in entries]), [e[0] for e in entries], 0.0)
        rows = [(entries[k][2] * 1000 + entries[k][1], entries[k][2], m) for k, m in zip(keep, visible)]
        for obj, cls, m in sorted(rows, key=lambda r: r[0]):
            lines.append(f"{t} {obj} {cls} {h} {w} {encode_mask(m)['counts']}\n")
    with atomic_file(out_txt) as tmp:
        Path(tmp).write_text("".join(lines))


def read_mots_txt(path: str | os.PathLike) -> list[tuple[int, int, int, np.ndarray]]:
    """Read a KITTI-MOTS txt: a list of ``(frame, obj_id, class_id, mask (H, W) bool)``."""
    out = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        t, obj, cls, h, w, rle = line.split(" ", 5)
        mask = decode_rle({"size": [int(h), int(w)], "counts": rle.strip()}, int(h), int(w)).astype(bool)
        out.append((int(t), int(obj), int(cls), mask))
    return out
