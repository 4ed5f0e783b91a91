"""Monocular depth: the backend registry (TorchScript networks only; no default network) and the depth stage.

* :mod:`wsvis.depth.backends`: :data:`DEPTH_BACKENDS`, :func:`make_depth_backend`;
* :mod:`wsvis.depth.stage`: :func:`compute_video_depth` writes ``depth/{video}.zarr``,
  :func:`read_depth` opens its ``depth`` array.
"""

from wsvis.depth.backends import DEPTH_BACKENDS, make_depth_backend
from wsvis.depth.stage import compute_video_depth, read_depth

__all__ = ["DEPTH_BACKENDS", "make_depth_backend", "compute_video_depth", "read_depth"]
