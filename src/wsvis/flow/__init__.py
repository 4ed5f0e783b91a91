"""Optical flow: backends (DIS, Farnebäck, RAFT), flow operations, and the flow stage.

* :mod:`wsvis.flow.backends`: :data:`FLOW_BACKENDS` registry, :func:`make_flow_backend`;
* :mod:`wsvis.flow.ops`: :func:`backward_warp`, :func:`warp_mask` (MaskConsist A.2),
  :func:`fb_consistency` (Sundaram et al. 2010), :func:`flow_to_color` (Baker et al. 2011),
  :func:`end_point_error`;
* :mod:`wsvis.flow.stage`: :func:`compute_video_flow` writes ``flow/{video}.zarr``,
  :func:`read_flow` opens one of its arrays.
"""

from wsvis.flow.backends import FLOW_BACKENDS, make_flow_backend
from wsvis.flow.ops import (
    backward_warp,
    end_point_error,
    fb_consistency,
    flow_to_color,
    make_color_wheel,
    masks_to_boxes,
    warp_mask,
)
from wsvis.flow.stage import compute_video_flow, read_flow

__all__ = [
    "FLOW_BACKENDS",
    "make_flow_backend",
    "backward_warp",
    "warp_mask",
    "masks_to_boxes",
    "fb_consistency",
    "flow_to_color",
    "make_color_wheel",
    "end_point_error",
    "compute_video_flow",
    "read_flow",
]
