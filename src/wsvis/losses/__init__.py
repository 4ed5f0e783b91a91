"""Losses of the box-supervised branch: puzzle loss (STC-Seg), projection and pairwise losses
(BoxInst), flow-aware pairwise loss (Ikeda & Mori)."""

import lazy_loader

# Submodules load on first use (PEP 562): a job imports torch only if its stage needs it.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "boxinst": [
            "color_similarity", "flow_similarity", "lab_image", "neighbour_differences", "pairwise_label_identity",
            "pairwise_loss", "projection_loss",
        ],
        "puzzle": ["boundary_term", "box_term", "dice_with_position_penalty", "puzzle_loss"],
    },
)
