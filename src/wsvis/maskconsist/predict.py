"""Frame-level inference of a trained Mask R-CNN / MaskConsist model, and predictions -> pseudo-labels.

Inference (MaskConsist §4.2): score threshold 0.05, per-class NMS 0.5; at
inference MaskConsist is a plain Mask R-CNN (no matching). Output: the
predictions artifact ``predictions/{method}/{video}.zarr`` of
:mod:`wsvis.io.predictions` — masks binarised at 0.5 from the mask
probabilities pasted at frame resolution, boxes xyxy in frame pixels, labels
the category ids (1-based), the K = ``max_detections`` highest scores.

Motion filter (``motion_filter``, our addition; the papers: none): a
detection that does not move against the camera is dropped. Its motion is the
mean, over its mask, of the camera-compensated flow magnitude of frame t
(:func:`wsvis.baselines.motion.residual_flow_magnitude`, homography, the
``motion`` baseline's step 2); it is static when that is below both
``motion_filter_flow`` pixels and ``motion_filter`` times the largest motion of
the frame's confident detections (score >= ``refine_score``). The premise of
the class-tag pseudo-labels (flowIRN §3.2: objects move differently from the
background) then holds at inference too: a detector trained on them fires on
every instance of the class, the still spectators of breakdance and bmx-trees
included (davis2016 run C, the four runs' detections scoring >= 0.5 on every 3rd
frame of breakdance: 178 of 353 lie off the object, median motion 0.6 px
against 4.1 px on it). The absolute floor
keeps a slow object beside a fast one only when it moves at least ``motion_filter_flow``:
davis_composites' cow (median 0.99 px per frame beside a 1.85 px dog) is dropped on 26 of its 50
frames by boxinst_flow (9 by stcseg), so the DAVIS configs' box runs, which do not fire on still
bystanders, leave it off.

Part suppression (``iom_nms``, our addition at inference; MaskConsist §3.3
applies IoM-NMS when it combines labels, not at inference): a detection whose
mask lies mostly inside a larger one of its class is dropped
(:func:`suppress_contained`). Trained for minutes on pseudo-labels, the
class-tag models fire on an object and on its parts (davis2016, every 2nd
frame: 2.6-4.9 detections scoring >= 0.5 per frame of the single-object
videos blackswan, bmx-trees, breakdance, dog, horsejump-high and kite-surf,
mostly on the object); each part is a false positive for AP, and for the
trackers a track of its own. With ``iom_nms_merge`` a dropped part is joined
to the whole instead (its pixels outside the whole stay predicted). It runs on
the cut masks: joined before the cuts, a blob over two people and the crowd
between them is cut as one (davis_composites breakdance_bmx J 0.40 -> 0.31).

Self-training (§4.2, "ours self-training"): :func:`predictions_to_pseudo`
turns round 1's predictions into a pseudo-label artifact that
:func:`wsvis.maskconsist.train.train_maskrcnn` trains round 2 on.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torchvision.ops import masks_to_boxes
from tqdm import tqdm

from wsvis.baselines.box import REFINEMENTS, cut_source, grabcut_refine
from wsvis.baselines.motion import residual_flow_magnitude
from wsvis.flow.stage import frame_flow, frame_flow_unreliable, read_flow
from wsvis.io.predictions import PredictionWriter, frame_predictions, fuse_instances, read_predictions
from wsvis.io.pseudo import PseudoLabelWriter
from wsvis.maskconsist.matching import iom, iom_nms
from wsvis.maskconsist.train import image_tensor
from wsvis.models.maskrcnn import detect, load_maskrcnn
from wsvis.models.tta import detect_hflip
from wsvis.torchutil import resolve_device

__all__ = [
    "PREDICT_REFINEMENTS", "moving_detections", "suppress_contained", "predict_video", "write_video_predictions",
    "predictions_to_pseudo",
]

#: ``segment.predict.refine`` values: those of the pseudo-labels (:data:`wsvis.baselines.box.REFINEMENTS`) and
#: ``grabcut_flow``, the cut started from the mask's moving part (:func:`write_video_predictions`).
PREDICT_REFINEMENTS = REFINEMENTS + ("grabcut_flow",)


def moving_detections(
    masks: np.ndarray, scores: np.ndarray, residual: np.ndarray, *, ratio: float, min_flow: float,
    score_threshold: float = 0.5,
) -> np.ndarray:
    """Which detections of one frame move against the camera (module docstring, "Motion filter").

    Args:
        masks: (n, H, W) bool detection masks.
        scores: (n,) float detection scores.
        residual: (H, W) float camera-compensated flow magnitude of the frame, pixels.
        ratio: a detection moving at least ``ratio`` times the most moving confident one is kept.
        min_flow: pixels; a detection whose mean residual reaches it is kept whatever the others do.
        score_threshold: confident detections (the reference of ``ratio``) score at least this.

    Returns:
        (n,) bool, True = kept. All True when no detection is confident.

    Raises:
        ValueError: ``masks`` and ``residual`` of different frame sizes, or ``scores`` of another length.
    """
    masks = np.asarray(masks, bool)
    scores = np.asarray(scores, np.float64).reshape(-1)
    residual = np.asarray(residual, np.float64)
    if masks.ndim != 3 or masks.shape[1:] != residual.shape or len(scores) != len(masks):
        raise ValueError(f"masks {masks.shape}, scores {scores.shape} and residual {residual.shape} do not fit")
    flat = masks.reshape(len(masks), -1)
    motion = flat @ residual.ravel() / np.maximum(flat.sum(axis=1), 1)  # mean residual per mask
    confident = scores >= score_threshold
    if not confident.any():
        return np.ones(len(masks), bool)
    return (motion >= min_flow) | (motion >= ratio * motion[confident].max())


def suppress_contained(
    masks: np.ndarray, labels: np.ndarray, scores: np.ndarray, *, threshold: float, score_threshold: float = 0.5,
    merge: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Which detections of one frame survive IoM-NMS (module docstring, "Part suppression").

    :func:`wsvis.maskconsist.matching.iom_nms` (per class, larger masks first, a mask dropped when its
    Intersection over Minimum with a kept one exceeds ``threshold``) runs on the confident detections
    (score >= ``score_threshold``) first, then on the others, each of which is also dropped when its
    IoM with a kept confident detection of its class exceeds ``threshold``. So a large low-scoring
    detection never removes a confident one inside it. With ``merge`` each dropped confident mask is
    added (union) to the kept confident mask of its class it overlaps most (by IoM), as Alg. 1's Merge
    joins matched masks: the part's pixels outside the whole stay predicted.

    Args:
        masks: (n, H, W) bool detection masks.
        labels: (n,) int category ids.
        scores: (n,) float detection scores.
        threshold: IoM above which a contained mask is dropped (MaskConsist's label combining: 0.5).
        score_threshold: the confident detections' score (those J counts).
        merge: fold dropped confident masks into the kept ones (ours) instead of discarding them.

    Returns:
        ``(keep, masks)``: (n,) bool, True = kept (empty masks are dropped), and the (n, H, W) bool
        masks, the kept ones grown by their merged parts (a copy; ``masks`` itself when not ``merge``).

    Raises:
        ValueError: ``masks``, ``labels`` and ``scores`` of different lengths.
    """
    masks = np.asarray(masks, bool)
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if masks.ndim != 3 or not len(masks) == len(labels) == len(scores):
        raise ValueError(f"masks {masks.shape}, labels {labels.shape} and scores {scores.shape} do not fit")
    keep = np.zeros(len(masks), bool)
    confident = np.nonzero(scores >= score_threshold)[0]
    rest = np.nonzero(scores < score_threshold)[0]
    for tier in (confident, rest):
        if len(tier):
            keep[tier[iom_nms(masks[tier], labels[tier], scores[tier], threshold).numpy()]] = True
    kept_confident = confident[keep[confident]]
    kept_rest = rest[keep[rest]]
    if len(kept_confident) and len(kept_rest):
        overlap = iom(masks[kept_rest], masks[kept_confident]).numpy()
        same = labels[kept_rest][:, None] == labels[kept_confident][None, :]
        keep[kept_rest[((overlap > threshold) & same).any(axis=1)]] = False
    if not merge:
        return keep, masks
    # Empty masks add nothing, and may have no kept mask to join (iom_nms keeps no empty mask); each non-empty
    # dropped one was dropped for a kept confident mask of its class.
    dropped = confident[~keep[confident]]
    dropped = dropped[masks[dropped].any(axis=(1, 2))]
    if not len(dropped):
        return keep, masks
    merged = masks.copy()
    overlap = iom(masks[dropped], masks[kept_confident]).numpy()
    overlap[labels[dropped][:, None] != labels[kept_confident][None, :]] = -1.0
    for i, j in zip(dropped, overlap.argmax(axis=1)):
        merged[kept_confident[j]] |= masks[i]
    return keep, merged


