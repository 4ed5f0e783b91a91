"""Train IRN / flowIRN (IRN ``train_irn``, Ahn et al., CVPR 2019 §3.2; flowIRN Liu et al., CVPR 2021 §3.2).

Loss per batch: L = L^D_fg + L^D_bg + L^B, plus L^B_F (flowIRN Eq. 3, weight
1, λ inside) when ``flow_boundary``; the sum as the papers write it (IRN's
code halves the two groups: (L^B_pos + L^B_neg)/2 + (L^D_fg + L^D_bg)/2).

Inputs, chosen so one workflow rule can call :func:`train_irn` on a dataset:

* ``images``: frame paths grouped by video, ``images[v][t]``;
* ``labels``: per video the IR label artifact (``irn/labels/{source}/{video}.zarr``,
  :func:`wsvis.irn.labels.make_video_ir_labels`) or a (T, h, w) uint8 array
  on the stride-4 grid;
* ``flows`` (needed when ``flow_boundary``): per video the flow artifact
  (``flow/{video}.zarr``) or a (T, H, W, 2) array of per-frame flow in image
  pixels, x then y. From an artifact, frame t uses the gap-1 forward flow
  ``forward[t]`` (t -> t+1) and the last frame the backward flow
  ``backward[T-2]`` (T-1 -> T-2), both on the frame's own grid; a one-frame
  video has no flow and contributes no flow-boundary pairs.

Schedule (IRN): SGD on the branch parameters (lr 0.1, weight decay 1e-4, no
momentum — IRN's ``PolyOptimizer`` passes its weight decay positionally into
SGD's momentum slot, so neither is effectively used there; we apply the
stated weight decay), poly decay lr·(1 − it/max_it)^0.9, ``epochs`` × ⌊frames /
batch_size⌋ iterations (at least one per epoch), IRN's augmentation
(:func:`wsvis.transforms.augment`: long side in ``resize_long``, flip, crop
``crop_size``); labels and flow follow the image, then go to the crop's stride-4
grid (labels: nearest, flow: area mean, divided by 4 into grid pixels).

Determinism: the frame order of an epoch is a permutation drawn from
``(seed, epoch)`` and each sample's augmentation from ``(seed, epoch,
position)``, so a run resumed from ``out_dir/checkpoints/ckpt_<it>.pt``
sees exactly the batches the uninterrupted run would have (identical
weights on CPU). The training runs inside :func:`wsvis.torchutil.deterministic_run`
(seeded RNGs, deterministic CPU algorithms), so two runs with the same seed
and thread count end with bit-identical weights.

After the last iteration the mean displacement over up to ``mean_frames``
training frames (long side at most ``resize_long[1]``) is stored in the
network's ``displacement_mean`` (IRN's ``MeanShift``). Output
``out_dir/model.pt`` (written atomically): ``{"model": state_dict,
"backbone": name, "flow_boundary", "lam", "radius", "iterations"}``; plain
types only, so :func:`load_irn` reads it with ``weights_only=True``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from wsvis.flow.stage import read_flow
from wsvis.io.images import read_image
from wsvis.io.store import atomic_file
from wsvis.irn.labels import read_ir_labels
from wsvis.irn.losses import (
    affinity,
    boundary_loss,
    displacement_loss_bg,
    displacement_loss_fg,
    flow_boundary_loss,
)
from wsvis.irn.net import IRNet, grid_size
from wsvis.irn.pairs import IGNORE, pair_sets, paths_for, search_offsets
from wsvis.models.backbones import weights_follow
from wsvis.torchutil import (
    check_finite_loss,
    deterministic_run,
    latest_checkpoint,
    resolve_device,
    resume_training,
    save_checkpoint,
    to_tensor,
)
from wsvis.transforms import Sample, augment

__all__ = ["train_irn", "load_irn"]

log = logging.getLogger(__name__)


class _FlowSource:
    """Per-frame flow of one video (see module docstring), loaded lazily."""

    def __init__(self, src: Any, num_frames: int) -> None:
        self.n = num_frames
        if src is None:
            self.fwd = self.bwd = self.arr = None
        elif isinstance(src, (str, os.PathLike)):
            self.arr = None
            self.fwd = read_flow(src, 1, "forward")
            self.bwd = read_flow(src, 1, "backward")
            if self.fwd.shape[0] != max(0, num_frames - 1):
                raise ValueError(f"{src}: {self.fwd.shape[0]} flow fields for {num_frames} frames")
        else:
            self.arr = np.asarray(src)
            self.fwd = self.bwd = None
            if len(self.arr) != num_frames:
                raise ValueError(f"flow array has {len(self.arr)} frames, the video {num_frames}")

    def __call__(self, t: int) -> np.ndarray | None:
        if self.arr is not None:
            return np.asarray(self.arr[t], np.float32)
        if self.fwd is None or self.n < 2:
            return None
        return np.asarray(self.fwd[t] if t < self.n - 1 else self.bwd[self.n - 2], np.float32)


def _labels_of(src: Any) -> np.ndarray:
    if isinstance(src, (str, os.PathLike)):
        return read_ir_labels(src)
    return np.asarray(src, np.uint8)


def _make_sample(
    image_path: str,
    label: np.ndarray,
    flow: np.ndarray | None,
    rng: np.random.Generator,
    *,
    crop_size: int,
    resize_long: tuple[int, int],
    with_flow: bool,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
    """One augmented training sample: image tensor, grid labels, grid flow (grid px), grid flow validity."""
    img = read_image(image_path)
    big_h, big_w = img.shape[:2]
    if label.shape != grid_size(big_h, big_w):
        raise ValueError(f"{image_path}: labels {label.shape} do not fit a {big_h}x{big_w} frame at stride 4")
    full = np.repeat(np.repeat(label, 4, 0), 4, 1)[:big_h, :big_w]
    if flow is not None and flow.shape[:2] != (big_h, big_w):
        raise ValueError(f"{image_path}: flow {flow.shape[:2]} differs from the frame {(big_h, big_w)}")
    s, valid = augment(Sample(img, full, flow), rng, resize_long=resize_long, crop_size=crop_size)
    g = grid_size(crop_size, crop_size)
    ys = np.minimum(np.arange(g[0]) * 4 + 2, crop_size - 1)
    xs = np.minimum(np.arange(g[1]) * 4 + 2, crop_size - 1)
    lab = s.label[np.ix_(ys, xs)].copy()
    lab[~valid[np.ix_(ys, xs)]] = IGNORE
    if with_flow and s.flow is not None:
        fl = cv2.resize(s.flow.astype(np.float32), (g[1], g[0]), interpolation=cv2.INTER_AREA) / 4.0
        fv = valid[np.ix_(ys, xs)]
    else:
        fl = np.zeros((*g, 2), np.float32)
        fv = np.zeros(g, bool)
    return to_tensor(s.image), lab, fl, fv


def load_irn(path: str | os.PathLike, device: str | torch.device = "cpu") -> IRNet:
    """Load ``model.pt`` written by :func:`train_irn` (``weights_only=True``), in eval mode.

    Raises:
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IRN model not found: {path} (run the IRN training stage first)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    with weights_follow():  # only allocates: the state_dict below replaces the weights
        net = IRNet(state["backbone"], "none")
    net.load_state_dict(state["model"])
    return net.to(device).eval()


