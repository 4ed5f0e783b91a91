"""Class activation maps: IRN's CAM classifier, multi-scale CAMs, flow-amplified CAMs, the CAM floor.

* :mod:`wsvis.cam.net`: :class:`CAMNet` (Ahn et al., CVPR 2019);
* :mod:`wsvis.cam.train`: :func:`train_cam` (resumable), :func:`load_cam_model`;
* :mod:`wsvis.cam.infer`: :func:`make_cams` (IRN ``make_cam``);
* :mod:`wsvis.cam.fcam`: :func:`flow_amplified_cam` (flowIRN Eq. 2), :data:`FCAM_PRESETS`;
* :mod:`wsvis.cam.stage`: :func:`compute_video_cams` writes ``cam/{video}.zarr``, :func:`read_cams`;
* :mod:`wsvis.cam.floor`: :func:`cam_floor_instances`, :func:`compute_cam_floor` (``pseudo/cam/{video}.zarr``).
"""

import lazy_loader

# Submodules load on first use (PEP 562): a job imports torch only if its stage needs it.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "fcam": ["FCAM_PRESETS", "flow_amplified_cam", "flow_magnitude"],
        "floor": ["cam_floor_instances", "compute_cam_floor", "upsample_cam"],
        "infer": ["DEFAULT_SCALES", "make_cams", "strided_size"],
        "net": ["CAMNet"],
        "stage": ["CAM_STRIDE", "compute_video_cams", "read_cams"],
        "train": ["load_cam_model", "multi_hot", "train_cam"],
    },
)
