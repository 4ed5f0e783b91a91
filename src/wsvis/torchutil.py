"""Torch plumbing shared by every trained stage: device choice, weight files, checkpoints, logs.

Checkpoints follow torchvision's ``references/detection`` layout, a dict
``{model, optimizer, lr_scheduler, iteration, config, rng, train_log}``,
written atomically, so an interrupted training resumes with one call and — on
CPU with a fixed seed — ends with the same weights as an uninterrupted run (the
RNG states of torch, numpy and Python's ``random`` are saved too). Every trainer
runs inside :func:`deterministic_run`, which seeds those RNGs and, on the CPU,
switches PyTorch to its deterministic algorithms, so two runs with the same
seed (and thread count) end with bit-identical weights. The rows of
``train_log.csv`` up to the checkpoint travel inside it: Snakemake deletes a
killed job's outputs (the log among them) before rerunning it, so the log is
rebuilt from the checkpoint, not from the file.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import cv2
import numpy as np
import torch

from wsvis.io.store import atomic_file

__all__ = [
    "resolve_device",
    "seed_everything",
    "deterministic_run",
    "load_state_dict_file",
    "save_checkpoint",
    "load_checkpoint",
    "resume_training",
    "input_fingerprint",
    "latest_checkpoint",
    "prepare_checkpoint_dir",
    "TrainLog",
    "optimizer_step",
    "check_finite_loss",
    "warmup_multistep",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "to_tensor",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> cuda if available else cpu; ``"cpu"`` / ``"cuda"`` / ``"cuda:N"`` as given.

    Raises:
        ValueError: another string.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" or device.startswith("cuda"):
        return torch.device(device)
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global RNG, torch (CPU and every CUDA device) and
    OpenCV (``cv2.setRNGSeed``: the calling thread's RNG) for a repeatable run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    cv2.setRNGSeed(seed)


@contextlib.contextmanager
def deterministic_run(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Run a training repeatably: every RNG seeded, and deterministic algorithms on the CPU.

    Seeds as :func:`seed_everything`. On a CPU ``device`` the block runs under
    ``torch.use_deterministic_algorithms(True)``: PyTorch's CPU ``index_put_(accumulate=True)``
    (also the backward of ``x[idx]`` with an index tensor) adds with parallel atomic float adds
    once it moves >= 32768 (``GRAIN_SIZE``) elements on more than one thread, so repeated
    indices are summed in a different order on each call (``ATen/native/cpu/IndexKernel.cpp``).
    Deterministic mode makes that serial, raises where an op has no deterministic kernel, and
    fills uninitialised memory (``torch.empty``) with NaN, so reading it cannot differ between
    runs unnoticed.

    The previous mode is restored on exit (also on an exception), so whatever else the process
    runs afterwards is unaffected.

    Bit-identical weights also need the same torch thread count (``torch.set_num_threads``;
    the CLI sets it from the job's threads): oneDNN convolutions and reductions split their
    work by it, and a training amplifies a difference in the last bit. They also need MKL's
    alignment-independent code paths (``MKL_CBWR=AUTO``, set by ``import wsvis`` before torch
    loads MKL): without it a resumed training differed from an uninterrupted one. A CUDA ``device`` is only
    seeded: its deterministic mode needs ``CUBLAS_WORKSPACE_CONFIG`` set before CUDA starts.

    Args:
        seed: the run's seed (int >= 0).
        device: the device the training computes on (``torch.device`` or its string).
    """
    seed_everything(seed)
    if torch.device(device).type != "cpu":
        yield
        return
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def to_tensor(img: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, scaled to [0, 1] then normalised by ``mean``/``std``."""
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a weights file safely (``torch.load(..., weights_only=True)``).

    Accepts a plain state_dict or a checkpoint dict with a ``model`` entry.

    Raises:
        FileNotFoundError: ``path`` does not exist (message names it).
        ValueError: the file holds no state_dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: not a state_dict of tensors")
    return obj


def _rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state()[1].tolist(),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": list(random.getstate()[1]),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(state["python"]), None))


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    iteration: int,
    config: dict | None = None,
    lr_scheduler: Any = None,
    train_log: "TrainLog | None" = None,
) -> None:
    """Write a resumable checkpoint atomically (see module docstring for its keys).

    ``train_log``: its rows so far are stored, so a resumed run rewrites the same log.
    """
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "lr_scheduler": lr_scheduler.state_dict() if lr_scheduler is not None else None,
        "iteration": int(iteration),
        "config": config or {},
        "rng": _rng_state(),
        "train_log": train_log.rows if train_log is not None else None,
    }
    with atomic_file(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    lr_scheduler: Any = None,
    restore_rng: bool = True,
) -> int:
    """Restore model/optimizer/scheduler/RNG from ``path``; return the iteration it was saved at.

    Loaded with ``weights_only=True`` (no arbitrary code from a checkpoint file).
    """
    return _restore(torch.load(path, map_location="cpu", weights_only=True), model, optimizer, lr_scheduler,
                    restore_rng)


def _restore(state: dict, model, optimizer, lr_scheduler, restore_rng: bool) -> int:
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if lr_scheduler is not None and state.get("lr_scheduler") is not None:
        lr_scheduler.load_state_dict(state["lr_scheduler"])
    if restore_rng and state.get("rng"):
        _set_rng_state(state["rng"])
    return int(state["iteration"])


def resume_training(
    checkpoint: str | os.PathLike | None,
    log_path: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    lr_scheduler: Any = None,
) -> tuple[int, "TrainLog"]:
    """Start or resume a training: ``(first iteration to run, its TrainLog)``.

    ``checkpoint`` None: iteration 0 and an empty ``log_path``. Otherwise model, optimizer,
    scheduler and RNG are restored from it and the log holds the checkpoint's rows (a
    checkpoint written before rows were stored in it: the file's rows up to its iteration).
    """
    if checkpoint is None:
        return 0, TrainLog(log_path)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    start = _restore(state, model, optimizer, lr_scheduler, True)
    return start, TrainLog(log_path, resume_iteration=start, rows=state.get("train_log"))


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The checkpoint ``ckpt_<iteration>.pt`` with the highest iteration in ``folder``, or None."""
    folder = Path(folder)
    found = sorted(folder.glob("ckpt_*.pt"), key=lambda p: int(p.stem.split("_")[1])) if folder.is_dir() else []
    return found[-1] if found else None


def input_fingerprint(paths: Sequence[str | os.PathLike]) -> list[list]:
    """``[path, mtime_ns, size]`` of each input (a Zarr artifact: of its metadata file).

    What a training's checkpoints depend on besides its parameters. An artifact
    is replaced as a whole (:class:`wsvis.io.store.ArtifactWriter` renames a new
    directory into place), so a rewritten one has a new metadata file; a missing
    path gives ``[path, None, None]``.
    """
    out = []
    for path in paths:
        path = Path(path)
        probe = next((path / m for m in ("zarr.json", ".zattrs", ".zgroup") if (path / m).exists()), path)
        try:
            st = probe.stat()
            out.append([str(path), st.st_mtime_ns, st.st_size])
        except FileNotFoundError:
            out.append([str(path), None, None])
    return out


def prepare_checkpoint_dir(folder: str | os.PathLike, config: dict,
                           inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Make ``folder`` hold only checkpoints of a run with this ``config`` on these ``inputs``.

    Checkpoints outlive a killed job on purpose (the rerun resumes from them);
    but a rerun with *changed* parameters or *rewritten* inputs (new IR labels,
    pseudo-labels, frames: :func:`input_fingerprint`) must start afresh, so the
    folder's ``config.json`` is compared with both and the folder is emptied
    when they differ. (Without the inputs, a training killed and then rerun
    after its labels changed resumed from weights fitted to the old labels.)
    """
    folder = Path(folder)
    stamp = folder / "config.json"
    wanted = json.dumps({"config": config, "inputs": input_fingerprint(inputs)}, sort_keys=True, default=str)
    if folder.exists() and (not stamp.exists() or stamp.read_text() != wanted):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not stamp.exists():
        with atomic_file(stamp) as tmp:
            tmp.write_text(wanted)
    return folder


class TrainLog:
    """``train_log.csv`` with one row per logged iteration (iteration, losses, lr, seconds).

    On resume from iteration ``k`` the log starts from ``rows`` (those a checkpoint
    carried) or else from the file's rows; rows after ``k`` (written after the last
    checkpoint by the interrupted run) are dropped so the log matches the weights.
    """

    def __init__(self, path: str | os.PathLike, resume_iteration: int = 0,
                 rows: list[dict[str, Any]] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_iteration <= 0:
            rows = []
        elif rows is None and self.path.exists():
            with open(self.path, newline="") as fh:
                rows = list(csv.DictReader(fh))
        rows = [dict(r) for r in rows or [] if int(r["iteration"]) <= resume_iteration]
        self.fields: list[str] | None = list(rows[0].keys()) if rows else None
        self._rows = rows
        self._rewrite()

    def _rewrite(self) -> None:
        with atomic_file(self.path) as tmp, open(tmp, "w", newline="") as fh:
            if self.fields:
                writer = csv.DictWriter(fh, fieldnames=self.fields)
                writer.writeheader()
                writer.writerows(self._rows)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """A copy of the rows so far (values as written: floats formatted as strings)."""
        return [dict(r) for r in self._rows]

    def log(self, **row: Any) -> None:
        """Append one row; the first row fixes the columns."""
        row = {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
        if self.fields is None:
            self.fields = list(row)
        self._rows.append(row)
        self._rewrite()


def warmup_multistep(iterations: int, warmup_iters: int, warmup_factor: float, steps: Sequence[float],
                     gamma: float) -> Callable[[int], float]:
    """LR multiplier of iteration ``it`` for ``torch.optim.lr_scheduler.LambdaLR`` (detectron2's
    WarmupMultiStepLR): linear warm-up from ``warmup_factor`` to 1 over ``warmup_iters``
    iterations, times ``gamma`` per passed milestone (``steps`` fractions of ``iterations``).
    ``warmup_iters=0`` is torch's ``MultiStepLR``."""
    milestones = sorted({max(1, int(round(s * iterations))) for s in steps})

    def factor(it: int) -> float:
        warm = 1.0 if it >= warmup_iters else warmup_factor + (1 - warmup_factor) * it / max(1, warmup_iters)
        return warm * gamma ** sum(it >= m for m in milestones)

    return factor


def check_finite_loss(loss: torch.Tensor, losses: dict[str, torch.Tensor], *, iteration: int, what: str,
                      cure: str = "lower base_lr, or set warmup_iters / clip_grad_norm") -> None:
    """Stop a training whose loss is NaN or infinite, before it is backpropagated.

    SGD does not recover from a non-finite step: every later weight is NaN, and a run that
    went on would write a model and predictions of NaN that look complete (detectron2 stops
    the same way). The last checkpoint, written before the divergence, is kept.

    Args:
        loss: the scalar about to be backpropagated; losses: its named terms (reported).
        iteration: 1-based number of the iteration that produced ``loss``.
        what: the training's name for the message (``"training results/x/models/maskconsist"``).
        cure: the config change that usually helps, for the message.

    Raises:
        FloatingPointError: ``loss`` is not finite; the message gives the iteration, each
            term and the config keys that usually cure it.
    """
    if bool(torch.isfinite(loss.detach()).all()):
        return
    terms = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
    raise FloatingPointError(
        f"{what}: the loss became {float(loss.detach())} at iteration {iteration} ({terms}); the training "
        f"diverged: in the stage's train config, {cure}, and rerun (checkpoints of other settings are discarded)"
    )


def optimizer_step(
    loss: torch.Tensor,
    losses: dict[str, torch.Tensor],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    lr_scheduler: Any,
    iteration: int,
    stop: int,
    train_log: TrainLog,
    ckpt_dir: str | os.PathLike,
    config: dict,
    log_every: int,
    checkpoint_every: int,
    seconds: float,
    clip_grad_norm: float | None = None,
) -> None:
    """The tail of one training iteration shared by the detector trainings.

    Backward, optimizer and scheduler step; every ``log_every`` iterations (and at ``stop``) a
    ``train_log.csv`` row (iteration, loss, each of ``losses``, the lr the step used, ``seconds``);
    every ``checkpoint_every`` iterations (and at ``stop``) a checkpoint ``ckpt_<it>.pt`` in
    ``ckpt_dir``, the older ones removed (a checkpoint holds weights + momentum).

    Args:
        loss: the scalar to backpropagate; losses: its named terms (logged).
        iteration: the 0-based iteration just computed (``iteration + 1`` are done).
        clip_grad_norm: if set, the gradients' total L2 norm is clipped to it before the step.

    Raises:
        FloatingPointError: ``loss`` is NaN or infinite (:func:`check_finite_loss`); nothing is
            stepped or written.
    """
    cur_lr = optimizer.param_groups[0]["lr"]
    check_finite_loss(loss, losses, iteration=iteration + 1, what=f"training {Path(ckpt_dir).parent}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_grad_norm:
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], clip_grad_norm)
    optimizer.step()
    lr_scheduler.step()
    done = iteration + 1
    if done % log_every == 0 or done == stop:
        train_log.log(iteration=done, loss=float(loss.detach()), **{k: float(v.detach()) for k, v in losses.items()},
                      lr=cur_lr, seconds=seconds)
    if done % checkpoint_every == 0 or done == stop:
        ckpt_dir = Path(ckpt_dir)
        save_checkpoint(ckpt_dir / f"ckpt_{done}.pt", model=model, optimizer=optimizer, iteration=done, config=config,
                        lr_scheduler=lr_scheduler, train_log=train_log)
        for old in ckpt_dir.glob("ckpt_*.pt"):
            if old.name != f"ckpt_{done}.pt":
                old.unlink()
