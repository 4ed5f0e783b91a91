"""The depth stage: per-frame monocular relative inverse depth of one video, as a Zarr artifact.

Artifact ``depth/{video}.zarr`` (see ``DESIGN.md``, "Artifacts"): array
``depth`` of shape (T, H, W), float16, relative inverse depth (larger =
nearer; scale and shift are arbitrary and may differ between frames),
chunked one frame per chunk.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import zarr
from tqdm import tqdm

from wsvis.io.images import FrameError, read_image
from wsvis.io.store import DEFAULT_COMPRESSOR, ArtifactWriter, open_artifact

__all__ = ["compute_video_depth", "read_depth", "DEPTH_UNITS"]

DEPTH_UNITS = "relative inverse depth"


def compute_video_depth(
    images: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    backend: str = "torchscript",
    backend_options: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    compressor: str = DEFAULT_COMPRESSOR,
    progress: bool = True,
) -> None:
    """Predict depth for every frame of one video and write the depth artifact.

    Args:
        images: the video's frame files in temporal order (T paths).
        out: the artifact path (``results/{dataset}/depth/{video}.zarr``).
        backend: a key of :data:`wsvis.depth.backends.DEPTH_BACKENDS`.
        backend_options: keyword options of the backend (``checkpoint`` is
            required for ``"torchscript"``).
        params: the whole ``depth`` config section, stored in attrs ``params``.
        compressor: a key of :data:`wsvis.io.store.COMPRESSORS`.
        progress: show a tqdm bar over frames.

    Writes ``depth`` (T, H, W) float16 relative inverse depth, with group
    attrs ``backend``, ``backend_options``, ``params``, ``frame_size`` (H, W),
    ``units`` and ``num_frames``. Written atomically: on any error nothing
    appears at ``out``.

    Raises:
        KeyError: unknown ``compressor``.
        ValueError: unknown backend or option, no checkpoint, or no frames.
        FileNotFoundError: the checkpoint is missing.
        FrameError: a frame is unreadable or differs in size from frame 0.
    """
    images = [os.fspath(p) for p in images]
    if not images:
        raise ValueError("compute_video_depth: no frames given")
    backend_options = dict(backend_options or {})
    # Imported here: the backends import torch, which readers of depth (trackers) do not need.
    from wsvis.depth.backends import make_depth_backend

    depth_fn = make_depth_backend(backend, **backend_options)
    first = read_image(images[0])
    h, w = first.shape[:2]
    attrs = {"backend": backend, "backend_options": backend_options, "num_frames": len(images)}
    with ArtifactWriter(
        out,
        stage="depth",
        params=params,
        frame_size=(h, w),
        units={"depth": DEPTH_UNITS},
        attrs=attrs,
        compressor=compressor,
    ) as writer:
        depth = writer.create_array("depth", shape=(len(images), h, w), dtype="float16")
        bar = tqdm(range(len(images)), desc=f"depth {os.path.basename(os.fspath(out))}", unit="frame", disable=not progress)
        for t in bar:
            img = first if t == 0 else read_image(images[t])
            if img.shape != first.shape:
                raise FrameError(f"{images[t]}: frame size {img.shape[:2]} differs from {images[0]} {(h, w)}")
            depth[t] = depth_fn(img).astype(np.float16)


def read_depth(path: str | os.PathLike) -> zarr.Array:
    """Open the ``depth`` array of a depth artifact (read-only, lazily loaded).

    Returns:
        A zarr array of shape (T, H, W), dtype float16, relative inverse depth.

    Raises:
        ArtifactError: missing, incomplete or non-depth artifact.
    """
    return open_artifact(path, "depth")["depth"]
