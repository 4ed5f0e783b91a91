"""The manifest table and YouTube-VIS ground truth built from :class:`~wsvis.io.datasets.VideoRecord`.

Per video, :func:`ingest_video` writes a parquet table (one row per frame) and
a ground-truth JSON fragment; :func:`merge_manifest` joins them into
``manifest.parquet`` and ``gt.json`` (YouTube-VIS format, Yang et al.,
"Video Instance Segmentation", ICCV 2019), as ``../shared/DESIGN.md``
("Artifacts") describes.

Box convention: ``boxes`` in the manifest are ``[x1, y1, x2, y2]`` float
pixels with x2/y2 exclusive (last pixel index + 1), so a 1-pixel mask at
(0, 0) has box ``[0, 0, 1, 1]``; gt ``bboxes`` are COCO ``[x, y, w, h]`` with
the same extent (w = x2 - x1). Masks are COCO RLE (pycocotools) with
``counts`` as a str.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from wsvis import __version__
from wsvis.io.datasets import VideoRecord
from wsvis.io.rle import decode_rle, encode_mask
from wsvis.io.store import atomic_file

__all__ = [
    "MANIFEST_SCHEMA",
    "video_table",
    "video_gt",
    "ingest_video",
    "merge_manifest",
    "read_manifest",
    "read_video_table",
    "load_gt_masks",
    "mask_boxes",
    "to_processing_size",
]

#: Arrow schema of the manifest and of every per-video table.
MANIFEST_SCHEMA = pa.schema(
    [
        ("video", pa.string()),
        ("frame", pa.int64()),
        ("image", pa.string()),
        ("source_image", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("source_width", pa.int64()),
        ("source_height", pa.int64()),
        ("split", pa.string()),
        ("annotated", pa.bool_()),
        ("tags", pa.list_(pa.string())),
        ("instance_ids", pa.list_(pa.int64())),
        ("box_classes", pa.list_(pa.string())),
        ("boxes", pa.list_(pa.list_(pa.float64()))),
    ]
)
_LIST_COLUMNS = ("tags", "instance_ids", "box_classes", "boxes")


def mask_boxes(mask: np.ndarray, ids: list[int]) -> list[list[float]]:
    """Boxes of the instances ``ids`` in an (H, W) instance-id map.

    Returns:
        One ``[x1, y1, x2, y2]`` float box per id, pixels, x2/y2 exclusive
        (a 1-pixel mask at (0, 0) gives ``[0, 0, 1, 1]``). Every id must be present.
    """
    boxes = []
    for i in ids:
        ys, xs = np.nonzero(mask == i)
        boxes.append([float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)])
    return boxes


def _category_id(record: VideoRecord, iid: int, categories: list[str]) -> int:
    cls = record.instance_classes.get(iid)
    if cls is None or cls not in categories:
        raise ValueError(
            f"video {record.name!r}: instance {iid} has class {cls!r}, which is not in the class list {categories}"
        )
    return categories.index(cls) + 1


def video_table(record: VideoRecord, categories: list[str], split: str) -> pd.DataFrame:
    """One row per frame of ``record`` (columns of :data:`MANIFEST_SCHEMA`).

    Args:
        record: a read video.
        categories: the dataset's class list; every instance class must be in it.
        split: split name stored in every row (``"train"``, ``"val"``...).

    Returns:
        DataFrame with ``video`` str, ``frame`` int64 (0-based), ``image`` str
        path, ``source_image`` str path of the source frame (``image`` until
        :func:`to_processing_size` points ``image`` at a resized copy), ``width``/``height`` int64 pixels (of ``image``: the processing size
        after :func:`to_processing_size`), ``source_width``/``source_height`` int64
        pixels of the source frames (the ground truth's size), ``split`` str, ``annotated``
        bool, and per frame the instances present (non-empty mask), in instance
        id order: ``instance_ids`` list[int], ``box_classes`` list[str],
        ``boxes`` list of ``[x1, y1, x2, y2]`` float pixels (x2/y2 exclusive),
        ``tags`` sorted unique class names; list columns hold Python lists.
        Unannotated frames have empty lists (not None); ``annotated`` tells
        them from frames annotated with no object.

    Raises:
        ValueError: an instance whose class is not in ``categories`` (names video,
            instance, class and list); a mask whose size differs from the frames.
    """
    rows = []
    for t, image in enumerate(record.images):
        annotated = bool(record.annotated[t]) if record.annotated else False
        mask = record.masks[t] if (record.masks is not None and annotated) else None
        ids: list[int] = []
        boxes: list[list[float]] = []
        classes: list[str] = []
        if mask is not None:
            if mask.shape != (record.height, record.width):
                raise ValueError(f"video {record.name!r} frame {t}: mask shape {mask.shape} != frame size")
            ids = [int(i) for i in np.unique(mask) if i]
            for i in ids:
                _category_id(record, i, categories)
            classes = [record.instance_classes[i] for i in ids]
            boxes = mask_boxes(mask, ids)
        rows.append(
            {
                "video": record.name,
                "frame": t,
                "image": str(image),
                "source_image": str(image),
                "width": record.width,
                "height": record.height,
                "source_width": record.width,
                "source_height": record.height,
                "split": split,
                "annotated": annotated,
                "tags": sorted(set(classes)),
                "instance_ids": ids,
                "box_classes": classes,
                "boxes": boxes,
            }
        )
    df = pd.DataFrame(rows, columns=MANIFEST_SCHEMA.names)
    ints = dict.fromkeys(("frame", "width", "height", "source_width", "source_height"), "int64")
    return df.astype({**ints, "annotated": bool})


def video_gt(record: VideoRecord, categories: list[str]) -> dict:
    """YouTube-VIS ground-truth fragment of one video.

    Returns:
        ``{"name", "width", "height", "length", "file_names", "annotations"}``.
        ``file_names`` are ``<video>/<image file name>`` (YouTube-VIS
        convention: relative to the folder holding the video folders).
        ``annotations``: one per instance id present in the masks (id order),
        ``{"instance_id", "category_id" (index in categories + 1),
        "segmentations": [RLE {"size": [H, W], "counts": str} or None per frame],
        "areas": [int pixels or None], "bboxes": [[x, y, w, h] float pixels or None]}``.
        A video without masks has ``annotations`` [].

    Raises:
        ValueError: an instance class not in ``categories``.
    """
    out = {
        "name": record.name,
        "width": int(record.width),
        "height": int(record.height),
        "length": len(record.images),
        "file_names": [f"{record.name}/{Path(p).name}" for p in record.images],
        "annotations": [],
    }
    if record.masks is None:
        return out
    masks = [m if (m is not None and record.annotated[t]) else None for t, m in enumerate(record.masks)]
    ids = sorted({int(i) for m in masks if m is not None for i in np.unique(m) if i})
    for iid in ids:
        segs, areas, bboxes = [], [], []
        for m in masks:
            binary = None if m is None else (m == iid)
            if binary is None or not binary.any():
                segs.append(None)
                areas.append(None)
                bboxes.append(None)
                continue
            rle = encode_mask(binary)
            segs.append(rle)
            areas.append(int(binary.sum()))
            x1, y1, x2, y2 = mask_boxes(binary.astype(np.uint8), [1])[0]
            bboxes.append([x1, y1, x2 - x1, y2 - y1])
        out["annotations"].append(
            {
                "instance_id": iid,
                "category_id": _category_id(record, iid, categories),
                "segmentations": segs,
                "areas": areas,
                "bboxes": bboxes,
            }
        )
    return out


def to_processing_size(df: pd.DataFrame, longest: int | None, frames_dir: str | os.PathLike) -> pd.DataFrame:
    """Resize a video's frames to the processing size (``dataset.process_size``) and update its table.

    Frames whose longest side is above ``longest`` pixels are resized with
    ``cv2.INTER_AREA`` (aspect kept, :func:`wsvis.transforms.processing_size`)
    and written as PNG (lossless: later stages see exactly these pixels) to
    ``frames_dir/<h>x<w>/``; ``image``, ``width``, ``height`` then describe
    them and ``boxes`` are scaled by the same factors. ``source_image``,
    ``source_width`` / ``source_height`` (and the gt) keep the source frame.

    Args:
        df: a table of :func:`video_table` (one video, source size).
        longest: processing size in pixels, or None (the table is returned unchanged).
        frames_dir: where the resized frames go (``results/<dataset>/frames/<video>``).

    Returns:
        The updated table (a copy).

    Raises:
        FrameError: a frame that cannot be read (names the file).
    """
    import cv2

    from wsvis.io.images import read_image
    from wsvis.transforms import processing_size

    if df.empty or longest is None:
        return df
    H, W = int(df["height"].iloc[0]), int(df["width"].iloc[0])
    h, w = processing_size(H, W, longest)
    if (h, w) == (H, W):
        return df
    out_dir = Path(frames_dir) / f"{h}x{w}"
    out_dir.mkdir(parents=True, exist_ok=True)
    df = df.copy()
    images = []
    for image in df["image"]:
        small = cv2.resize(read_image(image), (w, h), interpolation=cv2.INTER_AREA)
        path = out_dir / f"{Path(image).stem}.png"
        with atomic_file(path) as tmp:
            if not cv2.imwrite(str(tmp), small[..., ::-1]):
                raise OSError(f"{path}: cannot write the resized frame")
        images.append(str(path))
    sx, sy = w / W, h / H
    df["image"] = images
    df["width"], df["height"] = w, h
    df["boxes"] = [[[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in boxes] for boxes in df["boxes"]]
    return df


def _write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    table = pa.Table.from_pandas(df[MANIFEST_SCHEMA.names], schema=MANIFEST_SCHEMA, preserve_index=False)
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp)


def _write_json(obj: dict, path: str | os.PathLike) -> None:
    with atomic_file(path) as tmp:
        Path(tmp).write_text(json.dumps(obj))


def ingest_video(
    reader,
    video: str,
    out_table: str | os.PathLike,
    out_gt: str | os.PathLike,
    *,
    split: str = "train",
    frames_dir: str | os.PathLike | None = None,
    process_size: int | None = None,
) -> None:
    """Read ``video`` with ``reader`` and write its parquet table and gt fragment atomically.

    The entry point the ingest rule calls once per video. ``frames_dir`` is
    where a :class:`~wsvis.io.datasets.VideoFileReader` writes decoded frames
    and where frames resized to ``process_size`` (longest side, pixels;
    :func:`to_processing_size`) go; the gt fragment keeps the source size.

    Raises:
        whatever ``reader.read_video`` raises (FrameError / ValueError naming
        the file, video or frame); ValueError from :func:`video_table`.
    """
    record = reader.read_video(video, frames_dir=None if frames_dir is None else str(frames_dir))
    categories = reader.categories()
    df = video_table(record, categories, split)
    if process_size is not None:
        if frames_dir is None:
            raise ValueError(f"video {video!r}: a processing size needs frames_dir for the resized frames")
        df = to_processing_size(df, process_size, frames_dir)
    gt = video_gt(record, categories)
    _write_table(df, out_table)
    _write_json(gt, out_gt)


def merge_manifest(
    tables: list[str | os.PathLike],
    gts: list[str | os.PathLike],
    categories: list[str],
    out_manifest: str | os.PathLike,
    out_gt: str | os.PathLike,
) -> None:
    """Join per-video tables and gt fragments into ``manifest.parquet`` and ``gt.json``.

    The manifest is sorted by (video, frame). ``gt.json`` is YouTube-VIS:
    ``{"info", "videos": [{"id", "name", "width", "height", "length",
    "file_names"}], "categories": [{"id", "name"}], "annotations": [{"id",
    "video_id", "category_id", "segmentations", "areas", "bboxes", "iscrowd": 0,
    "width", "height", "length"}]}`` with video ids 1..N in sorted name order and
    annotation ids 1..M. Videos without annotation are listed in ``videos`` and
    add no annotation; when no video has any, ``annotations`` is [] and the file
    is still valid YouTube-VIS JSON.

    Raises:
        ValueError: no tables; a video in two tables or two fragments; the
            videos of the tables and of the fragments differ; a fragment's
            category id outside ``categories`` (names the file).
    """
    if not tables:
        raise ValueError("merge_manifest: no per-video tables given")
    frames = [read_video_table(p) for p in tables]
    seen: dict[str, str] = {}
    for p, df in zip(tables, frames):
        for v in df["video"].unique():
            if v in seen:
                raise ValueError(f"video {v!r} appears in two tables: {seen[v]} and {p}")
            seen[v] = str(p)
    manifest = pd.concat(frames, ignore_index=True).sort_values(["video", "frame"], kind="stable")
    manifest = manifest.reset_index(drop=True)

    fragments: dict[str, dict] = {}
    for p in gts:
        frag = json.loads(Path(p).read_text())
        if frag["name"] in fragments:
            raise ValueError(f"video {frag['name']!r} appears in two gt fragments (second: {p})")
        for ann in frag["annotations"]:
            if not 1 <= int(ann["category_id"]) <= len(categories):
                raise ValueError(
                    f"{p}: video {frag['name']!r} instance {ann.get('instance_id')} has category id "
                    f"{ann['category_id']}, outside the class list {categories}"
                )
        fragments[frag["name"]] = frag
    if set(fragments) != set(seen):
        raise ValueError(
            f"merge_manifest: videos differ between tables and gt fragments: only in tables "
            f"{sorted(set(seen) - set(fragments))}, only in gt {sorted(set(fragments) - set(seen))}"
        )

    videos, annotations = [], []
    for vid, name in enumerate(sorted(fragments), 1):
        frag = fragments[name]
        size = {"width": frag["width"], "height": frag["height"], "length": frag["length"]}
        videos.append({"id": vid, "name": name, **size, "file_names": frag["file_names"]})
        for ann in frag["annotations"]:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "video_id": vid,
                    "category_id": int(ann["category_id"]),
                    "instance_id": int(ann["instance_id"]),
                    "segmentations": ann["segmentations"],
                    "areas": ann["areas"],
                    "bboxes": ann["bboxes"],
                    "iscrowd": 0,
                    **size,
                }
            )
    gt = {
        "info": {"description": "wsvis ground truth (YouTube-VIS format)", "version": __version__},
        "videos": videos,
        "categories": [{"id": i + 1, "name": c} for i, c in enumerate(categories)],
        "annotations": annotations,
    }
    _write_table(manifest, out_manifest)
    _write_json(gt, out_gt)


def read_video_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a per-video parquet table; list columns come back as Python lists."""
    table = pq.read_table(path)
    df = table.drop_columns([c for c in _LIST_COLUMNS if c in table.column_names]).to_pandas()
    for c in _LIST_COLUMNS:
        if c in table.column_names:
            df[c] = table.column(c).to_pylist()
    return df[[c for c in table.column_names]]


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``manifest.parquet`` (columns of :data:`MANIFEST_SCHEMA`, list columns as Python lists)."""
    return read_video_table(path)


def load_gt_masks(gt: dict, video_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode the ground truth of one video back to dense masks.

    Args:
        gt: a ``gt.json`` dict (from :func:`merge_manifest`) or a per-video
            fragment (from :func:`video_gt`).
        video_name: the video.

    Returns:
        ``(masks, category_ids)``: masks (T, K, H, W) bool, K annotations in
        gt order (empty frames all False); category_ids (K,) int64.

    Raises:
        KeyError: the video is not in ``gt`` (names it and the available videos).
    """
    if "videos" in gt:
        byname = {v["name"]: v for v in gt["videos"]}
        if video_name not in byname:
            raise KeyError(f"video {video_name!r} not in gt (videos: {sorted(byname)})")
        video = byname[video_name]
        anns = [a for a in gt["annotations"] if a["video_id"] == video["id"]]
    else:
        if gt.get("name") != video_name:
            raise KeyError(f"video {video_name!r} not in gt fragment of {gt.get('name')!r}")
        video, anns = gt, gt["annotations"]
    t, h, w = int(video["length"]), int(video["height"]), int(video["width"])
    masks = np.zeros((t, len(anns), h, w), bool)
    for k, ann in enumerate(anns):
        for f, rle in enumerate(ann["segmentations"]):
            if rle:
                masks[f, k] = decode_rle(rle, h, w).astype(bool)
    return masks, np.array([int(a["category_id"]) for a in anns], dtype=np.int64)
