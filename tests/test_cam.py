"""CAM classifier, resumable training, multi-scale CAMs, the CAM stage and the CAM floor artifact."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import DEMO, assert_two_runs_identical
from wsvis.cam import (
    CAMNet,
    compute_cam_floor,
    compute_video_cams,
    flow_amplified_cam,
    load_cam_model,
    make_cams,
    read_cams,
    train_cam,
)
from wsvis.flow.stage import compute_video_flow, read_flow
from wsvis.io.images import read_image
from wsvis.io.pseudo import read_pseudo

WEIGHTS = Path(__file__).resolve().parents[1] / "resources" / "weights" / "mobilenet_v2_features_imagenet.pt"


def _weights() -> str:
    """The shipped ImageNet MobileNetV2 (random-init features are ~1e-7, below make_cams' +1e-5)."""
    if not WEIGHTS.is_file():
        pytest.skip("shipped MobileNetV2 weights missing")
    return str(WEIGHTS)


def _tiny_frames(tmp_path: Path, video: str, n: int, size=(107, 60)) -> list[str]:
    """First ``n`` demo frames of ``video`` downscaled to ``size`` (W, H), written as PNG."""
    out = tmp_path / "frames" / video
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for src in sorted((DEMO / "JPEGImages" / video).glob("*.jpg"))[:n]:
        img = cv2.resize(read_image(src), size, interpolation=cv2.INTER_AREA)
        dst = out / (src.stem + ".png")
        cv2.imwrite(str(dst), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        paths.append(str(dst))
    return paths


def _table(paths_tags: list[tuple[list[str], list[str]]], split="train") -> pd.DataFrame:
    rows = [{"image": p, "tags": list(tags), "split": split} for paths, tags in paths_tags for p in paths]
    return pd.DataFrame(rows)


# --- network --------------------------------------------------------------------------------------


def test_camnet_shapes_and_groups():
    torch.manual_seed(0)
    model = CAMNet("mobilenet_v2", 3)
    x = torch.randn(2, 3, 70, 50)
    assert model(x).shape == (2, 3)
    cam = model.cam(x)
    assert cam.shape == (2, 3, math.ceil(70 / 16), math.ceil(50 / 16)) and (cam >= 0).all()
    backbone, classifier = model.trainable_parameters()
    assert len(classifier) == 1 and classifier[0].shape == (3, 1280, 1, 1)
    assert all(p.requires_grad for p in backbone)
    frozen = {id(p) for s in model.backbone.stages[:3] for p in s.parameters()}
    assert frozen and not frozen & {id(p) for p in backbone}
    with pytest.raises(ValueError, match="backbone"):
        CAMNet("vgg", 3)


def test_camnet_batchnorm_and_first_levels_stay_frozen():
    torch.manual_seed(0)
    model = CAMNet("mobilenet_v2", 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    opt = torch.optim.SGD([p for g in model.trainable_parameters() for p in g], lr=0.5)
    for _ in range(2):
        loss = torch.nn.functional.multilabel_soft_margin_loss(model(torch.randn(2, 3, 64, 64)), torch.tensor([[1.0, 0], [0, 1]]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.state_dict()
    for k, v in before.items():
        if "running_" in k or "num_batches" in k or k.startswith(("backbone.stages.0.", "backbone.stages.1.", "backbone.stages.2.")):
            assert torch.equal(v, after[k]), k
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
    assert not torch.equal(before["backbone.stages.4.14.conv.0.0.weight"], after["backbone.stages.4.14.conv.0.0.weight"])


# --- training -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory) -> pd.DataFrame:
    tmp = tmp_path_factory.mktemp("cam_train")
    swan = _tiny_frames(tmp, "blackswan", 3, (80, 45))
    dog = _tiny_frames(tmp, "dog", 3, (80, 45))
    car = _tiny_frames(tmp, "car-roundabout", 1, (80, 45))
    df = _table([(swan, ["bird"]), (dog, ["dog"]), (car[:1], [])])
    held_out = _table([(car, ["car"])], split="val")  # not a training frame
    return pd.concat([df, held_out], ignore_index=True)


TRAIN_KW = dict(backbone="mobilenet_v2", weights="none", epochs=2, batch_size=2, lr=0.05, crop_size=64,
                resize_long=(48, 96), seed=3, device="cpu", progress=False)
CATS = ["bird", "dog", "car"]


def _log_iterations(folder: Path) -> list[int]:
    with open(folder / "train_log.csv", newline="") as fh:
        return [int(r["iteration"]) for r in csv.DictReader(fh)]


def test_train_resume_matches_uninterrupted_run(tiny_table, tmp_path):
    # 7 training frames, batch 2 -> 3 iterations per epoch, 6 in all
    full = train_cam(tiny_table, CATS, tmp_path / "full", checkpoint_every=100, **TRAIN_KW)
    assert full == tmp_path / "full" / "model.pt" and full.is_file()
    assert _log_iterations(tmp_path / "full") == [1, 2, 3, 4, 5, 6]

    # interrupted at iteration 4 (a checkpoint is written there), then continued
    part = tmp_path / "part"
    stopped = train_cam(tiny_table, CATS, part, checkpoint_every=2, max_iterations=4, **TRAIN_KW)
    assert stopped.name == "ckpt_4.pt" and not (part / "model.pt").exists()
    assert _log_iterations(part) == [1, 2, 3, 4]
    train_cam(tiny_table, CATS, part, checkpoint_every=2, **TRAIN_KW)
    assert _log_iterations(part) == [1, 2, 3, 4, 5, 6]

    # killed after iteration 3 with the last checkpoint at 2: the log row 3 is dropped and redone
    killed = tmp_path / "killed"
    train_cam(tiny_table, CATS, killed, checkpoint_every=2, max_iterations=3, **TRAIN_KW)
    (killed / "checkpoints" / "ckpt_3.pt").unlink()
    assert not (killed / "model.pt").exists()
    train_cam(tiny_table, CATS, killed, checkpoint_every=2, **TRAIN_KW)
    assert _log_iterations(killed) == [1, 2, 3, 4, 5, 6]

    ref = torch.load(full, weights_only=True)
    assert ref["backbone"] == "mobilenet_v2" and ref["categories"] == CATS
    for other in (part, killed):
        state = torch.load(other / "model.pt", weights_only=True)["model"]
        assert state.keys() == ref["model"].keys()
        for k, v in ref["model"].items():
            assert torch.equal(v, state[k]), k

    model = load_cam_model(full, "cpu")
    assert not model.training and model.categories == CATS

    with pytest.raises(ValueError, match="batch_size"):
        train_cam(tiny_table, CATS, part, checkpoint_every=2, **{**TRAIN_KW, "batch_size": 3})


def test_two_runs_give_identical_weights(tiny_table, tmp_path):
    """Same seed, two uninterrupted runs: bit-identical weights, every forward in deterministic mode."""
    assert_two_runs_identical(
        lambda d: train_cam(tiny_table, CATS, tmp_path / d, checkpoint_every=100, **{**TRAIN_KW, "epochs": 1}))


def test_train_rejects_unknown_tags(tiny_table, tmp_path):
    with pytest.raises(ValueError, match="not in the category list"):
        train_cam(tiny_table, ["bird"], tmp_path, **TRAIN_KW)


def test_train_real_weights_loss_decreases(tmp_path):
    """Shipped ImageNet MobileNetV2, bird (blackswan) vs dog: the loss goes down within a few dozen iterations."""
    if not WEIGHTS.is_file():
        pytest.skip("shipped MobileNetV2 weights missing")
    swan = sorted(str(p) for p in (DEMO / "JPEGImages" / "blackswan").glob("*.jpg"))[::6]
    dog = sorted(str(p) for p in (DEMO / "JPEGImages" / "dog").glob("*.jpg"))[::6]
    df = _table([(swan, ["bird"]), (dog, ["dog"])])  # 12 frames
    train_cam(df, ["bird", "dog"], tmp_path, backbone="mobilenet_v2", weights=str(WEIGHTS), epochs=10,
              batch_size=4, lr=0.001, crop_size=128, resize_long=(128, 192), seed=0, device="cpu",
              checkpoint_every=1000, progress=False)
    loss = pd.read_csv(tmp_path / "train_log.csv")["loss"].to_numpy()
    assert len(loss) == 30
    assert loss[-5:].mean() < 0.5 * loss[:5].mean(), loss


# --- inference ------------------------------------------------------------------------------------


def test_make_cams_shapes_and_normalisation():
    torch.manual_seed(0)
    model = CAMNet("mobilenet_v2", 3, weights=_weights())
    with torch.no_grad():
        model.classifier.weight.abs_()  # last-level features are >= 0 (ReLU6): CAMs are non-zero
    img = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    cams = make_cams(model, img, [1], scales=(1.0, 0.5))
    assert cams.shape == (3, math.ceil(50 / 4), math.ceil(70 / 4)) and cams.dtype == np.float32
    assert not cams[0].any() and not cams[2].any()
    assert cams[1].min() >= 0 and abs(cams[1].max() - 1.0) < 1e-4
    assert not make_cams(model, img, [], scales=(1.0,)).any()
    with pytest.raises(ValueError, match="class ids"):
        make_cams(model, img, [3])


# --- stage ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = CAMNet("mobilenet_v2", 3, weights=_weights())
    with torch.no_grad():
        model.classifier.weight.abs_()
    path = tmp_path_factory.mktemp("cam_model") / "model.pt"
    torch.save({"model": model.state_dict(), "backbone": "mobilenet_v2", "categories": CATS}, path)
    return path


def test_compute_video_cams_artifact(tmp_path, random_model):
    frames = _tiny_frames(tmp_path, "blackswan", 3)  # 107 x 60
    flow_path = tmp_path / "flow" / "blackswan.zarr"
    compute_video_flow(frames, flow_path, backend="dis", gaps=[1], progress=False)
    out = tmp_path / "cam" / "blackswan.zarr"
    tags = [["bird"], ["bird", "dog"], []]
    compute_video_cams(frames, tags, CATS, random_model, flow_path, out, scales=(1.0,), amplification=2.0,
                       percentile=80.0, compensation="none", device="cpu", params={"x": 1}, progress=False)
    cam, fcam, cats, attrs = read_cams(out)
    assert cats == CATS
    assert cam.shape == fcam.shape == (3, 3, 15, 27)
    assert cam.dtype == fcam.dtype == np.float16
    assert attrs["stride"] == 4 and attrs["frame_size"] == [60, 107] and attrs["params"] == {"x": 1}
    assert attrs["stage"] == "cam" and attrs["fcam_flow"].startswith("gap 1")
    c, f = cam[:].astype(np.float32), fcam[:].astype(np.float32)
    assert not c[0, 1:].any() and c[0, 0].max() > 0.99 and not c[2].any()
    assert c[1, :2].max() > 0.99 and not c[1, 2].any()
    # frame 0 uses forward[0]; the last frame uses backward[T-2]
    fwd, bwd = read_flow(flow_path, 1, "forward"), read_flow(flow_path, 1, "backward")
    for t, flow in ((0, fwd[0]), (1, fwd[1]), (2, bwd[1])):
        expect, _ = flow_amplified_cam(c[t], flow, 2.0, 80.0)
        np.testing.assert_allclose(f[t], expect, rtol=2e-3, atol=1e-6)
    ratio = f[0, 0][c[0, 0] > 0.01] / c[0, 0][c[0, 0] > 0.01]
    assert np.all(np.isclose(ratio, 1.0, atol=2e-3) | np.isclose(ratio, 2.0, atol=4e-3))

    # CAM floor from the artifact
    pseudo = tmp_path / "pseudo" / "cam" / "blackswan.zarr"
    compute_cam_floor(out, pseudo, source="fcam", threshold=0.15, params={"threshold": 0.15})
    instances, classes, scores, pattrs = read_pseudo(pseudo)
    assert instances.shape == (3, 60, 107) and pattrs["variant"] == "cam" and pattrs["source"] == "fcam"
    assert set(classes[1:].tolist()) <= {1, 2} and len(classes) > 1
    assert not instances[2].any()


def test_compute_video_cams_one_frame_and_errors(tmp_path, random_model):
    frames = _tiny_frames(tmp_path, "dog", 1)
    out = tmp_path / "cam" / "dog.zarr"
    compute_video_cams(frames, [["dog"]], CATS, random_model, None, out, scales=(1.0,), amplification=2.0,
                       percentile=80.0, compensation="none", device="cpu", progress=False)
    cam, fcam, _, attrs = read_cams(out)
    assert cam.shape == (1, 3, 15, 27)
    np.testing.assert_array_equal(cam[:], fcam[:])
    assert attrs["fcam_flow"].startswith("none")
    with pytest.raises(ValueError, match="differ"):
        compute_video_cams(frames, [["dog"]], ["dog", "bird", "car"], random_model, None, tmp_path / "x.zarr",
                           scales=(1.0,), amplification=2.0, percentile=80.0, compensation="none",
                           device="cpu", progress=False)
    with pytest.raises(ValueError, match="not in the category list"):
        compute_video_cams(frames, [["cat"]], CATS, random_model, None, tmp_path / "x.zarr", scales=(1.0,),
                           amplification=2.0, percentile=80.0, compensation="none", device="cpu", progress=False)
    assert not (tmp_path / "x.zarr").exists()
