"""The ``motion`` baseline for class tags: moving regions of camera-compensated flow, no learning.

The premise flowIRN builds on (Liu et al., CVPR 2021, §3.2: "objects move
differently from the background") taken alone. Per frame t:

1. the gap-1 flow of frame t (``forward[t]``, or for the last frame the
   backward flow T-1 -> T-2, whose magnitude describes the same motion);
2. **camera compensation**: the camera's flow is fitted to the frame's flow
   and subtracted, leaving the motion of objects relative to the scene.
   ``homography`` (default): ``cv2.findHomography`` with RANSAC on a regular
   grid of correspondences ``p -> p + F(p)`` (one point every ``grid_step``
   pixels; inlier threshold ``ransac_threshold`` pixels), exact for a
   rotating camera or a planar background; ``affine``:
   ``cv2.estimateAffine2D`` with RANSAC on the same grid; ``median``: the
   frame's median flow vector (a pure pan; :func:`wsvis.cam.fcam.flow_magnitude`'s
   compensation); ``none``: raw flow;
3. the residual magnitude is thresholded with Otsu's method (``cv2.threshold``
   ``THRESH_OTSU`` on the magnitude scaled to 0..255 by its frame maximum); a
   pixel is foreground when its residual is above both the Otsu threshold and
   ``min_magnitude`` pixels (a frame with no moving object then gives
   nothing, instead of Otsu splitting flow noise in two);
4. clean-up: a binary opening with a ``open_size`` square (drops speckle at
   flow edges; 0 = off) and hole filling (``fill_holes``);
5. each 8-connected region of at least ``min_area`` (fraction of the frame
   area) becomes one instance, scored by its mean residual magnitude over the
   frame's maximum residual (in [0, 1]).

Class of an instance: the frame's class tags (the only label there is). With
one tag every region takes it. With several tags, regions sorted by area
(largest first) take the tags in category-id order, cycling when there are
more regions than tags: k regions in a frame tagged with k classes get k
different classes, but which region gets which class is arbitrary (this
baseline has no appearance model; that is what the CAM adds).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

__all__ = [
    "COMPENSATIONS",
    "camera_flow",
    "residual_flow_magnitude",
    "motion_foreground",
    "motion_instances",
    "moving_region_masks",
]

#: Camera-motion models of step 2 (module docstring).
COMPENSATIONS = ("homography", "affine", "median", "none")
_EIGHT = np.ones((3, 3), bool)


def _grid(h: int, w: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    return ys.ravel(), xs.ravel()


def camera_flow(
    flow: np.ndarray, model: str = "homography", *, grid_step: int = 8, ransac_threshold: float = 1.0
) -> np.ndarray:
    """The flow a global camera-motion model fitted to ``flow`` predicts at every pixel.

    Args:
        flow: (H, W, 2) float flow in pixels, x then y (float16 accepted).
        model: one of :data:`COMPENSATIONS` (module docstring, step 2).
        grid_step: spacing in pixels of the correspondence grid (homography, affine).
        ransac_threshold: RANSAC inlier threshold in pixels (homography, affine).

    Returns:
        (H, W, 2) float32 camera flow in pixels; zeros for ``none``. Where a
        RANSAC fit fails (fewer than 4 grid points, degenerate flow) the
        median flow vector is used.

    Raises:
        ValueError: ``flow`` not (H, W, 2); unknown ``model``.
    """
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got shape {flow.shape}")
    if model not in COMPENSATIONS:
        raise ValueError(f"camera compensation {model!r} is not one of {COMPENSATIONS}")
    h, w = flow.shape[:2]
    if model == "none":
        return np.zeros_like(flow)
    median = np.median(flow.reshape(-1, 2), axis=0)
    if model == "median":
        return np.broadcast_to(median, flow.shape).astype(np.float32)
    ys, xs = _grid(h, w, max(1, int(grid_step)))
    src = np.stack([xs, ys], axis=1).astype(np.float32)
    dst = src + flow[ys, xs]
    matrix = None
    if len(src) >= 4:
        if model == "homography":
            matrix, _ = cv2.findHomography(src, dst, cv2.RANSAC, float(ransac_threshold))
        else:
            affine, _ = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=float(ransac_threshold))
            matrix = None if affine is None else np.vstack([affine, [0.0, 0.0, 1.0]])
    if matrix is None or not np.all(np.isfinite(matrix)):
        return np.broadcast_to(median, flow.shape).astype(np.float32)
    py, px = np.mgrid[0:h, 0:w].astype(np.float32)
    points = np.stack([px, py], axis=-1).reshape(-1, 1, 2)
    mapped = cv2.perspectiveTransform(points, matrix).reshape(h, w, 2)
    return (mapped - np.stack([px, py], axis=-1)).astype(np.float32)


def residual_flow_magnitude(flow: np.ndarray, compensation: str = "homography", **fit: float) -> np.ndarray:
    """||F - F_camera||_2: (H, W) float32 pixels (keywords of :func:`camera_flow`)."""
    flow = np.asarray(flow, np.float32)
    residual = flow - camera_flow(flow, compensation, **fit)
    return np.sqrt((residual * residual).sum(axis=2))


def motion_foreground(
    magnitude: np.ndarray, *, min_magnitude: float = 1.0, open_size: int = 3, fill_holes: bool = True
) -> np.ndarray:
    """Steps 3-4 of the module docstring: Otsu on a residual magnitude map, then clean-up.

    Args:
        magnitude: (H, W) float residual flow magnitude in pixels.
        min_magnitude: pixels; a foreground pixel moves at least this much.
        open_size: side in pixels of the square opening element (0 or 1: none).
        fill_holes: fill enclosed background holes.

    Returns:
        (H, W) bool foreground.
    """
    magnitude = np.asarray(magnitude, np.float32)
    peak = float(magnitude.max()) if magnitude.size else 0.0
    if peak <= min_magnitude:
        return np.zeros(magnitude.shape, bool)
    scaled = np.round(magnitude / peak * 255.0).astype(np.uint8)
    otsu, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    fg = magnitude > max(otsu / 255.0 * peak, min_magnitude)
    if open_size > 1:
        fg = ndimage.binary_opening(fg, structure=np.ones((open_size, open_size), bool))
    if fill_holes:
        fg = ndimage.binary_fill_holes(fg)
    return fg


def moving_region_masks(
    magnitude: np.ndarray,
    *,
    min_magnitude: float = 1.0,
    open_size: int = 3,
    fill_holes: bool = True,
    min_area: float = 0.002,
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 3-5 of the module docstring: the 8-connected moving regions of a residual magnitude map.

    Source: flowIRN's premise (Liu et al., CVPR 2021, §3.2) with no learning; the
    thresholds and clean-up are ours (no paper gives them). Also the moving regions that
    ``irn.infer.motion_instances`` adds to the pseudo-labels (:mod:`wsvis.irn.stage`).

    Args:
        magnitude: (H, W) float camera-compensated flow magnitude in pixels.
        min_magnitude, open_size, fill_holes: :func:`motion_foreground`.
        min_area: smallest region kept, as a fraction of H * W.

    Returns:
        ``(masks, means)``: (K, H, W) bool regions, largest first, and (K,) float32
        mean magnitude of each in pixels.
    """
    magnitude = np.asarray(magnitude, np.float32)
    h, w = magnitude.shape
    none = (np.zeros((0, h, w), bool), np.zeros(0, np.float32))
    fg = motion_foreground(magnitude, min_magnitude=min_magnitude, open_size=open_size, fill_holes=fill_holes)
    regions, n = ndimage.label(fg, structure=_EIGHT)
    if n == 0:
        return none
    index = np.arange(1, n + 1)
    areas = ndimage.sum_labels(np.ones_like(magnitude), regions, index)
    means = ndimage.mean(magnitude, regions, index)
    keep = [r for r in np.argsort(-areas, kind="stable") if areas[r] >= min_area * h * w]
    if not keep:
        return none
    return np.stack([regions == r + 1 for r in keep]), np.asarray([means[r] for r in keep], np.float32)


