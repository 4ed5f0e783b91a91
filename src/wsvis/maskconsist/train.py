"""Train Mask R-CNN on pseudo-labels, plain or with MaskConsist (Liu et al., CVPR 2021, §3.3, §4.2).

``method="maskrcnn"``: the baseline, Mask R-CNN (He et al., ICCV 2017)
trained on the pseudo-labels of single frames.

``method="maskconsist"``: each batch element is a frame pair (t, t+δ) of one
video; each frame's training labels are :func:`wsvis.maskconsist.matching.maskconsist_targets`
of the *current* model's predictions on both frames and both frames'
pseudo-labels, computed inside the training forward before the losses.

Predictions without an extra forward or backward pass (§3.3: "does not
require extra forward or backward pass"): torchvision's ``MaskRCNN`` only
returns losses in train mode, so :func:`maskconsist_losses` runs its
training forward step by step (the same modules and loss functions as
``GeneralizedRCNN.forward``):

1. ``transform`` -> ``backbone`` (+FPN) -> RPN head, anchors, proposals (train-mode top-n);
2. RoI sampling (``rois_per_image``, default 512, 25 % positive) against the *original* pseudo-labels,
   then the box head on the sampled RoIs — the forward that the loss backpropagates through;
3. under ``no_grad``, the detached class logits / box deltas of those same RoIs go
   through ``roi_heads.postprocess_detections`` (softmax, box decoding, score
   0.05, per-class NMS 0.5, top 100; ``candidate_score`` and up): the model's current
   detections. Their masks need the mask head on the detected boxes: this is the one
   piece of network computation MaskConsist adds, a no-grad mask-head pass on at most
   ``top_k`` boxes per frame (``benchmarks/maskconsist_overhead.py`` measures it).
   Detections of classes present in neither frame's pseudo-labels are dropped
   first: they can neither be transferred (Alg. 1 line 4 needs a same-class
   pseudo-label) nor be matched to a transferable one (e_ij needs equal
   classes), so this changes no label and saves mask-head work;
4. matching and Alg. 1 on the CPU at frame resolution -> new labels per frame;
5. the sampled RoIs are re-assigned to the new labels (``assign_targets_to_proposals``,
   IoU 0.5) — not re-sampled, the box head output is reused — and the
   Fast R-CNN, mask and RPN losses are computed against the new labels.
   (Sampling again against the new labels, one more box-head pass, measured worse on
   davis2016: J 0.329 against 0.428.) Before iteration ``consist_from`` steps 3-5 are
   skipped: the pseudo-labels are the labels.

Both methods train through :func:`maskconsist_losses` (``consist=False`` for
the baseline: step 3-5 skipped), so their iteration times compare directly.

Sampling (deterministic from ``(seed, iteration)``, so a resumed CPU run ends
with the same weights as an uninterrupted one): iteration ``it`` draws
``batch_size`` frames uniformly from the frames that have at least one
pseudo-label (detectron2's ``filter_empty_annotations``: an unlabelled frame
would only teach "background" where flowIRN may simply have missed the
object). ``maskrcnn`` adds ``batch_size`` more such frames (same number of
images per iteration as ``maskconsist``); ``maskconsist`` pairs each drawn
frame t with t+δ (or t-δ when t+δ is past the end), δ = ``min(delta, T-1)``;
the partner may have no pseudo-label (then its labels are only what
MaskConsist transfers; an empty target — all RoIs background — is what
torchvision does with it). A one-frame video, or a video whose flow artifact
lacks the clipped gap, contributes single frames (labels = pseudo-labels
after IoM-NMS). The torch RNG (RoI/anchor sampling) is reseeded from
``(seed, iteration)`` at each iteration, and the training runs inside
:func:`wsvis.torchutil.deterministic_run` (deterministic CPU algorithms), so two
CPU runs with the same seed and thread count end with bit-identical weights.

Schedule (§4.2): SGD, lr 0.002, momentum 0.9, weight decay 1e-4, ×0.1 at 75 %
and 88 % of ``iterations``; no data augmentation (torchvision's resize to
``min_size``/``max_size`` only). The paper states no warm-up and no gradient
clipping (the defaults); both are options (``warmup_iters``, ``clip_grad_norm``)
for short, high-lr CPU schedules. A NaN or infinite loss stops the training
with ``FloatingPointError`` instead of training on NaN weights.

Outputs in ``out_dir``: ``checkpoints/ckpt_<it>.pt`` every ``checkpoint_every``
iterations (and at the end; emptied when the run's config changes),
(only the newest is kept), ``train_log.csv`` (iteration, losses, lr, seconds), ``model.pt`` (atomic;
``{"model", "backbone", "categories", "min_size", "max_size", "frozen_bn",
"method", "iterations"}``, plain types, ``weights_only``-loadable).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.roi_heads import fastrcnn_loss, maskrcnn_inference, maskrcnn_loss
from torchvision.models.detection.rpn import concat_box_prediction_layers
from torchvision.models.detection.transform import resize_boxes
from tqdm import tqdm

from wsvis.flow.stage import read_flow
from wsvis.io.images import read_image
from wsvis.io.pseudo import frame_instances, read_pseudo
from wsvis.io.store import atomic_file
from wsvis.maskconsist.matching import MERGES, Instances, make_instances, maskconsist_targets, to_target
from wsvis.models.maskrcnn import build_maskrcnn, paste_masks
from wsvis.torchutil import (
    deterministic_run,
    latest_checkpoint,
    optimizer_step,
    prepare_checkpoint_dir,
    resolve_device,
    resume_training,
    warmup_multistep,
)

__all__ = ["METHODS", "FramePair", "maskconsist_losses", "train_maskrcnn", "image_tensor"]

log = logging.getLogger(__name__)

#: Training methods: the baseline and MaskConsist.
METHODS = ("maskrcnn", "maskconsist")
PAIRS_FROM = ("start", "consist")  # MaskConsist frame pairs from iteration 0 (paper) or from consist_from (ours)

LOSS_KEYS = ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg")


class FramePair:
    """Indices of two images of a batch forming (t, t+δ), with their flows.

    Attributes:
        a, b: positions of frames t and t+δ in the batch.
        flow_b_to_a: (H, W, 2) float32 flow t+δ -> t on t+δ's grid (``backward[t]``).
        flow_a_to_b: (H, W, 2) float32 flow t -> t+δ on t's grid (``forward[t]``).
    """

    def __init__(self, a: int, b: int, flow_b_to_a: np.ndarray, flow_a_to_b: np.ndarray) -> None:
        self.a, self.b = a, b
        self.flow_b_to_a, self.flow_a_to_b = flow_b_to_a, flow_a_to_b


def image_tensor(path: str | os.PathLike) -> torch.Tensor:
    """Read a frame as the detector's input: (3, H, W) float32 RGB in [0, 1]."""
    return torch.from_numpy(read_image(path)).permute(2, 0, 1).float().div_(255.0)


