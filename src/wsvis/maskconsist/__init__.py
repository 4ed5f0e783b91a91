"""MaskConsist (Liu et al., CVPR 2021, §3.3): Mask R-CNN trained with temporally consistent pseudo-labels.

* :mod:`~wsvis.maskconsist.matching` — intra-frame matching, inter-frame
  Hungarian matching of flow-warped masks, Algorithm 1, IoM-NMS (pure functions);
* :mod:`~wsvis.maskconsist.train` — Mask R-CNN / MaskConsist training (and self-training);
* :mod:`~wsvis.maskconsist.predict` — frame inference to the predictions artifact,
  predictions -> pseudo-labels for self-training.
"""

import lazy_loader

# Submodules load on first use (PEP 562): a job imports torch only if its stage needs it.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "matching": [
            "Instances", "expand_predictions", "iom", "iom_nms", "maskconsist_targets", "match_frames",
            "transfer_labels",
        ],
        "predict": ["predict_video", "predictions_to_pseudo"],
        "train": ["METHODS", "maskconsist_losses", "train_maskrcnn"],
    },
)
