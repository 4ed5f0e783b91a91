"""The ``box`` and ``grabcut`` baselines for box supervision: masks from each box, no learning.

* ``box``: each box filled (a pixel is inside when its centre is:
  :func:`box_masks`), the floor any box-supervised mask must
  beat (BoxInst's and STC-Seg's projection terms are satisfied by it);
* ``grabcut``: ``cv2.grabCut`` (Rother et al., "GrabCut: interactive
  foreground extraction using iterated graph cuts", SIGGRAPH 2004)
  initialised with each box (``GC_INIT_WITH_RECT``: outside the box is
  background, inside probably foreground), ``iterations`` rounds of colour
  GMM fitting and graph cut. The cut runs on a crop of the frame around the
  box, enlarged by ``context`` times the box's width / height on each side
  (clipped to the frame; ``None`` = the whole frame): the background colour
  model then describes the object's surroundings, and a frame with several
  boxes costs a few small cuts. A box with no background around it (it
  covers the crop) or thinner than 2 pixels cannot be cut and stays filled, and
  so does a box whose cut keeps no pixel (the box says an object is there).
  OpenCV's RNG (GMM initialisation) is re-seeded before every cut, so
  results are reproducible.

Overlaps: instances are returned largest box first, so where boxes overlap
the smaller (usually nearer, occluding) object's mask is drawn last and wins
in the pseudo-label map. Every instance scores 1 (the box is given).
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from scipy import ndimage

from wsvis.io.images import read_image
from wsvis.transforms import resize_masks

__all__ = [
    "REFINEMENTS",
    "RESOLUTIONS",
    "box_instances",
    "box_masks",
    "box_motion_prior",
    "cut_source",
    "grabcut_mask",
    "grabcut_instances",
    "grabcut_refine",
]

#: Mask refinements of pseudo-labels (``irn.infer.refine``) and predictions (``segment.predict.refine``, which
#: also has ``grabcut_flow``: :func:`grabcut_refine` with ``flow``); ``none`` is the papers' setting, ``grabcut``
#: is :func:`grabcut_refine`.
REFINEMENTS = ("none", "grabcut")
#: Where a cut runs (module docstring, "Source resolution"): on the processing-size frame or the source frame.
RESOLUTIONS = ("process", "source")


def box_masks(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Filled boxes: pixel (i, j) is inside a box when its centre (j + 0.5, i + 0.5) is.

    Args:
        boxes: (K, 4) float xyxy pixels, x2/y2 exclusive (the manifest's convention).
        size: (H, W) pixels.

    Returns:
        (K, H, W) bool, in the order of ``boxes``.
    """
    h, w = size
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    xs, ys = np.arange(w) + 0.5, np.arange(h) + 0.5
    inx = (xs[None] >= boxes[:, 0:1]) & (xs[None] < boxes[:, 2:3])
    iny = (ys[None] >= boxes[:, 1:2]) & (ys[None] < boxes[:, 3:4])
    return iny[:, :, None] & inx[:, None, :]


def _by_area(boxes: np.ndarray) -> np.ndarray:
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.argsort(-areas, kind="stable")