def _resize_target(target: dict[str, torch.Tensor], size: tuple[int, int], new_size: tuple[int, int]) -> dict:
    """A frame-resolution target at the network input's resolution (as ``GeneralizedRCNNTransform.resize``)."""
    masks = target["masks"]
    if masks.shape[0]:
        masks = torch.nn.functional.interpolate(masks[:, None].float(), size=tuple(new_size))[:, 0].byte()
    else:
        masks = masks.new_zeros((0, *new_size))
    return {"boxes": resize_boxes(target["boxes"], size, new_size), "labels": target["labels"], "masks": masks}


@torch.no_grad()
def _predict_from_training(
    model: MaskRCNN,
    features: dict[str, torch.Tensor],
    proposals: list[torch.Tensor],
    class_logits: torch.Tensor,
    box_regression: torch.Tensor,
    image_sizes: list[tuple[int, int]],
    frame_sizes: list[tuple[int, int]],
    wanted: list[set[int] | None],
    top_k: int,
    candidate_score: float = 0.0,
) -> list[Instances | None]:
    """Current detections from the training forward's RoI outputs (step 3 of the module docstring).

    ``wanted[i]``: category ids worth predicting on image i (None: image i needs no predictions).
    Detections below ``candidate_score`` are dropped (besides the model's own score threshold, 0.05).
    Returns binary masks at frame resolution (threshold 0.5), boxes in frame pixels.
    """
    roi = model.roi_heads
    boxes, scores, labels = roi.postprocess_detections(class_logits.detach(), box_regression.detach(), proposals, image_sizes)
    keep_boxes, keep_labels, keep_scores = [], [], []
    for i in range(len(boxes)):
        classes = wanted[i] or set()
        sel = torch.as_tensor([int(c) in classes for c in labels[i].tolist()], dtype=torch.bool)
        sel &= scores[i] >= candidate_score
        sel = torch.nonzero(sel).flatten()[:top_k]  # postprocess_detections sorts by score
        keep_boxes.append(boxes[i][sel])
        keep_labels.append(labels[i][sel])
        keep_scores.append(scores[i][sel])
    probs: list[torch.Tensor] = [b.new_zeros((0, 1, 28, 28)) for b in keep_boxes]
    if sum(len(b) for b in keep_boxes):
        x = roi.mask_predictor(roi.mask_head(roi.mask_roi_pool(features, keep_boxes, image_sizes)))
        probs = maskrcnn_inference(x, keep_labels)
    out: list[Instances | None] = []
    for i in range(len(boxes)):
        if wanted[i] is None:
            out.append(None)
            continue
        fb = resize_boxes(keep_boxes[i], image_sizes[i], frame_sizes[i]).cpu()
        masks = paste_masks(probs[i].cpu(), fb, frame_sizes[i]) >= 0.5
        out.append(Instances(masks, fb.float(), keep_labels[i].cpu().long(), keep_scores[i].cpu().float()))
    return out


