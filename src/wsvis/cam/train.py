"""Training of IRN's CAM classifier on frame-level class tags (IRN ``step/train_cam.py``).

Recipe (Ahn et al., CVPR 2019, and its code): multi-label soft-margin loss on
the multi-hot tag vector; IRN augmentation (random long-side rescale in
``resize_long``, flip, crop ``crop_size``; :func:`wsvis.transforms.augment`);
SGD with a poly schedule ``lr_i = lr * (1 - i / max_step) ** 0.9`` over all
iterations, the classifier at 10x the backbone's lr, weight decay 1e-4;
``max_step = epochs * (frames // batch_size)`` (IRN drops the last partial
batch). IRN's ``PolyOptimizer`` passes ``weight_decay`` positionally into
``torch.optim.SGD``'s ``momentum`` slot, so its effective momentum is 1e-4,
i.e. none; we use plain SGD without momentum.

Determinism and resume: the frame order of epoch ``e`` is a permutation drawn
from ``numpy.random.default_rng([seed, e])`` and the augmentation of the
``k``-th sample of epoch ``e`` from ``default_rng([seed, e, k])``, so the data
of any iteration is a pure function of (seed, iteration) and a resumed run
skips ahead exactly. Checkpoints (``checkpoints/ckpt_<iteration>.pt``) hold
model and optimizer state; on CPU with a fixed seed a resumed run ends with
the same weights as an uninterrupted one, and two runs end with the same weights
(``tests/test_cam.py`` checks ``torch.equal``): the training runs inside
:func:`wsvis.torchutil.deterministic_run` (seeded RNGs, deterministic CPU algorithms).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from wsvis.cam.net import CAMNet
from wsvis.io.images import read_image
from wsvis.io.store import atomic_file
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

__all__ = ["train_cam", "load_cam_model", "multi_hot", "POLY_POWER", "CLASSIFIER_LR_MULT"]

log = logging.getLogger(__name__)

#: Exponent of IRN's poly learning-rate decay.
POLY_POWER = 0.9
#: IRN trains the (newly added) classifier at 10x the backbone's learning rate.
CLASSIFIER_LR_MULT = 10.0

# Config keys that must agree between a checkpoint and the run resuming from it.
_SCHEDULE_KEYS = ("backbone", "categories", "epochs", "batch_size", "lr", "weight_decay",
                  "crop_size", "resize_long", "seed", "num_frames")


def multi_hot(tags: list[str], categories: list[str]) -> np.ndarray:
    """Class tags -> (C,) float32 multi-hot vector over ``categories`` (empty tags: all zero).

    Raises:
        ValueError: a tag not in ``categories`` (names it).
    """
    y = np.zeros(len(categories), np.float32)
    for tag in tags:
        if tag not in categories:
            raise ValueError(f"class tag {tag!r} is not in the category list {categories}")
        y[categories.index(tag)] = 1.0
    return y


def _batches_per_epoch(num_frames: int, batch_size: int) -> int:
    # IRN drops the last partial batch; a set smaller than one batch still gives one (smaller) batch.
    return max(1, num_frames // batch_size)


def _batch_indices(num_frames: int, batch_size: int, seed: int, iteration: int) -> tuple[int, list[tuple[int, int]]]:
    """Frames of 0-based ``iteration``: (epoch, [(frame index, position in epoch), ...])."""
    per_epoch = _batches_per_epoch(num_frames, batch_size)
    epoch, b = divmod(iteration, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(num_frames)
    pos = range(b * batch_size, min((b + 1) * batch_size, num_frames))
    return epoch, [(int(order[k]), k) for k in pos]


def _set_lr(optimizer: torch.optim.Optimizer, base: list[float], step: int, max_step: int) -> float:
    mult = (1.0 - step / max_step) ** POLY_POWER
    for group, lr in zip(optimizer.param_groups, base):
        group["lr"] = lr * mult
    return optimizer.param_groups[0]["lr"]


def train_cam(
    frames: pd.DataFrame,
    categories: list[str],
    out_dir: str | os.PathLike,
    *,
    backbone: str = "mobilenet_v2",
    weights: str = "none",
    epochs: int = 5,
    batch_size: int = 16,
    lr: float = 0.1,
    weight_decay: float = 1e-4,
    crop_size: int = 512,
    resize_long: tuple[int, int] = (320, 640),
    seed: int = 0,
    checkpoint_every: int = 100,
    device: str = "auto",
    max_iterations: int | None = None,
    progress: bool = True,
) -> Path:
    """Train the CAM classifier (:class:`~wsvis.cam.net.CAMNet`) on frame-level tags, resumably.

    Args:
        frames: the frame table (manifest columns; uses ``image`` path, ``tags``
            list of class names, ``split``). Only rows with split ``"train"``
            are used; a frame with no tags is a negative for every class.
        categories: class names; the multi-hot target and the CAM channels
            follow this order (category id = index + 1).
        out_dir: model folder (``results/{dataset}/models/cam``).
        backbone, weights: see :class:`~wsvis.cam.net.CAMNet`.
        epochs, batch_size, lr, weight_decay, crop_size, resize_long: IRN's
            CAM recipe (defaults are IRN's: 5, 16, 0.1, 1e-4, 512, (320, 640));
            ``lr`` is the backbone's, the classifier takes 10x.
        seed: seeds the weight init of the classifier, the data order and the augmentation.
        checkpoint_every: write ``checkpoints/ckpt_<iteration>.pt`` every that many iterations.
        device: ``"auto"`` | ``"cpu"`` | ``"cuda[:N]"``.
        max_iterations: stop after this many (total) iterations as if
            interrupted: a checkpoint is written there, ``model.pt`` is not,
            and a later call resumes. ``None``: run the whole schedule.
        progress: tqdm bar over iterations.

    Writes:
        ``out_dir/model.pt``: ``{"model": state_dict, "backbone": str,
        "categories": [...], "config": {...}}`` (atomically, only when the
        whole schedule has run; load with :func:`load_cam_model`);
        ``out_dir/train_log.csv``: iteration (1-based), loss, lr (backbone
        group), seconds (wall time of that iteration);
        ``out_dir/checkpoints/ckpt_<iteration>.pt``.

    Returns:
        The path of ``model.pt``, or of the last checkpoint when stopped by ``max_iterations``.

    Raises:
        ValueError: no training frames, a tag outside ``categories``, or a
            checkpoint from a run with another schedule (names the keys).
        FloatingPointError: the loss became NaN or infinite (lr too high).
    """
    out_dir = Path(out_dir)
    train = frames[frames["split"] == "train"].reset_index(drop=True)
    if train.empty:
        raise ValueError("train_cam: no frames with split 'train'")
    categories = list(categories)
    images = [str(p) for p in train["image"]]
    targets = np.stack([multi_hot(list(t), categories) for t in train["tags"]])
    n = len(images)
    max_step = epochs * _batches_per_epoch(n, batch_size)
    config = {
        "backbone": backbone, "weights": weights, "categories": categories, "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "crop_size": crop_size,
        "resize_long": list(resize_long), "seed": seed, "num_frames": n, "max_step": max_step,
    }
    dev = resolve_device(device)

    with deterministic_run(seed, dev):
        model = CAMNet(backbone, len(categories), weights=weights)
        backbone_params, classifier_params = model.trainable_parameters()
        base_lrs = [lr, lr * CLASSIFIER_LR_MULT]
        optimizer = torch.optim.SGD(
            [{"params": backbone_params, "lr": base_lrs[0]}, {"params": classifier_params, "lr": base_lrs[1]}],
            lr=lr, momentum=0.0, weight_decay=weight_decay,
        )

        ckpt_dir = out_dir / "checkpoints"
        ckpt = latest_checkpoint(ckpt_dir)
        if ckpt is not None:
            saved = torch.load(ckpt, map_location="cpu", weights_only=True).get("config", {})
            bad = [k for k in _SCHEDULE_KEYS if saved.get(k) != config[k]]
            if bad:
                raise ValueError(
                    f"{ckpt}: checkpoint of a run with other settings ({', '.join(bad)}); "
                    f"delete {ckpt_dir} to start afresh"
                )
        start, train_log = resume_training(ckpt, out_dir / "train_log.csv", model=model, optimizer=optimizer)
        if ckpt is not None:
            log.info("resuming CAM training from %s (iteration %d of %d)", ckpt, start, max_step)
        model.to(dev)
        model.train()

        stop = max_step if max_iterations is None else min(max_step, max_iterations)
        bar = tqdm(range(start, stop), desc="train cam", unit="it", disable=not progress, initial=start, total=stop)
        for step in bar:
            t0 = time.perf_counter()
            epoch, picks = _batch_indices(n, batch_size, seed, step)
            xs, ys = [], []
            for idx, k in picks:
                rng = np.random.default_rng([seed, epoch, k])
                sample, _ = augment(Sample(read_image(images[idx])), rng, resize_long=tuple(resize_long),
                                    crop_size=crop_size)
                xs.append(to_tensor(sample.image))
                ys.append(torch.from_numpy(targets[idx]))
            x = torch.stack(xs).to(dev)
            y = torch.stack(ys).to(dev)
            cur_lr = _set_lr(optimizer, base_lrs, step, max_step)
            loss = F.multilabel_soft_margin_loss(model(x), y)
            check_finite_loss(loss, {"loss": loss}, iteration=step + 1, what=f"CAM training {out_dir}", cure="lower lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done = step + 1
            train_log.log(iteration=done, loss=float(loss.item()), lr=cur_lr, seconds=time.perf_counter() - t0)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if done % checkpoint_every == 0 or (done == stop and stop < max_step):
                save_checkpoint(ckpt_dir / f"ckpt_{done}.pt", model=model, optimizer=optimizer, iteration=done,
                                config=config, train_log=train_log)
    done = max(start, stop)
    if done < max_step:
        last = latest_checkpoint(ckpt_dir)
        assert last is not None
        return last
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "backbone": backbone,
        "categories": categories,
        "config": config,
    }
    path = out_dir / "model.pt"
    with atomic_file(path) as tmp:
        torch.save(state, tmp)
    return path


def load_cam_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> CAMNet:
    """Load ``model.pt`` written by :func:`train_cam` (``weights_only=True``) as a CAMNet in eval mode.

    The network's categories are in ``model.categories`` (list of names).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a CAM model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CAM model not found: {path} (run the CAM training first)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not {"model", "backbone", "categories"} <= set(state):
        raise ValueError(f"{path}: not a CAM model file (needs keys model, backbone, categories)")
    with weights_follow():  # only allocates: the state_dict below replaces the weights
        model = CAMNet(state["backbone"], len(state["categories"]), weights="none")
    model.load_state_dict(state["model"])
    model.categories = list(state["categories"])
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    return model.to(dev).eval()
