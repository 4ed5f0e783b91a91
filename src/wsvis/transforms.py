"""Joint training augmentation of a frame and its dense companions (labels, flow).

IRN's augmentation (Ahn et al., CVPR 2019; also used for its CAM classifier):
random rescale so the long side is in ``resize_long``, random horizontal flip,
random crop to ``crop_size`` (padding where the image is smaller). Companions
are transformed with it:

* ``image``: (H, W, 3) uint8, bilinear; padding value 0;
* ``label`` maps: (H, W) integer, nearest neighbour; padding value ``ignore`` (255);
* ``flow`` fields: (H, W, 2) float pixels, bilinear, **vectors scaled** by the
  resize factor and x negated by a flip; padding value 0.

All functions take a :class:`numpy.random.Generator` so runs are repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Sample", "resize", "hflip", "hflip_flow", "random_crop", "augment", "resize_masks", "processing_size"]

IGNORE = 255


@dataclass
class Sample:
    """A frame and optional companions, all on the same pixel grid."""

    image: np.ndarray
    label: np.ndarray | None = None
    flow: np.ndarray | None = None


def resize(sample: Sample, scale: float) -> Sample:
    """Rescale every array of ``sample`` by ``scale`` (flow vectors scaled too)."""
    h, w = sample.image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return Sample(
        image=cv2.resize(sample.image, size, interpolation=cv2.INTER_LINEAR),
        label=None if sample.label is None else cv2.resize(sample.label, size, interpolation=cv2.INTER_NEAREST),
        flow=None if sample.flow is None else cv2.resize(sample.flow, size, interpolation=cv2.INTER_LINEAR) * scale,
    )


def hflip_flow(flow: np.ndarray) -> np.ndarray:
    """(H, W, 2) flow in pixels -> the flow of the mirrored frames: x reversed, u negated (a new array)."""
    flow = flow[:, ::-1].copy()
    flow[..., 0] *= -1
    return flow


def hflip(sample: Sample) -> Sample:
    """Mirror left-right; the x component of flow changes sign."""
    return Sample(
        image=sample.image[:, ::-1].copy(),
        label=None if sample.label is None else sample.label[:, ::-1].copy(),
        flow=None if sample.flow is None else hflip_flow(sample.flow),
    )


def random_crop(sample: Sample, crop_size: int, rng: np.random.Generator) -> tuple[Sample, np.ndarray]:
    """Crop (or pad) to ``crop_size`` x ``crop_size`` at a random place.

    Returns:
        The cropped sample and a (crop, crop) bool mask of pixels that came from
        the image (False on padding).
    """
    h, w = sample.image.shape[:2]
    ch, cw = min(crop_size, h), min(crop_size, w)
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    oy = int(rng.integers(0, crop_size - ch + 1))
    ox = int(rng.integers(0, crop_size - cw + 1))

    def place(arr: np.ndarray | None, fill) -> np.ndarray | None:
        if arr is None:
            return None
        out = np.full((crop_size, crop_size, *arr.shape[2:]), fill, dtype=arr.dtype)
        out[oy : oy + ch, ox : ox + cw] = arr[y0 : y0 + ch, x0 : x0 + cw]
        return out

    valid = np.zeros((crop_size, crop_size), bool)
    valid[oy : oy + ch, ox : ox + cw] = True
    return Sample(place(sample.image, 0), place(sample.label, IGNORE), place(sample.flow, 0)), valid


def augment(
    sample: Sample, rng: np.random.Generator, *, resize_long: tuple[int, int], crop_size: int, flip: bool = True
) -> tuple[Sample, np.ndarray]:
    """IRN's training augmentation: random long-side rescale in ``resize_long``, flip, crop.

    Returns:
        ``(sample, valid)`` as :func:`random_crop`.
    """
    long_side = int(rng.integers(resize_long[0], resize_long[1] + 1))
    sample = resize(sample, long_side / max(sample.image.shape[:2]))
    if flip and rng.random() < 0.5:
        sample = hflip(sample)
    return random_crop(sample, crop_size, rng)


def resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Binary masks resized to ``size``: bilinear on the 0/1 mask, then ``>= 0.5``.

    How masks computed at the processing size (``dataset.process_size``) are
    brought back to the ground truth's size before scoring, the way DAVIS and
    YouTube-VIS results are upsampled to the annotation's resolution.

    Args:
        masks: (..., h, w) bool (any leading dims, e.g. (K, h, w) or (T, h, w)).
        size: (H, W) target pixels.

    Returns:
        (..., H, W) bool; the input itself (no copy) when already (H, W).
    """
    masks = np.asarray(masks, dtype=bool)
    H, W = int(size[0]), int(size[1])
    if masks.shape[-2:] == (H, W):
        return masks
    flat = masks.reshape(-1, *masks.shape[-2:])
    out = np.empty((len(flat), H, W), bool)
    for i, m in enumerate(flat):
        out[i] = cv2.resize(m.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR) >= 0.5
    return out.reshape(*masks.shape[:-2], H, W)


def processing_size(height: int, width: int, longest: int | None) -> tuple[int, int]:
    """(h, w) pixels of a (height, width) frame at processing size ``longest`` (its longest side,
    aspect kept, rounded); frames already no larger, or ``longest`` None, keep their size."""
    if longest is None or max(height, width) <= longest:
        return int(height), int(width)
    scale = longest / max(height, width)
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))
