"""Optical flow: backends (DIS, Farnebäck, RAFT), flow operations, and the flow stage.

* :mod:`wsvis.flow.backends`: :data:`FLOW_BACKENDS` registry, :func:`make_flow_backend`;
* :mod:`wsvis.flow.ops`: :func:`backward_warp`, :func:`warp_mask` (MaskConsist A.2),
  :func:`fb_consistency` (Sundaram et al. 2010), :func:`flow_to_color` (Baker et al. 2011),
  :func:`end_point_error`;
* :mod:`wsvis.flow.stage`: :func:`compute_video_flow` writes ``flow/{video}.zarr``,
  :func:`read_flow` opens one of its arrays.
"""

import lazy_loader

# Submodules load on first use (PEP 562): a job imports torch only if its stage needs it.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "backends": ["FLOW_BACKENDS", "make_flow_backend"],
        "ops": [
            "backward_warp", "end_point_error", "fb_consistency", "flow_to_color", "make_color_wheel", "masks_to_boxes",
            "warp_mask",
        ],
        "stage": ["compute_video_flow", "read_flow"],
    },
)
