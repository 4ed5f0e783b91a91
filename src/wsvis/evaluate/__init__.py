"""Evaluation: frame-level COCO mask AP and pseudo-label quality.

* :mod:`wsvis.evaluate.coco`: :func:`frame_coco_gt` (YouTube-VIS gt -> per-frame
  COCO), :func:`coco_segm_eval` (pycocotools ``COCOeval`` segm: AP, AP50, AP75),
  :func:`mask_detections` (masks -> COCO results);
* :mod:`wsvis.evaluate.pseudo`: :func:`pseudo_label_metrics` (frame AP/AP50,
  DAVIS J, instance counts per variant), :func:`write_pseudo_label_table`.
"""

import lazy_loader

# Submodules load on first use (PEP 562): a job imports torch only if its stage needs it.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "coco": ["annotated_videos", "coco_segm_eval", "frame_coco_gt", "mask_detections"],
        "pseudo": ["TABLE_COLUMNS", "pseudo_label_metrics", "region_similarity", "write_pseudo_label_table"],
    },
)
