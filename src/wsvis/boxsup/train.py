"""Train CondInst from boxes: ``stcseg``, ``boxinst``, ``boxinst_flow``.

Methods (each trains FCOS's detection losses — focal classification, GIoU
box regression, centre-ness — plus a mask loss on the top-64 positive
locations per image, at 1/4 input resolution):

=============  ===============================================================
method         mask loss
=============  ===============================================================
stcseg         puzzle loss L_bd + L_bx on the STC pseudo-label M inside each
               box (STC-Seg Eq. 3-6; switches ``boundary`` bd|bce|dice|none and
               ``position_penalty``, Table IV)
boxinst        projection loss + pairwise loss with Lab-colour label identity
               (BoxInst: dilation 2, τ_color 0.3, pairwise weight ramped up
               linearly over ``pairwise_warmup`` = 10K iterations)
boxinst_flow   two-stream encoder (``detection_fusion`` sum|max|none,
               ``mask_fusion`` concat|sum|max|none, Ikeda & Mori Table 2, 4) and
               the pairwise loss whose label identity also needs flow
               similarity (``flow_pairwise``; τ_flow 0.6, θ_flow 0.5, Eq. 3-4)
=============  ===============================================================

Targets on the mask grid (stride 4 of the padded input, pixel j <-> input
coordinate 4j + 2 as BoxInst samples it): box masks from the boxes; M resized
(nearest) to the input and sampled there; colours and flow colours are the
4x4 averages (BoxInst's ``avg_pool2d``) of the resized image / flow image.

The flow image of frame t is :func:`wsvis.flow.ops.flow_to_color` of the gap-1
flow t -> t+1 (the last frame: the negated flow back to t-1, an
approximation), scaled to [0, 1] (Ikeda & Mori: "optical flow in RGB colour space").

Data: frames of the training videos that have at least one box. Iteration
``it`` draws ``batch_size`` of them and a left-right flip for each (STC-Seg
§IV-D's only augmentation) from ``(seed, it)`` alone; the torch RNG is
reseeded per iteration, so a resumed run ends with the same weights as an
uninterrupted one (CPU). The training runs inside
:func:`wsvis.torchutil.deterministic_run` (deterministic CPU algorithms), so two
CPU runs with the same seed and thread count end with bit-identical weights.

Augmentation: the flips, and with ``scales`` of more than one factor, multi-scale
training: iteration ``it`` also draws one factor s from ``(seed, it)`` and the
model resizes that iteration's frames and flow images to s x ``min_size`` /
``max_size`` (CondInst and BoxInst train at shorter sides 640-800 and test at
800: factors 0.8-1.0; STC-Seg names flips alone). Boxes, STC maps and the
pairwise colours follow the resized input (``image_list.image_sizes``).

Schedule (STC-Seg §IV-D, BoxInst): SGD with momentum, linear warm-up over
``warmup_iters`` from ``warmup_factor`` x ``base_lr``, then x ``gamma`` at
each of ``steps`` (fractions of ``iterations``); weight decay on every
parameter except those of normalisation layers. Defaults are BoxInst's
(lr 0.01, 90K iterations, decay at 60K and 80K, 1000 warm-up iterations).
STC-Seg's own YT-VIS schedule (lr 1e-4 decaying from 30K of 80K iterations
down to 2e-5) is a config away (per-run ``train``); its exponential decay
is simplified to a multi-step one.

Outputs in ``out_dir``: ``checkpoints/ckpt_<it>.pt`` (newest only),
``train_log.csv``, ``model.pt`` (``{"model", "categories", "method",
"iterations", <architecture keys of wsvis.models.condinst.ARCH_KEYS>}``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from wsvis.flow.ops import flow_to_color
from wsvis.flow.stage import frame_flow, read_flow
from wsvis.io.store import atomic_file, open_artifact
from wsvis.transforms import hflip_flow
from wsvis.losses import (
    color_similarity,
    flow_similarity,
    lab_image,
    pairwise_label_identity,
    pairwise_loss,
    projection_loss,
    puzzle_loss,
)
from wsvis.maskconsist.train import image_tensor
from wsvis.models.condinst import ARCH_KEYS, CondInst, build_condinst
from wsvis.models.tta import hflip_boxes
from wsvis.baselines.box import box_masks
from wsvis.config import without_legacy_defaults
from wsvis.torchutil import (
    deterministic_run,
    latest_checkpoint,
    optimizer_step,
    prepare_checkpoint_dir,
    resolve_device,
    resume_training,
    warmup_multistep,
)

__all__ = ["BOX_METHODS", "flow_image", "box_mask_losses", "train_condinst", "param_groups"]

log = logging.getLogger(__name__)

#: Box-supervised methods.
BOX_METHODS = ("stcseg", "boxinst", "boxinst_flow")


def flow_image(flow: np.ndarray) -> torch.Tensor:
    """(H, W, 2) flow in pixels -> (3, H, W) float32 flow colour image in [0, 1] (Middlebury wheel)."""
    return torch.from_numpy(flow_to_color(flow)).permute(2, 0, 1).float().div_(255.0)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """SGD parameter groups: weight decay on all trainable parameters but those of normalisation
    layers (BatchNorm, GroupNorm, LayerNorm), which get none (STC-Seg §IV-D)."""
    norm_types = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    norm_ids = {id(p) for m in model.modules() if isinstance(m, norm_types) for p in m.parameters(recurse=False)}
    decay = [p for p in model.parameters() if p.requires_grad and id(p) not in norm_ids]
    no_decay = [p for p in model.parameters() if p.requires_grad and id(p) in norm_ids]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _set_input_size(model: CondInst, scale: float, min_size: int, max_size: int) -> None:
    """Resize the model's inputs to ``scale`` x (``min_size``, ``max_size``) from its next forward on.
    One size for the frames and their flow images (the transform resizes each call's batch alike)."""
    model.fcos.transform.min_size = (max(32, int(round(scale * min_size))),)
    model.fcos.transform.max_size = max(32, int(round(scale * max_size)))


def _grid(x: torch.Tensor, in_size: tuple[int, int], padded: tuple[int, int], mode: str) -> torch.Tensor:
    """(C, H, W) frame-resolution map -> the mask grid: resized to the input, padded, sampled at 4j + 2
    (``nearest``) or averaged over 4x4 cells (``avg``)."""
    x = F.interpolate(x[None].float(), size=in_size, mode="nearest" if mode == "nearest" else "bilinear",
                      align_corners=None if mode == "nearest" else False)
    x = F.pad(x, (0, padded[1] - in_size[1], 0, padded[0] - in_size[0]))
    if mode == "nearest":
        return x[0, :, 2::4, 2::4]
    return F.avg_pool2d(x, 4, 4)[0]


def box_mask_losses(
    method: str,
    masks: dict[str, Any],
    images: list[torch.Tensor],
    *,
    pseudo: list[torch.Tensor] | None = None,
    flows: list[torch.Tensor] | None = None,
    boundary: str = "bd",
    position_penalty: bool = True,
    pairwise_weight: float = 1.0,
    color_threshold: float = 0.3,
    theta_color: float = 2.0,
    flow_pairwise: bool = True,
    flow_threshold: float = 0.6,
    theta_flow: float = 0.5,
    kernel_size: int = 3,
    dilation: int = 2,
) -> dict[str, torch.Tensor]:
    """The mask losses of one training forward (module docstring's table).

    Args:
        method: ``stcseg | boxinst | boxinst_flow``.
        masks: the second output of :meth:`wsvis.models.condinst.CondInst.train_forward`.
        images: the N frames (3, H, W) in [0, 1] given to it (colours for the pairwise loss).
        pseudo: stcseg: N (H, W) bool maps M at frame resolution.
        flows: boxinst_flow with ``flow_pairwise``: N flow colour images (3, H, W) in [0, 1].
        boundary, position_penalty: puzzle-loss switches (STC-Seg Table IV).
        pairwise_weight: the pairwise term's factor this iteration (warm-up x weight).
        color_threshold, theta_color: τ_color and θ_color (BoxInst: 0.3 and 2).
        flow_pairwise, flow_threshold, theta_flow: flow label identity on/off, τ_flow, θ_flow.
        kernel_size, dilation: the pairwise neighbourhood (BoxInst 3 and 2).

    Returns:
        stcseg ``{"loss_boundary", "loss_box"}``; boxinst(_flow) ``{"loss_projection", "loss_pairwise"}``.

    Raises:
        ValueError: unknown method or a missing input it needs.
    """
    if method not in BOX_METHODS:
        raise ValueError(f"unknown box-supervised method {method!r}; choose one of {list(BOX_METHODS)}")
    logits, img_idx, gt_idx = masks["logits"], masks["image"], masks["gt"]
    image_list, targets = masks["image_list"], masks["targets"]
    padded = tuple(int(s) for s in image_list.tensors.shape[-2:])
    grid = (logits.shape[-2], logits.shape[-1])
    boxes = []
    for k in range(logits.shape[0]):
        b = targets[int(img_idx[k])]["boxes"][int(gt_idx[k])].detach().cpu().numpy() / 4.0
        boxes.append(box_masks(b[None], grid)[0])
    dev = logits.device
    box = torch.from_numpy(np.stack(boxes)).to(dev) if boxes else torch.zeros((0, *grid), dtype=torch.bool, device=dev)
    if method == "stcseg":
        if pseudo is None:
            raise ValueError("stcseg needs the STC pseudo-labels M of its frames")
        m_grid = [_grid(p[None].to(dev), tuple(s), padded, "nearest")[0] > 0.5
                  for p, s in zip(pseudo, image_list.image_sizes)]
        m = torch.stack([m_grid[int(i)] for i in img_idx]) if len(img_idx) else box
        return puzzle_loss(logits, m & box, box, boundary=boundary, position_penalty=position_penalty)
    labs = torch.stack([lab_image(_grid(img.to(dev), tuple(s), padded, "avg"))
                        for img, s in zip(images, image_list.image_sizes)])
    s_color = color_similarity(labs, theta_color, kernel_size, dilation)
    s_flow = None
    if method == "boxinst_flow" and flow_pairwise:
        if flows is None:
            raise ValueError("boxinst_flow with flow_pairwise needs the flow images of its frames")
        fl = torch.stack([_grid(f.to(dev), tuple(s), padded, "avg") for f, s in zip(flows, image_list.image_sizes)])
        s_flow = flow_similarity(fl, theta_flow, kernel_size, dilation)
    identity = pairwise_label_identity(s_color, s_flow, color_threshold, flow_threshold)
    return {
        "loss_projection": projection_loss(logits.sigmoid(), box),
        "loss_pairwise": pairwise_weight * pairwise_loss(logits, identity[img_idx], box, kernel_size, dilation),
    }


class _Video:
    """One training video: frames, boxes, and lazily its STC foreground and flow."""

    def __init__(self, frames, boxes, box_classes, categories, pseudo_path, flow_path):
        self.frames = [os.fspath(p) for p in frames]
        n = len(self.frames)
        if len(boxes) != n or len(box_classes) != n:
            raise ValueError(f"{self.frames[0] if n else '?'}: {n} frames but {len(boxes)} box lists")
        self.boxes, self.labels = [], []
        for t, (b, c) in enumerate(zip(boxes, box_classes)):
            b = np.asarray(b, np.float32).reshape(-1, 4)
            unknown = [x for x in c if x not in categories]
            if unknown or len(c) != len(b):
                raise ValueError(f"{self.frames[t]}: box classes {list(c)} do not fit {len(b)} boxes / categories "
                                 f"{list(categories)}")
            keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
            self.boxes.append(b[keep])
            self.labels.append(np.asarray([categories.index(x) + 1 for x in c], np.int64)[keep])
        self.labelled = [t for t in range(n) if len(self.boxes[t])]
        self.foreground = None
        if pseudo_path is not None:
            group = open_artifact(pseudo_path, "pseudo")
            if "foreground" not in group:
                raise ValueError(f"{pseudo_path}: not an STC pseudo-label artifact (no 'foreground' array)")
            self.foreground = group["foreground"]
            if self.foreground.shape[0] != n:
                raise ValueError(f"{pseudo_path}: {self.foreground.shape[0]} frames for {n} images")
        self.forward = self.backward = None
        if flow_path is not None:
            self.forward, self.backward = read_flow(flow_path, 1, "forward"), read_flow(flow_path, 1, "backward")

    def flow(self, t: int) -> np.ndarray:
        f = frame_flow(self.forward, self.backward, t, len(self.frames), negate_backward=True)
        if f is None:
            raise ValueError(f"{self.frames[t]}: a one-frame video has no flow for the two-stream model")
        return f


def _load(videos: list[_Video], picks, dev, need_pseudo: bool, need_flow: bool):
    images, targets, pseudo, flows = [], [], [], []
    for (v, t), flip in picks:
        vid = videos[v]
        img = image_tensor(vid.frames[t])
        w = img.shape[-1]
        boxes = torch.from_numpy(vid.boxes[t].copy())
        if need_pseudo:
            m = torch.from_numpy(np.asarray(vid.foreground[t], bool))
            if tuple(m.shape) != tuple(img.shape[1:]):
                raise ValueError(f"{vid.frames[t]}: pseudo-label {tuple(m.shape)} vs frame {tuple(img.shape[1:])}")
        if need_flow:
            f = vid.flow(t)
            if f.shape[:2] != tuple(img.shape[1:]):
                raise ValueError(f"{vid.frames[t]}: flow {f.shape[:2]} vs frame {tuple(img.shape[1:])}")
        if flip:
            img = img.flip(-1)
            boxes = hflip_boxes(boxes, w)
            if need_pseudo:
                m = m.flip(-1)
            if need_flow:
                f = hflip_flow(f)
        images.append(img.to(dev))
        targets.append({"boxes": boxes.to(dev), "labels": torch.from_numpy(vid.labels[t]).to(dev)})
        if need_pseudo:
            pseudo.append(m)
        if need_flow:
            flows.append(flow_image(f).to(dev))
    return images, targets, (pseudo if need_pseudo else None), (flows if need_flow else None)


def train_condinst(
    frames: Sequence[Sequence[str | os.PathLike]],
    boxes: Sequence[Sequence[Sequence[Sequence[float]]]],
    box_classes: Sequence[Sequence[Sequence[str]]],
    out_dir: str | os.PathLike,
    *,
    method: str,
    categories: Sequence[str],
    pseudo_paths: Sequence[str | os.PathLike] | None = None,
    flow_paths: Sequence[str | os.PathLike] | None = None,
    backbone: str = "resnet50",
    weights: str = "none",
    min_size: int = 800,
    max_size: int = 1333,
    mask_channels: int = 8,
    branch_channels: int = 128,
    head_channels: int = 16,
    head_convs: int = 4,
    mask_stride: int = 8,
    fpn_channels: int = 256,
    top_k: int = 64,
    boundary: str = "bd",
    position_penalty: bool = True,
    pairwise_weight: float = 1.0,
    pairwise_warmup: int = 10000,
    color_threshold: float = 0.3,
    theta_color: float = 2.0,
    dilation: int = 2,
    detection_fusion: str = "sum",
    mask_fusion: str = "concat",
    flow_pairwise: bool = True,
    flow_threshold: float = 0.6,
    theta_flow: float = 0.5,
    iterations: int = 90000,
    batch_size: int = 16,
    base_lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    steps: Sequence[float] = (0.667, 0.889),
    gamma: float = 0.1,
    warmup_iters: int = 1000,
    warmup_factor: float = 0.001,
    hflip: bool = True,
    scales: Sequence[float] = (1.0,),
    clip_grad_norm: float | None = None,
    seed: int = 0,
    checkpoint_every: int = 1000,
    log_every: int = 20,
    device: str = "auto",
    max_iterations: int | None = None,
    progress: bool = True,
) -> Path:
    """Train ``stcseg``, ``boxinst`` or ``boxinst_flow`` (module docstring); write ``out_dir/model.pt``.

    Args:
        frames: per video, its frame paths in temporal order.
        boxes: per video, per frame, boxes ``[x1, y1, x2, y2]`` in pixels (manifest ``boxes``).
        box_classes: per video, per frame, the class names of the boxes (manifest ``box_classes``).
        out_dir: ``models/{run}/``.
        method: ``stcseg | boxinst | boxinst_flow``.
        categories: class names in id order.
        pseudo_paths: stcseg: per video ``pseudo/stc/{video}.zarr``.
        flow_paths: boxinst_flow: per video its flow artifact (gap 1).
        backbone, weights, min_size, max_size, mask_channels, branch_channels, head_channels, head_convs,
            mask_stride, fpn_channels: :func:`wsvis.models.condinst.build_condinst`.
        top_k: mask proposals per image in the mask loss (64).
        boundary, position_penalty: stcseg's puzzle-loss switches (Table IV).
        pairwise_weight, pairwise_warmup: pairwise loss factor, ramped linearly over the warm-up iterations.
        color_threshold, theta_color, dilation: BoxInst's pairwise settings (0.3, 2, 2).
        detection_fusion, mask_fusion: boxinst_flow's two-stream fusions.
        flow_pairwise, flow_threshold, theta_flow: boxinst_flow's flow label identity (on, 0.6, 0.5).
        iterations, batch_size, base_lr, momentum, weight_decay, steps, gamma, warmup_iters,
            warmup_factor: the schedule (module docstring).
        hflip: random left-right flips.
        scales: multi-scale training (module docstring, "Augmentation"): each iteration resizes its
            frames to ``s * min_size`` / ``s * max_size`` for one ``s`` drawn from these factors (> 0);
            ``(1.0,)``, one size (STC-Seg), draws nothing. Prediction runs at ``min_size`` / ``max_size``.
        clip_grad_norm: clip the gradients' total norm to this (None: off, as the papers). The
            dynamic mask head's logits can diverge at small batches; a CPU demo needs it.
        seed, checkpoint_every, log_every, device, max_iterations, progress: as
            :func:`wsvis.maskconsist.train.train_maskrcnn`.

    Returns:
        Path of ``model.pt``.

    Raises:
        ValueError: unknown method, missing pseudo-labels / flows for the method,
            inputs of different lengths, no frame with a box, sizes that differ, ``scales``
            empty or not all > 0.
    """
    if method not in BOX_METHODS:
        raise ValueError(f"unknown box-supervised method {method!r}; choose one of {list(BOX_METHODS)}")
    scales = tuple(float(x) for x in scales)
    if not scales or min(scales) <= 0:
        raise ValueError(f"train_condinst: scales must be a non-empty list of factors > 0, got {list(scales)}")
    n = len(frames)
    if len(boxes) != n or len(box_classes) != n:
        raise ValueError("frames, boxes and box_classes need one entry per video")
    need_pseudo = method == "stcseg"
    two_stream = method == "boxinst_flow"
    need_flow = two_stream and (detection_fusion != "none" or mask_fusion != "none" or flow_pairwise)
    if need_pseudo and (pseudo_paths is None or len(pseudo_paths) != n):
        raise ValueError("stcseg needs one STC pseudo-label artifact per video (pseudo_paths)")
    if need_flow and (flow_paths is None or len(flow_paths) != n):
        raise ValueError("boxinst_flow needs one flow artifact per video (flow_paths)")
    categories = list(categories)
    videos = [
        _Video(frames[v], boxes[v], box_classes[v], categories, pseudo_paths[v] if need_pseudo else None,
               flow_paths[v] if need_flow else None)
        for v in range(n)
    ]
    index = [(v, t) for v, vid in enumerate(videos) for t in vid.labelled]
    if not index:
        raise ValueError(f"train_condinst ({method}): no frame has a box")

    dev = resolve_device(device)
    with deterministic_run(seed, dev):
        arch = dict(backbone=backbone, min_size=int(min_size), max_size=int(max_size), mask_channels=mask_channels,
                    branch_channels=branch_channels, head_channels=head_channels, head_convs=int(head_convs),
                    mask_stride=int(mask_stride), fpn_channels=int(fpn_channels), two_stream=two_stream,
                    detection_fusion=detection_fusion if two_stream else "none",
                    mask_fusion=mask_fusion if two_stream else "none", frozen_bn=weights != "none")
        model: CondInst = build_condinst(len(categories) + 1, weights=weights, **arch)
        model.to(dev).train()
        opt = torch.optim.SGD(param_groups(model, weight_decay), lr=base_lr, momentum=momentum)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, warmup_multistep(iterations, warmup_iters, warmup_factor, steps, gamma))
        stop = iterations if max_iterations is None else min(iterations, int(max_iterations))
        loss_kw = dict(boundary=boundary, position_penalty=position_penalty, color_threshold=color_threshold,
                       theta_color=theta_color, flow_pairwise=flow_pairwise and two_stream,
                       flow_threshold=flow_threshold, theta_flow=theta_flow, dilation=dilation)
        config = {
            "method": method, "categories": categories, **arch, "weights": str(weights), "top_k": top_k, **loss_kw,
            "pairwise_weight": pairwise_weight, "pairwise_warmup": pairwise_warmup, "iterations": iterations,
            "batch_size": batch_size, "base_lr": base_lr, "momentum": momentum, "weight_decay": weight_decay,
            "steps": list(steps), "gamma": gamma, "warmup_iters": warmup_iters, "warmup_factor": warmup_factor,
            "hflip": hflip, "scales": list(scales), "clip_grad_norm": clip_grad_norm, "seed": seed,
            "frames": [len(v.frames) for v in videos],
        }
        config = without_legacy_defaults(config)
        inputs = [p for v in range(n) for p in frames[v]]
        inputs += [p for p in (pseudo_paths or []) if need_pseudo] + [p for p in (flow_paths or []) if need_flow]
        box_list = [[np.asarray(b, np.float64).round(2).tolist() for b in vb] for vb in boxes]
        config["boxes_sha1"] = hashlib.sha1(json.dumps(box_list).encode()).hexdigest()  # the targets, not only the frames
        ckpt_dir = prepare_checkpoint_dir(Path(out_dir) / "checkpoints", config, inputs=inputs)
        last = latest_checkpoint(ckpt_dir)
        start, train_log = resume_training(last, Path(out_dir) / "train_log.csv", model=model, optimizer=opt,
                                           lr_scheduler=sched)
        if last is not None:
            log.info("resuming %s training from %s (iteration %d)", method, last, start)

        _set_input_size(model, scales[0], min_size, max_size)  # one scale: every iteration at that size
        bar = tqdm(range(start, stop), desc=f"{method} {Path(out_dir).name}", initial=start, total=stop,
                   disable=not progress)
        t0 = time.time()
        for it in bar:
            torch.manual_seed(int(np.random.default_rng([seed, it, 1]).integers(2**62)))
            rng = np.random.default_rng([seed, it])
            picks = [(index[int(i)], bool(hflip and f < 0.5))
                     for i, f in zip(rng.integers(0, len(index), size=batch_size), rng.random(batch_size))]
            if len(scales) > 1:  # drawn after the picks, so a one-scale run draws what it always did
                _set_input_size(model, scales[int(rng.integers(len(scales)))], min_size, max_size)
            images, targets, pseudo, flows = _load(videos, picks, dev, need_pseudo, need_flow)
            det, masks = model.train_forward(images, targets, flows if two_stream else None, top_k=top_k)
            warm = pairwise_weight * min(1.0, it / max(1, pairwise_warmup))
            mask_losses = box_mask_losses(method, masks, images, pseudo=pseudo, flows=flows, pairwise_weight=warm,
                                          **loss_kw)
            losses = {**{f"loss_{k}": v for k, v in det.items()}, **mask_losses}
            loss = sum(losses.values())
            optimizer_step(loss, losses, model=model, optimizer=opt, lr_scheduler=sched, iteration=it, stop=stop,
                           train_log=train_log, ckpt_dir=ckpt_dir, config=config, log_every=log_every,
                           checkpoint_every=checkpoint_every, seconds=time.time() - t0, clip_grad_norm=clip_grad_norm)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")

    _set_input_size(model, 1.0, min_size, max_size)
    out = Path(out_dir) / "model.pt"
    state = {"model": model.state_dict(), "categories": categories, "method": method, "iterations": int(stop),
             **{k: arch[k] for k in ARCH_KEYS}}
    with atomic_file(out) as tmp:
        torch.save(state, tmp)
    return out