def predict_video(
    images: Sequence[str | os.PathLike],
    model_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    method: str,
    score_threshold: float = 0.05,
    nms: float = 0.5,
    max_detections: int = 20,
    proposals: int = 1000,
    hflip_tta: bool = False,
    device: str = "auto",
    params: dict[str, Any] | None = None,
    progress: bool = True,
    **refine_options: Any,
) -> Path:
    """Run the model of ``model_path`` on every frame of one video and write its predictions artifact.

    Args:
        images: the video's frame paths in temporal order (T files, one size).
        model_path: ``model.pt`` of :func:`wsvis.maskconsist.train.train_maskrcnn`.
        out: ``predictions/{method}/{video}.zarr``.
        method: name stored in the artifact (``maskrcnn``, ``maskconsist``, ``maskconsist_selftrain``).
        score_threshold: detections below are dropped (paper 0.05).
        nms: per-class box NMS IoU (paper 0.5).
        max_detections: K, detections kept per frame.
        proposals: RPN proposals per frame that the box head scores (torchvision /
            detectron2: 1000; :func:`wsvis.models.maskrcnn.build_maskrcnn`).
        hflip_tta: also detect on the mirrored frame and merge (:func:`wsvis.models.tta.detect_hflip`;
            ours, the paper tests on the frame alone): 2x the detection time.
        device: ``auto | cpu | cuda[:N]``.
        params: the stage's config, stored in attrs.
        progress: tqdm bar.
        refine_options: ``refine``, ``refine_score``, ``refine_margin``, ``refine_iterations``,
            ``refine_grow``, ``refine_resolution``, ``refine_ring_quantile``, ``refine_motion_keep``,
            ``refine_min_keep``, ``refine_fb_check``, ``source_images``, ``motion_filter``, ``motion_filter_flow``,
            ``flow_path``, ``iom_nms``, ``iom_nms_merge`` of :func:`write_video_predictions` (default: no
            refinement, no filter, no part suppression: the paper's).

    Returns:
        ``out`` as a Path. Arrays: masks (T, K, H, W) bool, scores (T, K)
        float32, labels (T, K) int32, boxes (T, K, 4) float32 (see :mod:`wsvis.io.predictions`).

    Raises:
        FileNotFoundError: no model file; ValueError: no frames or frames of different sizes.
    """
    images = [os.fspath(p) for p in images]
    if not images:
        raise ValueError("predict_video: no frames")
    dev = resolve_device(device)
    model, meta = load_maskrcnn(
        model_path, dev, box_score_thresh=score_threshold, box_nms_thresh=nms, detections_per_img=max_detections,
        test_proposals=proposals,
    )

    def detect_frame(t: int, img: torch.Tensor) -> dict[str, torch.Tensor]:
        if not hflip_tta:
            return detect(model, [img.to(dev)])[0]
        return detect_hflip(lambda x, _: detect(model, [x.to(dev)])[0], img, nms_thresh=nms,
                            detections_per_img=max_detections)

    return write_video_predictions(
        images, out, detect_frame, method=method,
        categories=list(meta["categories"]), max_detections=max_detections, params=params,
        attrs={"score_threshold": score_threshold, "nms": nms, "proposals": proposals, "hflip_tta": hflip_tta,
               "model_method": meta.get("method")},
        progress=progress, **refine_options,
    )