def maskconsist_losses(
    model: MaskRCNN,
    images: list[torch.Tensor],
    pseudo: list[Instances],
    pairs: Sequence[FramePair] = (),
    *,
    consist: bool = True,
    intra: bool = True,
    inter: bool = True,
    iom_nms: bool = True,
    iou_threshold: float = 0.5,
    iom_threshold: float = 0.5,
    top_k: int = 100,
    candidate_score: float = 0.0,
    merge: str = "union",
) -> tuple[dict[str, torch.Tensor], list[Instances]]:
    """One training forward of a torchvision Mask R-CNN with MaskConsist labels (module docstring).

    Args:
        model: Mask R-CNN in train mode.
        images: B frames, (3, H_i, W_i) float32 RGB in [0, 1], on the model's device.
        pseudo: B original pseudo-labels (frame resolution, CPU).
        pairs: which images form (t, t+δ) pairs, with their flows; an image in
            no pair is a single frame.
        consist: False -> the baseline: the targets are ``pseudo`` as given.
        intra, inter, iom_nms, iou_threshold, iom_threshold, top_k, merge: of
            :func:`wsvis.maskconsist.matching.maskconsist_targets`.
        candidate_score: the current detections that enter matching score at least this
            (:func:`train_maskrcnn`).

    Returns:
        ``(losses, labels)``: the five torchvision losses (scalar tensors with
        grad: ``loss_classifier``, ``loss_box_reg``, ``loss_mask``,
        ``loss_objectness``, ``loss_rpn_box_reg``) and the B label sets trained on.
    """
    dev = images[0].device
    frame_sizes = [tuple(int(s) for s in img.shape[-2:]) for img in images]
    image_list, _ = model.transform(images)
    sizes = [tuple(int(s) for s in hw) for hw in image_list.image_sizes]
    features = model.backbone(image_list.tensors)

    # RPN (GeneralizedRCNN / RegionProposalNetwork.forward, losses deferred until the labels are known)
    rpn = model.rpn
    feats = list(features.values())
    objectness, deltas = rpn.head(feats)
    anchors = rpn.anchor_generator(image_list, feats)
    per_level = [int(o[0].shape[0] * o[0].shape[1] * o[0].shape[2]) for o in objectness]
    objectness, deltas = concat_box_prediction_layers(objectness, deltas)
    proposals = rpn.box_coder.decode(deltas.detach(), anchors).view(len(anchors), -1, 4)
    proposals, _ = rpn.filter_proposals(proposals, objectness, image_list.image_sizes, per_level)

    # RoI sampling against the original pseudo-labels, box head once (with grad).
    roi = model.roi_heads
    targets = [_resize_target(to_target(p, dev), fs, s) for p, fs, s in zip(pseudo, frame_sizes, sizes)]
    rois, matched_idxs, labels, regression_targets = roi.select_training_samples(proposals, targets)
    box_features = roi.box_head(roi.box_roi_pool(features, rois, image_list.image_sizes))
    class_logits, box_regression = roi.box_predictor(box_features)

    trained_on = list(pseudo)
    if consist:
        partner = {}
        for p in pairs:
            partner[p.a] = p.b
            partner[p.b] = p.a
        need = inter and bool(pairs)
        wanted: list[set[int] | None] = [None] * len(images)
        if need:
            for i, j in partner.items():
                wanted[i] = set(pseudo[i].labels.tolist()) | set(pseudo[j].labels.tolist())
        preds = (
            _predict_from_training(model, features, rois, class_logits, box_regression, image_list.image_sizes,
                                   frame_sizes, wanted, top_k, candidate_score)
            if need and any(w for w in wanted)
            else [None] * len(images)
        )
        kw = dict(intra=intra, inter=inter, iom_nms=iom_nms, iou_threshold=iou_threshold,
                  iom_threshold=iom_threshold, top_k=top_k, merge=merge)
        for i in range(len(images)):  # single frames: pseudo-labels (after IoM-NMS)
            if i not in partner:
                trained_on[i] = maskconsist_targets(pseudo[i], pseudo[i], pseudo[i], pseudo[i], None, None, **kw)[0]
        for p in pairs:
            pa = preds[p.a] if preds[p.a] is not None else pseudo[p.a].select([])
            pb = preds[p.b] if preds[p.b] is not None else pseudo[p.b].select([])
            trained_on[p.a], trained_on[p.b] = maskconsist_targets(
                pa, pb, pseudo[p.a], pseudo[p.b], p.flow_b_to_a, p.flow_a_to_b, **kw
            )
        targets = [_resize_target(to_target(t, dev), fs, s) for t, fs, s in zip(trained_on, frame_sizes, sizes)]
        # Re-assign the sampled RoIs to the new labels (no re-sampling: the box head output is reused).
        gt_boxes = [t["boxes"] for t in targets]
        matched_idxs, labels = roi.assign_targets_to_proposals(rois, gt_boxes, [t["labels"] for t in targets])
        matched_gt = [
            (g if g.numel() else torch.zeros((1, 4), dtype=g.dtype, device=dev))[m] for g, m in zip(gt_boxes, matched_idxs)
        ]
        regression_targets = roi.box_coder.encode(matched_gt, rois)

    loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
    pos = [torch.where(lab > 0)[0] for lab in labels]
    mask_rois = [r[i] for r, i in zip(rois, pos)]
    mask_logits = roi.mask_predictor(roi.mask_head(roi.mask_roi_pool(features, mask_rois, image_list.image_sizes)))
    loss_mask = maskrcnn_loss(
        mask_logits, mask_rois, [t["masks"] for t in targets], [t["labels"] for t in targets],
        [m[i] for m, i in zip(matched_idxs, pos)],
    )
    rpn_labels, rpn_gt = rpn.assign_targets_to_anchors(anchors, targets)
    rpn_reg = rpn.box_coder.encode(rpn_gt, anchors)
    loss_objectness, loss_rpn_box_reg = rpn.compute_loss(objectness, deltas, rpn_labels, rpn_reg)
    losses = {
        "loss_classifier": loss_classifier,
        "loss_box_reg": loss_box_reg,
        "loss_mask": loss_mask,
        "loss_objectness": loss_objectness,
        "loss_rpn_box_reg": loss_rpn_box_reg,
    }
    return losses, trained_on


