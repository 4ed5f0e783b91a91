"""Checkpoints, resume bookkeeping and the training log."""

from __future__ import annotations

import csv
import random
import time

import cv2
import numpy as np
import pytest
import torch

from wsvis.torchutil import (
    TrainLog,
    deterministic_run,
    latest_checkpoint,
    load_checkpoint,
    load_state_dict_file,
    optimizer_step,
    prepare_checkpoint_dir,
    resolve_device,
    resume_training,
    save_checkpoint,
    warmup_multistep,
)


def test_checkpoint_round_trip_restores_rng(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "ckpt_5.pt", model=model, optimizer=opt, iteration=5, config={"a": 1})
    expected = (torch.rand(3), np.random.rand(3))
    other = torch.nn.Linear(3, 2)
    other_opt = torch.optim.SGD(other.parameters(), lr=0.1, momentum=0.9)
    assert load_checkpoint(tmp_path / "ckpt_5.pt", model=other, optimizer=other_opt) == 5
    assert torch.equal(other.weight, model.weight)
    assert other_opt.state_dict()["state"][0]["momentum_buffer"].equal(opt.state_dict()["state"][0]["momentum_buffer"])
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])
    save_checkpoint(tmp_path / "ckpt_12.pt", model=model, optimizer=opt, iteration=12)
    assert latest_checkpoint(tmp_path).name == "ckpt_12.pt"  # numeric, not lexical order
    assert set(load_state_dict_file(tmp_path / "ckpt_12.pt")) == {"weight", "bias"}


def test_checkpoint_dir_kept_for_same_config_and_emptied_for_new(tmp_path):
    folder = tmp_path / "checkpoints"
    prepare_checkpoint_dir(folder, {"lr": 0.1})
    (folder / "ckpt_10.pt").write_bytes(b"x")
    prepare_checkpoint_dir(folder, {"lr": 0.1})  # a rerun after a kill: resume
    assert (folder / "ckpt_10.pt").exists()
    prepare_checkpoint_dir(folder, {"lr": 0.01})  # changed params: start afresh
    assert not (folder / "ckpt_10.pt").exists() and (folder / "config.json").exists()


def test_checkpoint_dir_emptied_when_an_input_is_rewritten(tmp_path):
    # A training killed after a checkpoint, then its labels rewritten (an upstream change): the
    # rerun must not resume from weights fitted to the old labels.
    from wsvis.io.store import ArtifactWriter

    folder, labels, table = tmp_path / "checkpoints", tmp_path / "labels.zarr", tmp_path / "table.parquet"
    table.write_bytes(b"t")
    with ArtifactWriter(labels, stage="ir_labels") as w:
        w.write_array("labels", np.zeros((2, 3, 3), np.uint8))
    prepare_checkpoint_dir(folder, {"lr": 0.1}, inputs=[table, labels])
    (folder / "ckpt_10.pt").write_bytes(b"x")
    prepare_checkpoint_dir(folder, {"lr": 0.1}, inputs=[table, labels])  # same inputs: resume
    assert (folder / "ckpt_10.pt").exists()
    time.sleep(0.01)
    with ArtifactWriter(labels, stage="ir_labels") as w:  # rewritten in place by the upstream rule
        w.write_array("labels", np.ones((2, 3, 3), np.uint8))
    prepare_checkpoint_dir(folder, {"lr": 0.1}, inputs=[table, labels])
    assert not (folder / "ckpt_10.pt").exists()
    (folder / "ckpt_10.pt").write_bytes(b"x")
    table.write_bytes(b"t2")  # a plain file: size and mtime
    prepare_checkpoint_dir(folder, {"lr": 0.1}, inputs=[table, labels])
    assert not (folder / "ckpt_10.pt").exists()


def test_train_log_drops_rows_after_resume_point(tmp_path):
    path = tmp_path / "train_log.csv"
    log = TrainLog(path)
    for it in (1, 2, 3, 4):
        log.log(iteration=it, loss=1.0 / it, lr=0.1, seconds=0.5)
    TrainLog(path, resume_iteration=2).log(iteration=3, loss=0.2, lr=0.1, seconds=0.5)
    rows = list(csv.DictReader(open(path)))
    assert [r["iteration"] for r in rows] == ["1", "2", "3"] and rows[-1]["loss"] == "0.2"