def write_video_predictions(
    images: Sequence[str],
    out: str | os.PathLike,
    detect_frame: Callable[[int, torch.Tensor], dict[str, torch.Tensor]],
    *,
    method: str,
    categories: list[str],
    max_detections: int,
    params: dict[str, Any] | None = None,
    attrs: dict[str, Any] | None = None,
    refine: str = "none",
    refine_score: float = 0.5,
    refine_margin: float = 0.1,
    refine_iterations: int = 5,
    refine_grow: int | None = None,
    refine_resolution: str = "process",
    refine_ring_quantile: float | None = None,
    refine_motion_keep: float = 0.5,
    refine_min_keep: float = 0.0,
    refine_fb_check: bool = False,
    source_images: Sequence[str | os.PathLike | None] | None = None,
    motion_filter: float | None = None,
    motion_filter_flow: float = 1.5,
    flow_path: str | os.PathLike | None = None,
    iom_nms: float | None = None,
    iom_nms_merge: bool = False,
    progress: bool = True,
) -> Path:
    """The frame loop every segmenter's inference shares: read each frame, detect, write the predictions artifact.

    Args:
        images: the video's T frame paths (one size).
        out: ``predictions/{method}/{video}.zarr``.
        detect_frame: ``(t, image (3, H, W) float32 RGB in [0, 1]) -> {"masks" (n, H, W) float
            probabilities, "scores" (n,), "labels" (n,) category ids, "boxes" (n, 4) xyxy pixels}``.
        method, categories, max_detections, params, attrs: of :class:`wsvis.io.predictions.PredictionWriter`.
        refine: ``"none"`` (the papers) or ``"grabcut"``: each binarised mask of a detection
            scoring >= ``refine_score`` re-cut by GrabCut started from it
            (:func:`wsvis.baselines.box.grabcut_refine`, ``refine_margin``,
            ``refine_iterations`` and ``refine_grow`` its ``margin``, ``iterations`` and ``grow``; ours, the
            counterpart of the pseudo-labels' ``irn.infer.refine`` at inference:
            Mask R-CNN's 28x28 masks and CondInst's stride-4 masks are pasted
            up to the frame, so their edges do not follow it). The cuts of frame t run in
            ``torch.get_num_threads()`` worker threads while the model detects in
            frame t + 1 (OpenCV releases the GIL; each cut seeds its thread's RNG,
            so the result does not depend on the threads); frames are written in order.
            ``"grabcut_flow"`` (ours): the cut starts from the mask's pixels that move differently from the
            surroundings of its box (:func:`wsvis.baselines.box.grabcut_refine` with the frame's flow,
            ``refine_ring_quantile`` and ``refine_motion_keep`` its ``ring_quantile`` and ``motion_keep``).
            ``refine_min_keep``: its ``min_keep`` (either cut; ours): a cut keeping less than that fraction of
            its mask leaves the mask (0: only an empty cut does). ``refine_fb_check`` (``grabcut_flow``; ours):
            pixels whose flow fails the forward-backward check do not count as moving
            (:func:`wsvis.flow.stage.frame_flow_unreliable`, ``grabcut_refine``'s ``unreliable``).
        refine_resolution: ``process`` or ``source`` (:func:`wsvis.baselines.box.cut_source`):
            the cuts on the frame at its source resolution (``source_images``, one per frame).
        source_images: the T frames at their source resolution (ingest ``source_image``).
        motion_filter, motion_filter_flow: ``ratio`` and ``min_flow`` of :func:`moving_detections`
            (confident: score >= ``refine_score``); static detections are dropped before the cuts.
            None: no filter (the papers).
        flow_path: the video's flow artifact (gap 1), needed by ``motion_filter`` and ``grabcut_flow``.
        iom_nms: ``threshold`` of :func:`suppress_contained` (score >= ``refine_score`` confident), on the
            cut masks (so with ``iom_nms_merge`` the union J counts is unchanged). None: no part suppression
            (the papers).
        iom_nms_merge: its ``merge``; a merged mask's box becomes the merged mask's bounds.
        progress: tqdm bar.

    Returns:
        ``out`` as a Path; masks are the probabilities binarised at 0.5 (then refined).

    Raises:
        ValueError: a frame whose size differs from the first one's (names the file);
            ``refine`` not one of :data:`PREDICT_REFINEMENTS`; ``motion_filter`` or ``grabcut_flow`` without
            ``flow_path``,
            or a flow artifact whose frames do not fit the video's.
    """
    if refine not in PREDICT_REFINEMENTS:
        raise ValueError(f"{out}: segment.predict.refine must be one of {PREDICT_REFINEMENTS}, got {refine!r}")
    forward = backward = None
    if motion_filter is not None or refine == "grabcut_flow":
        if flow_path is None:
            key = "motion_filter" if motion_filter is not None else "refine: grabcut_flow"
            raise ValueError(f"{out}: segment.predict.{key} needs the video's flow artifact")
        forward, backward = read_flow(flow_path, 1, "forward"), read_flow(flow_path, 1, "backward")
        if forward.shape[0] != max(len(images) - 1, 0):
            raise ValueError(f"{flow_path}: {forward.shape[0]} gap-1 flows for {len(images)} frames")
    first = image_tensor(images[0])
    size = tuple(int(s) for s in first.shape[1:])
    attrs = {**(attrs or {}), "refine": refine, "refine_score": refine_score, "refine_margin": refine_margin,
             "refine_iterations": refine_iterations, "refine_grow": refine_grow,
             "refine_resolution": refine_resolution, "refine_ring_quantile": refine_ring_quantile,
             "refine_motion_keep": refine_motion_keep, "refine_min_keep": refine_min_keep,
             "refine_fb_check": bool(refine_fb_check), "motion_filter": motion_filter,
             "motion_filter_flow": motion_filter_flow,
             "iom_nms": iom_nms, "iom_nms_merge": iom_nms_merge}
    workers = max(1, torch.get_num_threads())
    cut = dict(margin=refine_margin, iterations=refine_iterations, grow=refine_grow, min_keep=refine_min_keep)
    if refine == "grabcut_flow":
        cut.update(ring_quantile=refine_ring_quantile, motion_keep=refine_motion_keep)
    part = None if iom_nms is None else dict(threshold=iom_nms, score_threshold=refine_score, merge=iom_nms_merge)
    with PredictionWriter(
        out, num_frames=len(images), frame_size=size, max_detections=max_detections, method=method,
        categories=categories, params=params, attrs=attrs,
    ) as writer, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="refine") as pool:
        pending: deque[tuple[int, Future, np.ndarray, np.ndarray, np.ndarray]] = deque()
        for t, path in enumerate(tqdm(images, desc=f"predict {Path(out).stem}", disable=not progress)):
            img = first if t == 0 else image_tensor(path)
            if tuple(img.shape[1:]) != size:
                raise ValueError(f"{path}: frame size {tuple(img.shape[1:])} differs from the video's {size}")
            det = {k: v.cpu().numpy() for k, v in detect_frame(t, img).items()}
            masks, scores, labels, boxes = det["masks"] >= 0.5, det["scores"], det["labels"], det["boxes"]
            flow = None if forward is None else frame_flow(forward, backward, t, len(images))
            if flow is not None and tuple(flow.shape[:2]) != size:
                raise ValueError(f"{flow_path}: flow of size {tuple(flow.shape[:2])} for frames of {size}")
            if motion_filter is not None and flow is not None and len(scores):
                keep = moving_detections(
                    masks, scores, residual_flow_magnitude(flow), ratio=motion_filter, min_flow=motion_filter_flow,
                    score_threshold=refine_score,
                )
                masks, scores, labels, boxes = masks[keep], scores[keep], labels[keep], boxes[keep]
            confident = np.nonzero(scores >= refine_score)[0] if refine != "none" else np.zeros(0, int)
            if len(confident):
                rgb = (img.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
                src = cut_source(
                    refine_resolution, source_images[t] if source_images else None,
                    key="segment.predict.refine_resolution",
                )
                motion = {"flow": flow} if refine == "grabcut_flow" else {}
                if motion and refine_fb_check and flow is not None:
                    motion["unreliable"] = frame_flow_unreliable(forward, backward, t, len(images))
                masks_future = pool.submit(_refine_confident, rgb, masks, confident, {**cut, "source": src, **motion})
            else:  # nothing to cut: no hop through the pool
                masks_future = Future()
                masks_future.set_result(masks)
            pending.append((t, masks_future, scores, labels, boxes))
            # Write what is cut; hold at most `workers` frames back (memory).
            while pending and (pending[0][1].done() or len(pending) > workers):
                t_done, done, *rest = pending.popleft()
                writer.add_frame(t_done, *_parts_suppressed(done.result(), *rest, part))
        for t_done, done, *rest in pending:
            writer.add_frame(t_done, *_parts_suppressed(done.result(), *rest, part))
    return Path(out)


def _parts_suppressed(
    masks: np.ndarray, scores: np.ndarray, labels: np.ndarray, boxes: np.ndarray, part: dict[str, Any] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One frame's cut detections after :func:`suppress_contained` (keywords ``part``; None: unchanged).

    ``masks`` (n, H, W) bool, ``scores`` (n,), ``labels`` (n,), ``boxes`` (n, 4) xyxy pixels; returns the
    kept n' of each. A merged mask's box becomes the bounds of the union (x2, y2 exclusive, as the detectors')."""
    if part is None or not len(scores):
        return masks, scores, labels, boxes
    keep, merged = suppress_contained(masks, labels, scores, **part)
    grown = keep & (merged != masks).any(axis=(1, 2))
    if grown.any():
        boxes = boxes.copy()
        boxes[grown] = masks_to_boxes(torch.from_numpy(merged[grown])).numpy() + [0, 0, 1, 1]
    return merged[keep], scores[keep], labels[keep], boxes[keep]


def _refine_confident(rgb: np.ndarray, masks: np.ndarray, confident: np.ndarray, cut: dict[str, Any]) -> np.ndarray:
    """(n, H, W) bool ``masks`` with those indexed by ``confident`` re-cut (:func:`grabcut_refine` keywords ``cut``)."""
    masks[confident] = grabcut_refine(rgb, masks[confident], **cut)
    return masks


def predictions_to_pseudo(
    pred_path: str | os.PathLike,
    out: str | os.PathLike,
    score_threshold: float = 0.5,
    *,
    overlap_threshold: float = 0.5,
    variant: str = "selftrain",
    params: dict[str, Any] | None = None,
) -> Path:
    """Write a pseudo-label artifact from a predictions artifact (self-training input, §4.2).

    Per frame, detections with score >= ``score_threshold`` become instances of the label map,
    fused by :func:`fuse_instances`: placed in decreasing score, each keeps the pixels no
    higher-scoring detection took and is dropped when those are under ``overlap_threshold`` of
    its mask (MaskConsist does not say how masks become labels; 0.5 is Panoptic FPN's fusion,
    0 keeps every detection left with a pixel). Classes and scores are copied.

    Args:
        pred_path: ``predictions/{method}/{video}.zarr``.
        out: ``pseudo/{variant}/{video}.zarr``.
        score_threshold: minimum detection score kept.
        overlap_threshold: minimum fraction of a detection's mask left to it by higher scores.
        variant: the pseudo-label variant name stored in attrs.
        params: stored in attrs.

    Returns:
        ``out`` as a Path.

    Raises:
        ValueError: ``overlap_threshold`` outside [0, 1].
    """
    if not 0.0 <= overlap_threshold <= 1.0:
        raise ValueError(f"overlap_threshold {overlap_threshold} outside [0, 1]")
    group, attrs = read_predictions(pred_path)
    t_count, _, h, w = group["masks"].shape
    with PseudoLabelWriter(
        out, num_frames=t_count, frame_size=(h, w), variant=variant, categories=list(attrs["categories"]),
        params={"score_threshold": score_threshold, "overlap_threshold": overlap_threshold,
                "source": str(attrs.get("method")), **(params or {})},
    ) as writer:
        for t in range(t_count):
            masks, scores, labels, _ = frame_predictions(group, t)
            confident = np.nonzero(scores >= score_threshold)[0]
            keep, visible = fuse_instances(masks[confident], scores[confident], overlap_threshold)
            keep = confident[keep]
            writer.add_frame(t, visible, labels[keep], scores[keep])
    return Path(out)