def box_instances(
    boxes: np.ndarray, classes: np.ndarray, frame_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Filled boxes as instances.

    Args:
        boxes: (K, 4) float xyxy pixels, x2/y2 exclusive (the manifest's convention).
        classes: (K,) 1-based category ids.
        frame_size: (H, W) pixels.

    Returns:
        ``(masks, classes, scores)``: (K, H, W) bool, (K,) int64, (K,) float32 ones;
        largest box first (module docstring, "Overlaps").
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    order = _by_area(boxes)
    masks = box_masks(boxes[order], frame_size)
    return masks, np.asarray(classes, np.int64).reshape(-1)[order], np.ones(len(order), np.float32)


def grabcut_mask(
    image: np.ndarray,
    box: np.ndarray,
    *,
    iterations: int = 5,
    context: float | None = 0.5,
    prior: np.ndarray | None = None,
    fallback: np.ndarray | None = None,
    source: np.ndarray | None = None,
) -> np.ndarray:
    """GrabCut foreground of one box (module docstring).

    Args:
        image: (H, W, 3) uint8 RGB frame.
        box: (4,) float xyxy pixels, x2/y2 exclusive.
        iterations: GrabCut iterations (``iterCount``).
        context: crop margin as a fraction of the box size per side; ``None`` = whole frame.
        prior: optional (H, W) bool foreground prior: inside the box, its pixels
            start as probable foreground and the others as probable background
            (``GC_INIT_WITH_MASK``) instead of the whole box as probable
            foreground. A prior that is empty or full inside the box is ignored.
        fallback: optional (H, W) bool returned where the box cannot be cut or
            the cut keeps no pixel (default: the filled box).
        source: optional (H', W', 3) uint8 RGB, the same frame at a higher resolution
            (module docstring, "Source resolution"): the cut runs on it, ``box`` and
            ``prior`` scaled by (W'/W, H'/H); the result comes back at (H, W).

    Returns:
        (H, W) bool, foreground (definite or probable) inside the box; ``fallback``
        where the box cannot be cut or the cut keeps no pixel.

    Raises:
        ValueError: ``image`` or ``source`` not (H, W, 3) uint8; ``iterations`` < 1.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if iterations < 1:
        raise ValueError(f"grabcut iterations must be >= 1, got {iterations}")
    h, w = image.shape[:2]
    filled = box_masks(np.asarray(box, np.float64)[None], (h, w))[0]
    if fallback is None:
        fallback = filled
    if source is not None and np.asarray(source).shape[:2] != (h, w):
        return _grabcut_at_source(image, box, source, filled, fallback, prior=prior, iterations=iterations, context=context)
    ys, xs = np.nonzero(filled)
    if len(ys) == 0:
        return np.asarray(fallback, bool)
    y1, y2, x1, x2 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    if context is None:
        cy1, cy2, cx1, cx2 = 0, h, 0, w
    else:
        my, mx = int(np.ceil(context * (y2 - y1))), int(np.ceil(context * (x2 - x1)))
        cy1, cy2, cx1, cx2 = max(0, y1 - my), min(h, y2 + my), max(0, x1 - mx), min(w, x2 + mx)
    rect = (x1 - cx1, y1 - cy1, x2 - x1, y2 - y1)
    no_background = (cy1, cy2, cx1, cx2) == (y1, y2, x1, x2)
    if no_background or rect[2] < 2 or rect[3] < 2:
        return np.asarray(fallback, bool)
    crop = np.ascontiguousarray(image[cy1:cy2, cx1:cx2, ::-1])  # OpenCV wants BGR
    mask = np.zeros(crop.shape[:2], np.uint8)
    mode = cv2.GC_INIT_WITH_RECT
    if prior is not None:
        inside = np.asarray(prior, bool)[cy1:cy2, cx1:cx2] & filled[cy1:cy2, cx1:cx2]
        box_area = int(filled.sum())
        if 0 < int(inside.sum()) < box_area:
            mask[filled[cy1:cy2, cx1:cx2]] = cv2.GC_PR_BGD
            mask[inside] = cv2.GC_PR_FGD
            mode = cv2.GC_INIT_WITH_MASK
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    cv2.grabCut(crop, mask, rect, bgd, fgd, int(iterations), mode)
    out = np.zeros((h, w), bool)
    out[cy1:cy2, cx1:cx2] = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    out &= filled
    # The box says an object is there: a cut that keeps nothing failed, and the box is the better guess.
    return out if out.any() else np.asarray(fallback, bool)


def cut_source(resolution: str, source_image: str | os.PathLike | None, *, key: str) -> np.ndarray | None:
    """The ``source`` frame of :func:`grabcut_mask` for a ``resolution`` setting.

    Args:
        resolution: one of :data:`RESOLUTIONS`; ``process`` needs nothing (returns None).
        source_image: the frame's ``source_image`` (ingest table column), or None
            (a table written before the column existed).
        key: the config key, named in errors.

    Returns:
        (H', W', 3) uint8 RGB source frame, or None for ``process``.

    Raises:
        ValueError: an unknown ``resolution``; ``source`` without a ``source_image``
            (re-run the ingest stage).
        FrameError: the source frame cannot be read (names the file).
    """
    if resolution not in RESOLUTIONS:
        raise ValueError(f"{key} must be one of {list(RESOLUTIONS)}, got {resolution!r}")
    if resolution == "process":
        return None
    if not source_image:
        raise ValueError(f"{key}: 'source' needs the ingest tables' source_image column (re-run the ingest stage)")
    return read_image(source_image)


def _grabcut_at_source(image, box, source, filled, fallback, *, prior, iterations, context) -> np.ndarray:
    """:func:`grabcut_mask` run on ``source`` and brought back to ``image``'s size (module docstring)."""
    source = np.asarray(source)
    if source.ndim != 3 or source.shape[2] != 3 or source.dtype != np.uint8:
        raise ValueError(f"source must be (H, W, 3) uint8, got {source.shape} {source.dtype}")
    h, w = image.shape[:2]
    big_h, big_w = source.shape[:2]
    scale = np.array([big_w / w, big_h / h, big_w / w, big_h / h])
    big_prior = None if prior is None else resize_masks(np.asarray(prior, bool), (big_h, big_w))
    big = grabcut_mask(
        source, np.asarray(box, np.float64) * scale, iterations=iterations, context=context, prior=big_prior,
        fallback=np.zeros((big_h, big_w), bool),
    )
    out = (cv2.resize(big.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) >= 0.5) & filled
    return out if out.any() else np.asarray(fallback, bool)


def grabcut_instances(
    image: np.ndarray,
    boxes: np.ndarray,
    classes: np.ndarray,
    *,
    iterations: int = 5,
    context: float | None = 0.5,
    source: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GrabCut masks of every box of one frame (keywords of :func:`grabcut_mask`).

    Returns:
        ``(masks, classes, scores)`` as :func:`box_instances`, each mask the cut of its box.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    order = _by_area(boxes)
    h, w = np.asarray(image).shape[:2]
    masks = np.zeros((len(order), h, w), bool)
    for k, i in enumerate(order):
        masks[k] = grabcut_mask(image, boxes[i], iterations=iterations, context=context, source=source)
    return masks, np.asarray(classes, np.int64).reshape(-1)[order], np.ones(len(order), np.float32)


def box_motion_prior(
    flow: np.ndarray, box: np.ndarray, *, threshold: float = 1.0, ring: float = 0.25, quantile: float | None = None
) -> np.ndarray | None:
    """Pixels that move differently from a box's surroundings (the prior of the ``grabcut_flow`` cuts).

    The STC pseudo-labels' ``stc.refine`` (:mod:`wsvis.stc.stage`, "Refinement") and the predictions'
    ``segment.predict.refine`` (:func:`grabcut_refine` with ``flow``) start their cuts from it.

    Args:
        flow: (H, W, 2) float flow in pixels.
        box: (4,) xyxy pixels (x2/y2 exclusive).
        threshold: pixels; ||F(p) - median F(ring)|| above it is foreground.
        ring: width of the surrounding ring as a fraction of the box's width / height
            (at least 2 pixels), clipped to the frame.
        quantile: percent (0-100) or None; the threshold is raised to this percentile
            of the ring's own residuals ||F(q) - median F(ring)||, q in the ring
            (:mod:`wsvis.stc.stage`, "Ring quantile"). None: ``threshold`` alone.

    Returns:
        (H, W) bool, or None when the ring has fewer than 20 pixels (a box
        filling the frame has no surroundings).
    """
    flow = np.asarray(flow, np.float32)
    h, w = flow.shape[:2]
    inside = box_masks(np.asarray(box, np.float64)[None], (h, w))[0]
    ys, xs = np.nonzero(inside)
    if not len(ys):
        return None
    y1, y2, x1, x2 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    my, mx = int(ring * (y2 - y1)) + 2, int(ring * (x2 - x1)) + 2
    around = np.zeros((h, w), bool)
    around[max(0, y1 - my) : min(h, y2 + my), max(0, x1 - mx) : min(w, x2 + mx)] = True
    around &= ~inside
    if around.sum() < 20:
        return None
    residual = np.linalg.norm(flow - np.median(flow[around], axis=0), axis=2)
    if quantile is not None:
        threshold = max(threshold, float(np.percentile(residual[around], quantile)))
    return residual > threshold


def grabcut_refine(
    image: np.ndarray,
    masks: np.ndarray,
    *,
    margin: float = 0.1,
    iterations: int = 5,
    context: float | None = 0.5,
    source: np.ndarray | None = None,
    grow: int | None = None,
    flow: np.ndarray | None = None,
    ring_quantile: float | None = None,
    motion_keep: float = 0.5,
    min_keep: float = 0.0,
    unreliable: np.ndarray | None = None,
) -> np.ndarray:
    """Each instance mask re-cut by GrabCut started from it (a colour refinement of pseudo-labels).

    The cut of mask k runs in its bounding box grown by ``margin`` times its
    width / height per side (clipped to the frame), so it can both shed
    pixels whose colour matches the surroundings and take in up to that margin;
    the mask's pixels start as probable foreground, the rest of the box as
    probable background (:func:`grabcut_mask` with ``prior``). Our addition to
    the class-tag branch in the role of IRN's dense CRF on the CAMs (IRN §4;
    flowIRN's pseudo-labels come from a random walk on a stride-4 grid).
    An empty mask stays empty; a cut that keeps nothing leaves the mask unchanged.

    ``grow`` (ours) bounds what the cut may add: it keeps only pixels within
    ``grow`` pixels (city-block distance, at the masks' resolution) of the mask
    it started from, so it can move the mask's edge onto the frame's but not
    spread into background of the object's colours (a hedge behind a horse, a
    car's shadow, graffiti behind a cyclist); shedding is not bounded.

    ``flow`` (ours; ``segment.predict.refine: grabcut_flow``) adds motion: the cut
    starts from the mask's pixels that move differently from the surroundings of
    the mask's box (:func:`box_motion_prior`, 1 px, a ring a quarter of the box
    wide, its ``ring_quantile``), the rest of the mask as probable background. A
    box-supervised mask fills concave background between an object's parts whose
    colours match it (the dark water between blackswan's neck and back, which
    GrabCut from the mask kept on half the frames); that background moves with its
    surroundings. When the moving part holds less than ``motion_keep`` of the mask
    (a slow or still object, a prior that cannot be read), the cut starts from the
    whole mask as without flow.

    ``unreliable`` (ours; ``segment.predict.refine_fb_check``), with ``flow``: pixels whose flow fails
    the forward-backward check (:func:`wsvis.flow.stage.frame_flow_unreliable`) do not count as
    moving. DIS carries a moving object's flow into textureless background beside it (the sand
    between horsejump-high's legs, which the prior called moving on 96-98 % of the mask); the
    return flow does not confirm it there.

    ``min_keep`` (ours; ``segment.predict.refine_min_keep``) rejects a collapsed cut: one that keeps
    less than that fraction of its mask's pixels leaves the mask unchanged (0: only an empty cut
    does). GrabCut collapses onto one colour of a many-coloured object whose other colours its
    background holds (bmx-trees' rider in front of graffiti: the white shirt kept, the red bike and
    the legs lost from boxinst_flow's masks on 45 of its 80 frames).

    Args:
        image: (H, W, 3) uint8 RGB frame.
        masks: (K, H, W) bool instance masks of the frame.
        margin: box growth around each mask, fraction of its size per side (>= 0).
        iterations, context, source: of :func:`grabcut_mask`.
        grow: pixels the cut may reach beyond its mask (>= 0; 0: it only sheds); None: anywhere in
            the grown box.
        flow: optional (H, W, 2) float flow of the frame in pixels (gap 1, the image's size).
        ring_quantile: ``quantile`` of :func:`box_motion_prior` (percent or None), with ``flow``.
        motion_keep: fraction of the mask (0, 1] the moving part must hold to start the cut, with ``flow``.
        min_keep: fraction of the mask [0, 1) a cut must keep (``|cut & mask| / |mask|``) to replace it.
        unreliable: optional (H, W) bool, pixels whose flow is not to be trusted, with ``flow``.

    Returns:
        (K, H, W) bool refined masks, in the order of ``masks``.

    Raises:
        ValueError: ``masks`` not (K, H, W) of the image's size; ``margin`` < 0; ``flow`` not
            (H, W, 2); ``motion_keep`` outside (0, 1]; ``min_keep`` outside [0, 1); those of
            :func:`grabcut_mask`; ``unreliable`` not (H, W) or given without ``flow``.
    """
    masks = np.asarray(masks, bool)
    h, w = np.asarray(image).shape[:2]
    if masks.ndim != 3 or masks.shape[1:] != (h, w):
        raise ValueError(f"masks must be (K, {h}, {w}) for a {h}x{w} image, got {masks.shape}")
    if margin < 0:
        raise ValueError(f"grabcut refine margin must be >= 0, got {margin}")
    if grow is not None and grow < 0:
        raise ValueError(f"grabcut refine grow must be >= 0 pixels or None, got {grow}")
    if flow is not None and np.asarray(flow).shape != (h, w, 2):
        raise ValueError(f"flow must be ({h}, {w}, 2) for a {h}x{w} image, got {np.asarray(flow).shape}")
    if unreliable is not None and (flow is None or np.asarray(unreliable).shape != (h, w)):
        raise ValueError(f"unreliable must be ({h}, {w}) bool beside a flow, got {np.asarray(unreliable).shape}"
                         f"{'' if flow is not None else ' without flow'}")
    if not 0 < motion_keep <= 1:
        raise ValueError(f"grabcut refine motion_keep must be in (0, 1], got {motion_keep}")
    if not 0 <= min_keep < 1:
        raise ValueError(f"grabcut refine min_keep must be in [0, 1), got {min_keep}")
    out = masks.copy()
    for k, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        if len(ys) == 0:
            continue
        y1, y2, x1, x2 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        start = mask
        if flow is not None:
            moving = box_motion_prior(flow, np.array([x1, y1, x2, y2], np.float64), quantile=ring_quantile)
            if moving is not None and unreliable is not None:
                moving &= ~np.asarray(unreliable, bool)
            if moving is not None and (mask & moving).sum() >= motion_keep * mask.sum():
                start = mask & moving
        my, mx = margin * (y2 - y1), margin * (x2 - x1)
        box = np.array([max(0.0, x1 - mx), max(0.0, y1 - my), min(w, x2 + mx), min(h, y2 + my)])
        out[k] = grabcut_mask(
            image, box, iterations=iterations, context=context, prior=start, fallback=mask, source=source
        )
        if grow is not None:
            out[k] &= ndimage.binary_dilation(mask, iterations=grow) if grow else mask
        if (out[k] & mask).sum() < min_keep * len(ys):
            out[k] = mask
    return out