def test_resume_rebuilds_the_log_from_the_checkpoint_after_snakemake_deleted_it(tmp_path):
    # Snakemake deletes a killed job's outputs (train_log.csv among them) before the rerun;
    # the resumed training must still write the rows up to its checkpoint.
    path = tmp_path / "train_log.csv"
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    start, log = resume_training(None, path, model=model, optimizer=opt)
    assert start == 0 and path.read_text() == ""
    for it in (1, 2, 3):
        log.log(iteration=it, loss=1.0 / it, lr=0.1, seconds=0.5)
        if it == 2:
            save_checkpoint(tmp_path / "ckpt_2.pt", model=model, optimizer=opt, iteration=2, train_log=log)
    path.unlink()
    start, log = resume_training(tmp_path / "ckpt_2.pt", path, model=torch.nn.Linear(3, 2), optimizer=opt)
    assert start == 2
    rows = list(csv.DictReader(open(path)))
    assert [r["iteration"] for r in rows] == ["1", "2"] and rows[1]["loss"] == "0.5"
    log.log(iteration=3, loss=0.25, lr=0.1, seconds=0.5)
    assert [r["loss"] for r in csv.DictReader(open(path))] == ["1", "0.5", "0.25"]


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1)), float(cv2.randu(np.zeros(1), 0, 1)[0])


def test_deterministic_run_seeds_and_scopes_the_deterministic_mode():
    draws = []
    for _ in range(2):
        with deterministic_run(7, torch.device("cpu")):
            assert torch.are_deterministic_algorithms_enabled()
            draws.append(_draws())
    assert draws[0] == draws[1]
    assert not torch.are_deterministic_algorithms_enabled()  # restored: the rest of the process is unaffected
    with pytest.raises(KeyError), deterministic_run(7):
        raise KeyError("a failing training")
    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic_run(7, "cuda"):  # CUDA is only seeded (its mode needs CUBLAS_WORKSPACE_CONFIG)
        assert not torch.are_deterministic_algorithms_enabled() and _draws() == draws[0]
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with deterministic_run(7):
            assert not torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_deterministic_run_sums_repeated_index_gradients_in_one_order():
    # x[idx] backward is index_put_(accumulate=True): on >1 CPU thread and >= 32768 elements PyTorch
    # adds with atomics, so repeated indices sum in a varying order whenever the threads overlap
    # (here up to 10 different gradients in 10 calls); deterministic mode makes it serial.
    assert torch.get_num_threads() > 1  # conftest: 2 threads, the parallel kernel's condition
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 64, (100_000,), generator=gen)
    vals = torch.randn(100_000, generator=gen)
    x = torch.zeros(64, requires_grad=True)
    grads = []
    with deterministic_run(0):
        for _ in range(5):
            x.grad = None
            (x[idx] * vals).sum().backward()
            grads.append(x.grad.clone())
    assert all(torch.equal(grads[0], g) for g in grads[1:])


def test_device_auto_falls_back_to_cpu():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"


def test_warmup_multistep_factors():
    f = warmup_multistep(100, 10, 0.001, (0.6, 0.8), 0.1)
    assert f(0) == pytest.approx(0.001) and f(5) == pytest.approx(0.001 + 0.999 * 0.5)
    assert f(10) == 1.0 and f(59) == 1.0
    assert f(60) == pytest.approx(0.1) and f(80) == pytest.approx(0.01)
    # no warm-up: torch's MultiStepLR, step for step
    model = torch.nn.Linear(2, 1)
    a = torch.optim.SGD(model.parameters(), lr=0.5)
    b = torch.optim.SGD(model.parameters(), lr=0.5)
    lam = torch.optim.lr_scheduler.LambdaLR(a, warmup_multistep(100, 0, 0.001, (0.6, 0.8), 0.1))
    ms = torch.optim.lr_scheduler.MultiStepLR(b, milestones=[60, 80], gamma=0.1)
    for _ in range(100):
        assert a.param_groups[0]["lr"] == pytest.approx(b.param_groups[0]["lr"])
        a.step(), b.step()  # no gradients: the steps change nothing but keep torch's order
        lam.step()
        ms.step()


def test_optimizer_step_stops_a_diverged_training_before_stepping(tmp_path):
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: 1.0)
    before = model.weight.detach().clone()
    ckpt_dir = tmp_path / "maskconsist" / "checkpoints"
    ckpt_dir.mkdir(parents=True)
    log = TrainLog(tmp_path / "maskconsist" / "train_log.csv")
    out = model(torch.ones(1, 2)).sum()
    losses = {"loss_mask": out * float("nan"), "loss_box_reg": out * 0}
    kw = dict(model=model, optimizer=opt, lr_scheduler=sched, iteration=33, stop=100, train_log=log,
              ckpt_dir=ckpt_dir, config={}, log_every=1, checkpoint_every=1, seconds=0.0)
    with pytest.raises(FloatingPointError, match=r"maskconsist.*iteration 34 .*loss_mask=nan.*base_lr"):
        optimizer_step(sum(losses.values()), losses, **kw)
    assert torch.equal(model.weight, before)  # nothing stepped, logged or checkpointed
    assert not list(ckpt_dir.iterdir()) and not log.rows
