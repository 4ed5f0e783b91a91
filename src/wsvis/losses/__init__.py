"""Losses of the box-supervised branch: puzzle loss (STC-Seg), projection and pairwise losses
(BoxInst), flow-aware pairwise loss (Ikeda & Mori)."""

from wsvis.losses.boxinst import (
    color_similarity,
    flow_similarity,
    lab_image,
    neighbour_differences,
    pairwise_label_identity,
    pairwise_loss,
    projection_loss,
)
from wsvis.losses.puzzle import boundary_term, box_term, dice_with_position_penalty, puzzle_loss

__all__ = [
    "boundary_term",
    "box_term",
    "dice_with_position_penalty",
    "puzzle_loss",
    "projection_loss",
    "pairwise_loss",
    "pairwise_label_identity",
    "neighbour_differences",
    "color_similarity",
    "flow_similarity",
    "lab_image",
]
