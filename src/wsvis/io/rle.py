"""COCO run-length encoding of masks (pycocotools), as gt.json and result files store them."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_util

__all__ = ["encode_mask", "decode_rle"]


def encode_mask(mask: np.ndarray) -> dict:
    """COCO RLE of one (H, W) bool mask: ``{"size": [H, W], "counts": str}`` (JSON-serialisable)."""
    rle = mask_util.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict, height: int, width: int) -> np.ndarray:
    """Decode a COCO RLE to an (H, W) uint8 mask.

    ``counts`` may be a list (uncompressed RLE, as YouTube-VIS annotations) or
    a str/bytes (compressed); ``size`` defaults to ``(height, width)``.
    """
    counts = rle["counts"]
    size = rle.get("size", [height, width])
    if isinstance(counts, list):
        rle = mask_util.frPyObjects({"counts": counts, "size": list(size)}, int(size[0]), int(size[1]))
    else:
        rle = {"counts": counts.encode() if isinstance(counts, str) else counts, "size": list(size)}
    return mask_util.decode(rle)
