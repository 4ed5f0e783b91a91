"""Monocular depth: the backend registry (TorchScript networks only; no default network) and the depth stage.

* :mod:`wsvis.depth.backends`: :data:`DEPTH_BACKENDS`, :func:`make_depth_backend`;
* :mod:`wsvis.depth.stage`: :func:`compute_video_depth` writes ``depth/{video}.zarr``,
  :func:`read_depth` opens its ``depth`` array.
"""

import lazy_loader

# Submodules load on first use (PEP 562): a job imports torch only if its stage needs it.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "backends": ["DEPTH_BACKENDS", "make_depth_backend"],
        "stage": ["compute_video_depth", "read_depth"],
    },
)