class _Video:
    """One video's frames, pseudo-labels (lazy) and flows for gap δ (lazy)."""

    def __init__(self, frames: Sequence[str | os.PathLike], pseudo_path: Any, flow_path: Any, delta: int, pairs: bool):
        self.frames = [os.fspath(p) for p in frames]
        self.instances, self.classes, self.scores, _ = read_pseudo(pseudo_path)
        if self.instances.shape[0] != len(self.frames):
            raise ValueError(f"{pseudo_path}: {self.instances.shape[0]} pseudo-label frames for {len(self.frames)} images")
        self.labelled = [t for t in range(len(self.frames)) if np.any(self.instances[t])]
        self.gap = min(int(delta), len(self.frames) - 1)
        self.forward = self.backward = None
        if pairs and self.gap >= 1 and flow_path is not None:
            try:
                self.forward = read_flow(flow_path, self.gap, "forward")
                self.backward = read_flow(flow_path, self.gap, "backward")
            except KeyError as exc:  # the artifact lacks the (clipped) gap; a missing artifact is an error
                log.warning("%s: no flow for gap %d (%s); its frames train as single frames", flow_path, self.gap, exc)

    def pseudo(self, t: int) -> Instances:
        _, masks, cls, sc = frame_instances(np.asarray(self.instances[t]), self.classes, self.scores)
        return make_instances(masks, cls, sc)

    def partner(self, t: int) -> int | None:
        if self.forward is None:
            return None
        return t + self.gap if t + self.gap < len(self.frames) else t - self.gap


