"""IRN / flowIRN training: tiny runs; two runs, and a resumed run, give identical weights."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
import torch

from conftest import assert_two_runs_identical
from wsvis.irn.train import load_irn, train_irn

BIG_H, BIG_W = 40, 52


def _video(tmp_path, name, n=3, seed=0):
    rng = np.random.default_rng(seed)
    paths, labels, flows = [], [], []
    for t in range(n):
        img = rng.integers(0, 60, (BIG_H, BIG_W, 3), dtype=np.uint8)
        img[8 + t : 28 + t, 10:30] += 150
        p = tmp_path / name / f"{t:05d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(p), img)
        paths.append(str(p))
        lab = np.zeros((10, 13), np.uint8)
        lab[2:7, 3:8] = 2
        lab[1, 2:9] = 255
        labels.append(lab)
        fl = np.zeros((BIG_H, BIG_W, 2), np.float32)
        fl[8:28, 10:30, 1] = 1.0
        flows.append(fl)
    return paths, np.stack(labels), np.stack(flows)


KW = dict(backbone="mobilenet_v2", weights="none", epochs=2, batch_size=2, crop_size=32,
          resize_long=(40, 56), radius=4, checkpoint_every=1, log_every=1, mean_frames=2, device="cpu", progress=False)


def _inputs(tmp_path):
    a = _video(tmp_path, "a", 3, 0)
    b = _video(tmp_path, "b", 2, 1)
    return [a[0], b[0]], [a[1], b[1]], [a[2], b[2]]


def test_resume_gives_identical_weights(tmp_path, flow_boundary=True):
    images, labels, flows = _inputs(tmp_path)
    full = train_irn(images, labels, flows, tmp_path / "full", flow_boundary=flow_boundary, **KW)
    part_dir = tmp_path / "part"
    train_irn(images, labels, flows, part_dir, flow_boundary=flow_boundary, max_iterations=2, **KW)
    assert sorted(p.name for p in (part_dir / "checkpoints").glob("*.pt")) == ["ckpt_1.pt", "ckpt_2.pt"]
    resumed = train_irn(images, labels, flows, part_dir, flow_boundary=flow_boundary, **KW)
    a = torch.load(full, weights_only=True)
    b = torch.load(resumed, weights_only=True)
    assert a["iterations"] == b["iterations"] == 4  # 2 epochs x (5 frames // 2)
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    with open(part_dir / "train_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert (float(rows[-1]["flow_boundary"]) > 0) == flow_boundary
    net = load_irn(resumed)
    assert not net.training and net.displacement_mean.abs().sum() > 0


def test_two_runs_give_identical_weights(tmp_path):
    """Same seed, two uninterrupted flowIRN runs: bit-identical weights (displacement mean included),
    every forward in deterministic mode."""
    images, labels, flows = _inputs(tmp_path)
    assert_two_runs_identical(
        lambda d: train_irn(images, labels, flows, tmp_path / d, flow_boundary=True, **{**KW, "epochs": 1}))


def test_training_moves_the_branches_only(tmp_path):
    images, labels, flows = _inputs(tmp_path)
    torch.manual_seed(0)
    out = train_irn(images, labels, None, tmp_path / "m", **{**KW, "epochs": 1, "checkpoint_every": 100})
    with open(tmp_path / "m" / "train_log.csv") as fh:
        assert all(float(r["flow_boundary"]) == 0 for r in csv.DictReader(fh))
    assert [p.name for p in (tmp_path / "m" / "checkpoints").glob("*.pt")] == ["ckpt_2.pt"]
    state = torch.load(out, weights_only=True)["model"]
    from wsvis.irn.net import IRNet

    torch.manual_seed(0)
    fresh = IRNet("mobilenet_v2", "none").state_dict()
    assert all(torch.equal(state[k], fresh[k]) for k in state if k.startswith("backbone."))
    assert any(not torch.equal(state[k], fresh[k]) for k in state if k.startswith("edge"))


def test_input_errors(tmp_path):
    images, labels, flows = _inputs(tmp_path)
    with pytest.raises(ValueError, match="flows"):
        train_irn(images, labels, None, tmp_path / "x", flow_boundary=True, **KW)
    with pytest.raises(ValueError, match="one entry per video"):
        train_irn(images, labels[:1], None, tmp_path / "x", **KW)
