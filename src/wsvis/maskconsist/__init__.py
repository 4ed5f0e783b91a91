"""MaskConsist (Liu et al., CVPR 2021, §3.3): Mask R-CNN trained with temporally consistent pseudo-labels.

* :mod:`~wsvis.maskconsist.matching` — intra-frame matching, inter-frame
  Hungarian matching of flow-warped masks, Algorithm 1, IoM-NMS (pure functions);
* :mod:`~wsvis.maskconsist.train` — Mask R-CNN / MaskConsist training (and self-training);
* :mod:`~wsvis.maskconsist.predict` — frame inference to the predictions artifact,
  predictions -> pseudo-labels for self-training.
"""

from wsvis.maskconsist.matching import (
    Instances,
    expand_predictions,
    iom,
    iom_nms,
    maskconsist_targets,
    match_frames,
    transfer_labels,
)
from wsvis.maskconsist.predict import predict_video, predictions_to_pseudo
from wsvis.maskconsist.train import METHODS, maskconsist_losses, train_maskrcnn

__all__ = [
    "Instances",
    "iom",
    "iom_nms",
    "expand_predictions",
    "match_frames",
    "transfer_labels",
    "maskconsist_targets",
    "maskconsist_losses",
    "train_maskrcnn",
    "predict_video",
    "predictions_to_pseudo",
    "METHODS",
]