def _iteration_batch(videos: list[_Video], index: list[tuple[int, int]], it: int, seed: int, batch_size: int,
                     pairs: bool) -> list[tuple[int, int, int | None]]:
    """``(video, t, partner or None)`` of iteration ``it``, drawn from ``(seed, it)`` only."""
    rng = np.random.default_rng([seed, it])
    picks = rng.integers(0, len(index), size=batch_size * (1 if pairs else 2))
    out = []
    for p in picks:
        v, t = index[int(p)]
        u = videos[v].partner(t) if pairs else None
        out.append((v, min(t, u), max(t, u)) if u is not None else (v, t, None))
    return out


def _load_batch(videos: list[_Video], batch, dev: torch.device):
    images, pseudo, pairs = [], [], []
    for v, t, u in batch:
        vid = videos[v]
        for f in (t, u) if u is not None else (t,):
            img = image_tensor(vid.frames[f])
            p = vid.pseudo(f)
            if tuple(p.masks.shape[1:]) != tuple(img.shape[1:]):
                raise ValueError(f"{vid.frames[f]}: pseudo-labels {tuple(p.masks.shape[1:])} vs frame {tuple(img.shape[1:])}")
            images.append(img.to(dev))
            pseudo.append(p)
        if u is not None:
            a = len(images) - 2
            pairs.append(FramePair(a, a + 1, np.asarray(vid.backward[t], np.float32), np.asarray(vid.forward[t], np.float32)))
    return images, pseudo, pairs


