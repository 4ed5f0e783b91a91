"""The flow stage: per-video forward and backward flow for each frame gap, as a Zarr artifact.

Artifact ``flow/{video}.zarr`` (see ``DESIGN.md``, "Artifacts"), for every gap δ:

* ``gap_<δ>/forward``: (T-δ, H, W, 2) float16, pixels, x then y;
  ``forward[t]`` is the flow frame t -> t+δ, on frame t's pixel grid;
* ``gap_<δ>/backward``: (T-δ, H, W, 2) float16, pixels, x then y;
  ``backward[t]`` is the flow frame t+δ -> t, on frame t+δ's pixel grid
  (the flow that :func:`wsvis.flow.ops.warp_mask` needs to carry masks of
  frame t onto frame t+δ).

Chunks are one flow field, ``(1, H, W, 2)``. A video with T <= δ has
zero-length arrays for that gap.

The float16 cast and the compressed write of each field run in a
:class:`wsvis.io.store.BackgroundWriter` thread, and the next frame is
decoded in another one, while the calling thread computes flow: done in
line they added about half of DIS's own time; overlapped, the stage takes
little more than DIS alone (``benchmarks/flow_speed.py``). Writes run one
at a time, so the background work uses at most about one core on top of the
backend's threads (about half a core for DIS at 854x480): the overlap needs
that core free.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, Sequence

import numpy as np
import zarr
from tqdm import tqdm

from wsvis.io.images import FrameError, read_image
from wsvis.io.store import DEFAULT_COMPRESSOR, ArtifactWriter, BackgroundWriter, open_artifact

__all__ = ["compute_video_flow", "read_flow", "frame_flow", "frame_flow_unreliable", "INDEX_CONVENTION", "WRITE_QUEUE"]

#: Flow fields that may wait for the background writer of
#: :func:`compute_video_flow` (a few, so that a slow write does not stall
#: DIS, without holding many 3.3 MB float32 fields in memory).
WRITE_QUEUE = 4

INDEX_CONVENTION = {
    "forward": "forward[t]: flow frame t -> t+gap, on frame t's pixel grid",
    "backward": "backward[t]: flow frame t+gap -> t, on frame t+gap's pixel grid",
}


def _check_gaps(gaps: Sequence[int]) -> list[int]:
    gaps = list(gaps)
    if not gaps:
        raise ValueError("flow.gaps: need at least one frame gap")
    for g in gaps:
        if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 1:
            raise ValueError(f"flow.gaps: every gap must be a positive int, got {g!r} in {gaps}")
    if len(set(gaps)) != len(gaps):
        raise ValueError(f"flow.gaps: repeated gap in {gaps}")
    return sorted(int(g) for g in gaps)


def _decode_ahead(paths: Sequence[str], reader: ThreadPoolExecutor | None) -> Iterator[np.ndarray]:
    """Yield the decoded frames of ``paths`` in order, (H, W, 3) uint8 RGB.

    With a ``reader``, frame i+1 is decoded in its thread while the caller
    works on frame i (``cv2.imdecode`` releases the GIL); without one, each
    frame is decoded when asked for. Errors of :func:`read_image` are raised
    at the frame they concern.
    """
    if reader is None:
        yield from (read_image(p) for p in paths)
        return
    ahead = reader.submit(read_image, paths[0]) if paths else None
    for i in range(len(paths)):
        img = ahead.result()
        ahead = reader.submit(read_image, paths[i + 1]) if i + 1 < len(paths) else None
        yield img


def compute_video_flow(
    images: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    backend: str = "dis",
    gaps: Sequence[int] = (1,),
    backend_options: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    compressor: str = DEFAULT_COMPRESSOR,
    progress: bool = True,
    overlap: bool = True,
) -> None:
    """Compute forward and backward flow of one video for every gap and write the flow artifact.

    Args:
        images: the video's frame files in temporal order (T paths).
        out: the artifact path (``results/{dataset}/flow/{video}.zarr``).
        backend: a key of :data:`wsvis.flow.backends.FLOW_BACKENDS`.
        gaps: frame gaps δ (positive ints); one array pair per gap.
        backend_options: keyword options of the backend.
        params: the whole ``flow`` config section, stored in attrs ``params``.
        compressor: a key of :data:`wsvis.io.store.COMPRESSORS`.
        progress: show a tqdm bar over frames.
        overlap: decode the next frame and cast, compress and write finished
            flow fields in background threads while the calling thread
            computes flow (at most :data:`WRITE_QUEUE` fields wait, each an
            (H, W, 2) float32 array: 3.3 MB at 854x480). ``False`` does all
            of it in the calling thread, one step after the other (the
            stage before the overlap: the baseline of
            ``benchmarks/flow_speed.py``); the artifact is the same.

    Writes ``gap_<δ>/forward`` and ``gap_<δ>/backward``, each (T-δ, H, W, 2)
    float16 pixels (module docstring gives the index convention), with group
    attrs ``backend``, ``backend_options``, ``gaps``, ``params``,
    ``frame_size`` (H, W), ``units``, ``num_frames`` and ``index_convention``.
    Written atomically: on any error, in the calling thread or a background
    one, nothing appears at ``out`` and the error propagates.

    Each frame is decoded once: a cache holds the last ``max(gaps)`` frames.

    Raises:
        KeyError: unknown ``compressor``.
        ValueError: a bad gap (message names ``flow.gaps``), an unknown
            backend or option, or an empty ``images`` list.
        FrameError: a frame is unreadable or differs in size from frame 0.
        OSError: and any other error of the Zarr write, re-raised from the
            writer thread.
    """
    gaps = _check_gaps(gaps)
    images = [os.fspath(p) for p in images]
    if not images:
        raise ValueError("compute_video_flow: no frames given")
    backend_options = dict(backend_options or {})
    # Imported here: the backends import torch, which readers of flow (trackers, baselines) do not need.
    from wsvis.flow.backends import make_flow_backend

    flow_fn = make_flow_backend(backend, **backend_options)
    first = read_image(images[0])
    h, w = first.shape[:2]
    num = len(images)
    units = {f"gap_{g}/{d}": "pixels" for g in gaps for d in ("forward", "backward")}
    attrs = {
        "backend": backend,
        "backend_options": backend_options,
        "gaps": gaps,
        "num_frames": num,
        "index_convention": INDEX_CONVENTION,
    }
    # Entered in this order, the frame reader and then the background writer
    # are joined (and the writer's errors raised) before ArtifactWriter
    # renames or deletes the group. An executor starts its thread only when
    # given work, so overlap=False starts none.
    with ArtifactWriter(
        out, stage="flow", params=params, frame_size=(h, w), units=units, attrs=attrs, compressor=compressor
    ) as writer, BackgroundWriter(WRITE_QUEUE if overlap else 0) as fields, ThreadPoolExecutor(
        1, thread_name_prefix="wsvis-frame-reader"
    ) as reader:
        arrays = {}
        for g in gaps:
            n = max(num - g, 0)
            arrays[g] = tuple(
                writer.create_array(f"gap_{g}/{d}", shape=(n, h, w, 2), dtype="float16") for d in ("forward", "backward")
            )
        frames = _decode_ahead(images[1:], reader if overlap else None)
        cache: dict[int, np.ndarray] = {0: first}
        bar = tqdm(range(num), desc=f"flow {os.path.basename(os.fspath(out))}", unit="frame", disable=not progress)
        for t in bar:
            # frame t is the later frame of the pairs (t - g, t) for every gap g
            if t > 0:
                img = next(frames)
                if img.shape != first.shape:
                    raise FrameError(f"{images[t]}: frame size {img.shape[:2]} differs from {images[0]} {(h, w)}")
                cache[t] = img
            for g in gaps:
                s = t - g
                if s < 0:
                    continue
                fwd, bwd = arrays[g]
                fields.put(fwd, s, flow_fn(cache[s], cache[t]))  # cast to float16 in the writer
                fields.put(bwd, s, flow_fn(cache[t], cache[s]))
            cache.pop(t - gaps[-1], None)


def read_flow(path: str | os.PathLike, gap: int = 1, direction: str = "forward") -> zarr.Array:
    """Open one flow array of a flow artifact (read-only, lazily loaded).

    Args:
        path: a flow artifact written by :func:`compute_video_flow`.
        gap: the frame gap δ.
        direction: ``"forward"`` (``[t]``: frame t -> t+δ, on frame t's grid) or
            ``"backward"`` (``[t]``: frame t+δ -> t, on frame t+δ's grid).

    Returns:
        A zarr array of shape (T-δ, H, W, 2), dtype float16, in pixels, x then y.

    Raises:
        ArtifactError: missing, incomplete or non-flow artifact.
        KeyError: the artifact has no such gap (the message lists the gaps it has).
        ValueError: bad ``direction``.
    """
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    group = open_artifact(path, "flow")
    available = list(group.attrs.get("gaps", []))
    if gap not in available:
        raise KeyError(f"{path}: no flow for gap {gap}; available gaps: {available}")
    return group[f"gap_{gap}/{direction}"]


def frame_flow(forward, backward, t: int, num_frames: int, *, negate_backward: bool = False) -> np.ndarray | None:
    """The gap-1 flow of frame t: ``forward[t]``, or for the last frame ``backward[T-2]``
    (negated when ``negate_backward``, an approximation of its forward flow); None for a one-frame video.

    Args:
        forward, backward: the gap-1 arrays of a flow artifact (:func:`read_flow`), (T-1, H, W, 2).
        t: frame index, 0 <= t < num_frames.
        num_frames: T.
        negate_backward: negate the last frame's backward flow.

    Returns:
        (H, W, 2) float32 pixels or None.
    """
    if t < num_frames - 1:
        return np.asarray(forward[t], np.float32)
    if num_frames < 2:
        return None
    f = np.asarray(backward[num_frames - 2], np.float32)
    return -f if negate_backward else f


def frame_flow_unreliable(forward, backward, t: int, num_frames: int) -> np.ndarray | None:
    """Pixels of frame t whose gap-1 flow fails the forward-backward check (:func:`wsvis.flow.ops.fb_consistency`).

    Frame t < T-1 is checked with ``forward[t]`` against ``backward[t]``; the last frame with
    ``backward[T-2]`` (its flow back to T-2) against ``forward[T-2]``, so every frame is checked on
    its own grid. Occluded, disoccluded and out-of-view pixels fail, and so do pixels where DIS
    carries a moving object's flow into textureless background beside it (the sand between a
    horse's legs), which the return check does not confirm.

    Args:
        forward, backward: the gap-1 arrays of a flow artifact (:func:`read_flow`), (T-1, H, W, 2) pixels.
        t: frame index, 0 <= t < num_frames.
        num_frames: T.

    Returns:
        (H, W) bool, True = unreliable; None for a one-frame video.
    """
    from wsvis.flow.ops import fb_consistency  # torch is imported there; the flow stage's readers do not need it

    if num_frames < 2:
        return None
    if t < num_frames - 1:
        return fb_consistency(np.asarray(forward[t], np.float32), np.asarray(backward[t], np.float32))
    return fb_consistency(np.asarray(backward[t - 1], np.float32), np.asarray(forward[t - 1], np.float32))