def motion_instances(
    flow: np.ndarray,
    tags: list[int],
    *,
    compensation: str = "homography",
    grid_step: int = 8,
    ransac_threshold: float = 1.0,
    min_magnitude: float = 1.0,
    open_size: int = 3,
    fill_holes: bool = True,
    min_area: float = 0.002,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instances of one frame from its flow and class tags (the whole module docstring).

    Args:
        flow: (H, W, 2) float flow of the frame in pixels, x then y.
        tags: the frame's class tags as 1-based category ids (empty: no instance).
        compensation, grid_step, ransac_threshold: :func:`camera_flow`.
        min_magnitude, open_size, fill_holes: :func:`motion_foreground`.
        min_area: smallest region kept, as a fraction of H * W.

    Returns:
        ``(masks, classes, scores)``: (K, H, W) bool, (K,) int64 category ids,
        (K,) float32 scores in [0, 1]; ordered by increasing score (the order
        :class:`~wsvis.io.pseudo.PseudoLabelWriter` wants).
    """
    flow = np.asarray(flow, np.float32)
    h, w = flow.shape[:2]
    empty = (np.zeros((0, h, w), bool), np.zeros(0, np.int64), np.zeros(0, np.float32))
    tags = sorted({int(t) for t in tags})
    if not tags:
        return empty
    mag = residual_flow_magnitude(flow, compensation, grid_step=grid_step, ransac_threshold=ransac_threshold)
    masks, means = moving_region_masks(
        mag, min_magnitude=min_magnitude, open_size=open_size, fill_holes=fill_holes, min_area=min_area
    )
    if not len(masks):
        return empty
    classes = np.asarray([tags[i % len(tags)] for i in range(len(masks))], np.int64)
    scores = np.clip(means / max(float(mag.max()), 1e-6), 0, 1)
    order = np.argsort(scores, kind="stable")
    return masks[order], classes[order], scores[order]
