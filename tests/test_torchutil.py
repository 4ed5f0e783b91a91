"""Checkpoints, resume bookkeeping and the training log."""

from __future__ import annotations

import csv

import numpy as np
import torch

from wsvis.torchutil import (
    TrainLog,
    latest_checkpoint,
    load_checkpoint,
    load_state_dict_file,
    prepare_checkpoint_dir,
    resolve_device,
    resume_training,
    save_checkpoint,
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


def test_device_auto_falls_back_to_cpu():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