def train_irn(
    images: Sequence[Sequence[str | os.PathLike]],
    labels: Sequence[Any],
    flows: Sequence[Any] | None,
    out_dir: str | os.PathLike,
    *,
    flow_boundary: bool = False,
    lam: float = 2.0,
    backbone: str = "resnet50",
    weights: str = "none",
    epochs: int = 3,
    batch_size: int = 32,
    lr: float = 0.1,
    weight_decay: float = 1e-4,
    crop_size: int = 512,
    resize_long: tuple[int, int] = (320, 640),
    radius: int = 10,
    seed: int = 0,
    checkpoint_every: int = 100,
    log_every: int = 10,
    mean_frames: int = 64,
    device: str = "auto",
    max_iterations: int | None = None,
    progress: bool = True,
) -> Path:
    """Train IRNet (``flow_boundary=False``: IRN) or flowIRN (``True``) and write ``out_dir/model.pt``.

    Args:
        images: frame paths per video (see module docstring for all inputs).
        labels: per video an IR label artifact path or (T, h, w) uint8 array.
        flows: per video a flow artifact path, a (T, H, W, 2) array, or None;
            may be None altogether unless ``flow_boundary``.
        out_dir: ``models/{irn|flowirn}/``; gets ``model.pt``, ``train_log.csv``, ``checkpoints/``.
        flow_boundary: add L^B_F (flowIRN Eq. 3) with weight λ = ``lam``.
        backbone, weights: of :class:`wsvis.irn.net.IRNet`.
        epochs, batch_size, lr, weight_decay, crop_size, resize_long: IRN's
            (3, 32, 0.1, 1e-4, 512, (320, 640)).
        radius: γ of the training pairs in grid pixels (IRN 10).
        seed: data order and augmentation seed.
        checkpoint_every: iterations between checkpoints (the last one is always saved).
        log_every: iterations between rows of ``train_log.csv``.
        mean_frames: frames used for the displacement mean after training.
        device: ``auto | cpu | cuda[:N]``.
        max_iterations: stop early (the poly schedule still spans the full run).
        progress: tqdm bar.

    Returns:
        Path of ``model.pt``.

    Raises:
        ValueError: mismatched inputs, no frames, or ``flow_boundary`` without flows.
        FloatingPointError: the loss became NaN or infinite (lr too high).
    """
    out_dir = Path(out_dir)
    videos = [[os.fspath(p) for p in v] for v in images]
    if len(labels) != len(videos) or (flows is not None and len(flows) != len(videos)):
        raise ValueError("images, labels and flows must have one entry per video")
    if flow_boundary and flows is None:
        raise ValueError("flow_boundary=True needs flows (one flow artifact per video)")
    frame_labels = [_labels_of(src) for src in labels]
    for v, (frames, lab) in enumerate(zip(videos, frame_labels)):
        if len(lab) != len(frames):
            raise ValueError(f"video {v}: {len(lab)} label maps for {len(frames)} frames")
    flow_src = [_FlowSource(flows[v] if flows is not None else None, len(videos[v])) for v in range(len(videos))]
    index = [(v, t) for v, frames in enumerate(videos) for t in range(len(frames))]
    if not index:
        raise ValueError("train_irn: no frames")

    dev = resolve_device(device)
    with deterministic_run(seed, dev):
        net = IRNet(backbone, weights).to(dev)
        net.train()
        opt = torch.optim.SGD(net.trainable_parameters(), lr=lr, momentum=0.0, weight_decay=weight_decay)
        per_epoch = max(1, len(index) // batch_size)
        max_step = epochs * per_epoch
        stop = max_step if max_iterations is None else min(max_step, int(max_iterations))
        offsets = search_offsets(radius)
        paths = paths_for(offsets)
        config = {
            "backbone": backbone,
            "flow_boundary": flow_boundary,
            "lam": lam,
            "radius": radius,
            "seed": seed,
            "batch_size": batch_size,
            "crop_size": crop_size,
            "max_step": max_step,
        }

        ckpt_dir = out_dir / "checkpoints"
        last = latest_checkpoint(ckpt_dir)
        start, train_log = resume_training(last, out_dir / "train_log.csv", model=net, optimizer=opt)
        if last is not None:
            log.info("resuming IRN training from %s (iteration %d)", last, start)

        perm_cache: dict[int, np.ndarray] = {}

        def batch_of(it: int) -> list[tuple[int, int, np.random.Generator]]:
            epoch, b = divmod(it, per_epoch)
            if epoch not in perm_cache:
                perm_cache[epoch] = np.random.default_rng([seed, epoch]).permutation(len(index))
            pos = range(b * batch_size, min((b + 1) * batch_size, len(index)))
            return [(*index[perm_cache[epoch][p]], np.random.default_rng([seed, epoch, p])) for p in pos]

        bar = tqdm(range(start, stop), desc=f"irn {out_dir.name}", initial=start, total=stop, disable=not progress)
        t0 = time.time()
        for it in bar:
            cur_lr = lr * (1 - it / max_step) ** 0.9
            for group in opt.param_groups:
                group["lr"] = cur_lr
            items = [
                _make_sample(
                    videos[v][t], frame_labels[v][t], flow_src[v](t) if flow_boundary else None, rng,
                    crop_size=crop_size, resize_long=resize_long, with_flow=flow_boundary,
                )
                for v, t, rng in batch_of(it)
            ]
            x = torch.stack([s[0] for s in items]).to(dev)
            lab = torch.from_numpy(np.stack([s[1] for s in items])).to(dev)
            boundary, disp = net(x)
            fg, bg, neg = pair_sets(lab, offsets)
            alpha = affinity(boundary, offsets, paths)
            l_b = boundary_loss(alpha, fg, bg, neg)
            l_fg = displacement_loss_fg(disp, offsets, fg)
            l_bg = displacement_loss_bg(disp, offsets, bg)
            loss = l_b + l_fg + l_bg
            l_f = torch.zeros((), device=dev)
            if flow_boundary:
                fl = torch.from_numpy(np.stack([s[2] for s in items])).permute(0, 3, 1, 2).to(dev)
                fv = torch.from_numpy(np.stack([s[3] for s in items])).to(dev)
                l_f = flow_boundary_loss(alpha, fl, offsets, fv, lam)
                loss = loss + l_f
            check_finite_loss(loss, {"boundary": l_b, "disp_fg": l_fg, "disp_bg": l_bg, "flow_boundary": l_f},
                              iteration=it + 1, what=f"IRN training {out_dir}", cure="lower lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss, l_b, l_fg, l_bg, l_f = (v.detach() for v in (loss, l_b, l_fg, l_bg, l_f))
            done = it + 1
            if done % log_every == 0 or done == stop:
                train_log.log(
                    iteration=done, loss=loss.item(), boundary=l_b.item(), disp_fg=l_fg.item(),
                    disp_bg=l_bg.item(), flow_boundary=l_f.item(), lr=cur_lr, seconds=time.time() - t0,
                )
            if done % checkpoint_every == 0 or done == stop:
                save_checkpoint(ckpt_dir / f"ckpt_{done}.pt", model=net, optimizer=opt, iteration=done, config=config,
                                train_log=train_log)
            bar.set_postfix(loss=f"{loss.item():.3f}")

        net.displacement_mean.copy_(_displacement_mean(net, index, videos, mean_frames, resize_long[1], dev))
    out = out_dir / "model.pt"
    state = {
        "model": net.state_dict(),
        "backbone": backbone,
        "flow_boundary": bool(flow_boundary),
        "lam": float(lam),
        "radius": int(radius),
        "iterations": int(stop),
    }
    with atomic_file(out) as tmp:
        torch.save(state, tmp)
    return out


@torch.no_grad()
def _displacement_mean(
    net: IRNet, index: list[tuple[int, int]], videos: list[list[str]], count: int, max_side: int, dev: torch.device
) -> torch.Tensor:
    """Mean of D over evenly spaced training frames (IRN's MeanShift running mean)."""
    net.eval()
    net.displacement_mean.zero_()
    picks = np.unique(np.linspace(0, len(index) - 1, max(1, min(count, len(index)))).round().astype(int))
    means = []
    for p in picks:
        v, t = index[p]
        img = read_image(videos[v][t])
        scale = min(1.0, max_side / max(img.shape[:2]))
        if scale < 1.0:
            img = cv2.resize(img, (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))))
        _, disp = net(to_tensor(img)[None].to(dev))
        means.append(disp.mean(dim=(0, 2, 3)).cpu())
    net.train()
    return torch.stack(means).mean(0) if means else torch.zeros(2)