def train_maskrcnn(
    frames: Sequence[Sequence[str | os.PathLike]],
    pseudo_paths: Sequence[str | os.PathLike],
    flow_paths: Sequence[str | os.PathLike | None] | None,
    out_dir: str | os.PathLike,
    *,
    method: str = "maskconsist",
    categories: Sequence[str],
    delta: int = 5,
    intra: bool = True,
    inter: bool = True,
    iom_nms: bool = True,
    top_k: int = 100,
    consist_from: int = 0,
    candidate_score: float = 0.0,
    merge: str = "union",
    pairs_from: str = "start",
    rois_per_image: int = 512,
    fpn_channels: int = 256,
    backbone: str = "resnet50",
    weights: str = "none",
    min_size: int = 800,
    max_size: int = 1333,
    iterations: int = 90000,
    batch_size: int = 1,
    base_lr: float = 0.002,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    steps: tuple[float, float] = (0.75, 0.88),
    gamma: float = 0.1,
    warmup_iters: int = 0,
    warmup_factor: float = 0.001,
    clip_grad_norm: float | None = None,
    seed: int = 0,
    checkpoint_every: int = 1000,
    log_every: int = 20,
    device: str = "auto",
    max_iterations: int | None = None,
    progress: bool = True,
) -> Path:
    """Train Mask R-CNN (``method="maskrcnn"``) or MaskConsist (``"maskconsist"``); write ``out_dir/model.pt``.

    Self-training (§4.2 "ours self-training") is this same function with
    ``pseudo_paths`` made from round 1's predictions by
    :func:`wsvis.maskconsist.predict.predictions_to_pseudo`.

    Args:
        frames: per video, its frame paths in temporal order.
        pseudo_paths: per video, a pseudo-label artifact (``pseudo/{variant}/{video}.zarr``)
            at frame resolution.
        flow_paths: per video, the flow artifact holding gap ``delta`` (and,
            for videos of T <= δ frames, gap T-1 if it is to be used), or None
            (everything then trains as single frames). Unused by ``maskrcnn``.
        out_dir: ``models/{method}/``.
        method: ``"maskrcnn" | "maskconsist"``.
        categories: class names in category-id order (num_classes = len + 1).
        delta: δ, frames between t and t+δ (paper 5 on YTVIS, 3 on Cityscapes).
        intra, inter, iom_nms: MaskConsist components (Table 5; see
            :func:`wsvis.maskconsist.matching.maskconsist_targets`).
        top_k: predictions per frame used for matching (paper 100).
        consist_from: iteration from which MaskConsist builds its labels; before it the frame
            pairs train on their pseudo-labels alone, as ``maskrcnn`` (ours; paper 0, the
            default). An untrained model's detections (score >= 0.05, masks of an untrained
            head) are boxes half filled at random; merged across frames they are larger than the
            pseudo-label they cover, IoM-NMS keeps the larger, and the model learns blobs that
            the next merges make larger still. A 90K-iteration schedule outgrows this start; a
            few hundred CPU iterations do not.
        candidate_score: the current detections that enter intra- and inter-frame matching score
            at least this (ours; paper: the top ``top_k`` above the model's 0.05, i.e. 0). §3.3
            motivates the candidates as the model's "high-confidence predictions"; a briefly
            trained model's low-score boxes jitter around the object, and the union of intra-frame
            matching adds them all into one label larger than any of them.
        merge: Alg. 1 line 5: ``"union"`` (paper) or ``"majority"`` (ours: a pixel vote of the
            warped mask, the matched mask and the frame's pseudo-labels of the class; see
            :func:`wsvis.maskconsist.matching.transfer_labels`).
        pairs_from: ``"start"`` (paper): every MaskConsist iteration draws ``batch_size`` frame
            pairs (t, t±δ); ``"consist"`` (ours): before ``consist_from`` it draws
            2 x ``batch_size`` single frames, as ``maskrcnn`` does, and pairs from then on. Before
            ``consist_from`` a pair's partner is a near copy of its frame that only the pseudo-labels
            label, so pairs halve the distinct frames seen for nothing. No effect at ``consist_from`` 0.
        rois_per_image: RoIs sampled per image for the box head (512; see
            :func:`wsvis.models.maskrcnn.build_maskrcnn`).
        fpn_channels, backbone, weights, min_size, max_size: of :func:`wsvis.models.maskrcnn.build_maskrcnn`.
        iterations: schedule length (paper 90K YTVIS, 75K Cityscapes).
        batch_size: frame pairs per iteration (``maskrcnn``: 2 x batch_size frames).
        base_lr, momentum, weight_decay, steps, gamma: SGD and the step schedule
            (decay by ``gamma`` at ``steps`` fractions of ``iterations``).
        warmup_iters, warmup_factor: linear LR warm-up from ``warmup_factor`` x ``base_lr``
            over ``warmup_iters`` iterations (:func:`wsvis.torchutil.warmup_multistep`). The
            paper states none (0, the default); detectron2's default is 1000 from 0.001.
        clip_grad_norm: clip the gradients' total L2 norm to this before each step (None: off,
            as the paper). Short CPU schedules at a high lr need one of these two.
        seed: sampling / initialisation seed.
        checkpoint_every: iterations between checkpoints (the last is always saved).
        log_every: iterations between ``train_log.csv`` rows (the last is always logged).
        device: ``auto | cpu | cuda[:N]``.
        max_iterations: stop after this many (the schedule still spans ``iterations``).
        progress: tqdm bar.

    Returns:
        Path of ``model.pt``.

    Raises:
        ValueError: unknown method, inputs of different lengths, no labelled frame,
            pseudo-labels not of the frames' size, ``consist_from`` < 0,
            ``candidate_score`` outside [0, 1], unknown ``merge`` or ``pairs_from``.
        FloatingPointError: the loss became NaN or infinite (the training diverged); the last
            checkpoint is from before.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    if consist_from < 0:
        raise ValueError(f"consist_from must be >= 0 (an iteration), got {consist_from}")
    if not 0 <= candidate_score <= 1:
        raise ValueError(f"candidate_score must be in [0, 1], got {candidate_score}")
    if merge not in MERGES:
        raise ValueError(f"segment.maskconsist.merge must be one of {MERGES}, got {merge!r}")
    if pairs_from not in PAIRS_FROM:
        raise ValueError(f"segment.maskconsist.pairs_from must be one of {PAIRS_FROM}, got {pairs_from!r}")
    if len(pseudo_paths) != len(frames) or (flow_paths is not None and len(flow_paths) != len(frames)):
        raise ValueError("frames, pseudo_paths and flow_paths need one entry per video")
    out_dir = Path(out_dir)
    pairs = method == "maskconsist"
    videos = [
        _Video(f, p, flow_paths[v] if flow_paths is not None else None, delta, pairs)
        for v, (f, p) in enumerate(zip(frames, pseudo_paths))
    ]
    index = [(v, t) for v, vid in enumerate(videos) for t in vid.labelled]
    if not index:
        raise ValueError("train_maskrcnn: no frame has a pseudo-label")

    dev = resolve_device(device)
    with deterministic_run(seed, dev):
        model = build_maskrcnn(
            len(categories) + 1, backbone=backbone, weights=weights, min_size=min_size, max_size=max_size,
            rois_per_image=rois_per_image, fpn_channels=fpn_channels,
        )
        frozen_bn = weights != "none"
        model.to(dev).train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=base_lr, momentum=momentum, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, warmup_multistep(iterations, warmup_iters, warmup_factor, steps, gamma))
        stop = iterations if max_iterations is None else min(iterations, int(max_iterations))
        config = {
            "method": method, "categories": list(categories), "delta": delta, "intra": intra, "inter": inter,
            "iom_nms": iom_nms, "top_k": top_k, "consist_from": consist_from, "candidate_score": candidate_score,
            "merge": merge, "pairs_from": pairs_from,
            "rois_per_image": rois_per_image, "fpn_channels": fpn_channels, "backbone": backbone,
            "weights": str(weights), "min_size": min_size, "max_size": max_size, "iterations": iterations,
            "batch_size": batch_size, "base_lr": base_lr, "momentum": momentum, "weight_decay": weight_decay,
            "steps": list(steps), "gamma": gamma, "seed": seed,
            "warmup_iters": warmup_iters, "warmup_factor": warmup_factor, "clip_grad_norm": clip_grad_norm,
            "frames": [len(v.frames) for v in videos],
        }
        inputs = [p for f in frames for p in f] + list(pseudo_paths) + [p for p in (flow_paths or []) if p is not None]
        ckpt_dir = prepare_checkpoint_dir(out_dir / "checkpoints", config, inputs=inputs)
        last = latest_checkpoint(ckpt_dir)
        start, train_log = resume_training(last, out_dir / "train_log.csv", model=model, optimizer=opt,
                                           lr_scheduler=sched)
        if last is not None:
            log.info("resuming %s training from %s (iteration %d)", method, last, start)

        bar = tqdm(range(start, stop), desc=f"{method} {out_dir.name}", initial=start, total=stop,
                   disable=not progress)
        t0 = time.time()
        for it in bar:
            torch.manual_seed(int(np.random.default_rng([seed, it, 1]).integers(2**62)))
            consist = pairs and it >= consist_from
            draw_pairs = pairs and (consist or pairs_from == "start")
            batch = _iteration_batch(videos, index, it, seed, batch_size, draw_pairs)
            images, pseudo, frame_pairs = _load_batch(videos, batch, dev)
            losses, _ = maskconsist_losses(
                model, images, pseudo, frame_pairs, consist=consist, intra=intra, inter=inter,
                iom_nms=iom_nms, top_k=top_k, candidate_score=candidate_score, merge=merge,
            )
            loss = sum(losses.values())
            optimizer_step(loss, losses, model=model, optimizer=opt, lr_scheduler=sched, iteration=it, stop=stop,
                           train_log=train_log, ckpt_dir=ckpt_dir, config=config, log_every=log_every,
                           checkpoint_every=checkpoint_every, seconds=time.time() - t0, clip_grad_norm=clip_grad_norm)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")

    out = out_dir / "model.pt"
    state = {
        "model": model.state_dict(),
        "backbone": backbone,
        "categories": list(categories),
        "min_size": int(min_size),
        "max_size": int(max_size),
        "frozen_bn": bool(frozen_bn),
        "fpn_channels": int(fpn_channels),
        "method": method,
        "iterations": int(stop),
    }
    with atomic_file(out) as tmp:
        torch.save(state, tmp)
    return out
