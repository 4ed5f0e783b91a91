"""Class activation maps: IRN's CAM classifier, multi-scale CAMs, flow-amplified CAMs, the CAM floor.

* :mod:`wsvis.cam.net`: :class:`CAMNet` (Ahn et al., CVPR 2019);
* :mod:`wsvis.cam.train`: :func:`train_cam` (resumable), :func:`load_cam_model`;
* :mod:`wsvis.cam.infer`: :func:`make_cams` (IRN ``make_cam``);
* :mod:`wsvis.cam.fcam`: :func:`flow_amplified_cam` (flowIRN Eq. 2), :data:`FCAM_PRESETS`;
* :mod:`wsvis.cam.stage`: :func:`compute_video_cams` writes ``cam/{video}.zarr``, :func:`read_cams`;
* :mod:`wsvis.cam.floor`: :func:`cam_floor_instances`, :func:`compute_cam_floor` (``pseudo/cam/{video}.zarr``).
"""

from wsvis.cam.fcam import FCAM_PRESETS, flow_amplified_cam, flow_magnitude
from wsvis.cam.floor import cam_floor_instances, compute_cam_floor, upsample_cam
from wsvis.cam.infer import DEFAULT_SCALES, make_cams, strided_size
from wsvis.cam.net import CAMNet
from wsvis.cam.stage import CAM_STRIDE, compute_video_cams, read_cams
from wsvis.cam.train import load_cam_model, multi_hot, train_cam

__all__ = [
    "CAMNet",
    "train_cam",
    "load_cam_model",
    "multi_hot",
    "make_cams",
    "strided_size",
    "DEFAULT_SCALES",
    "flow_amplified_cam",
    "flow_magnitude",
    "FCAM_PRESETS",
    "compute_video_cams",
    "read_cams",
    "CAM_STRIDE",
    "cam_floor_instances",
    "compute_cam_floor",
    "upsample_cam",
]
