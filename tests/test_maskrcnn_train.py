"""Mask R-CNN / MaskConsist training, resume, inference and self-training on a tiny real clip.

Real data: a few ``resources/demo`` frames downscaled to 96 x 54, pseudo-labels
from the ground-truth masks, DIS flow. Weight-free MobileNetV2, a handful of
iterations: this checks plumbing, shapes and determinism (two runs, and a resumed
run, end with bit-identical weights), not accuracy.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import DEMO, assert_two_runs_identical
from wsvis.flow.stage import compute_video_flow
from wsvis.io.images import read_image, read_mask
from wsvis.io.predictions import read_predictions
from wsvis.io.pseudo import PseudoLabelWriter, read_pseudo
from wsvis.maskconsist.matching import make_instances
from wsvis.maskconsist.predict import predict_video, predictions_to_pseudo
from wsvis.maskconsist.train import FramePair, image_tensor, maskconsist_losses, train_maskrcnn
from wsvis.models.maskrcnn import build_maskrcnn, load_maskrcnn

CATEGORIES = ["bird", "car", "dog"]
SIZE = (96, 54)  # (W, H)
TINY = dict(backbone="mobilenet_v2", weights="none", min_size=54, max_size=96)


def make_clip(root: Path, video: str = "blackswan", cls: int = 1, n: int = 5) -> tuple[list[str], Path, Path]:
    """Downscaled frames, GT-mask pseudo-labels and gap-2 flow of one demo video."""
    frames, masks = [], []
    for t in range(n):
        img = read_image(DEMO / "JPEGImages" / video / f"{t:05d}.jpg")
        path = root / video / f"{t:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(cv2.resize(img, SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR))
        frames.append(str(path))
        m = read_mask(DEMO / "Annotations" / video / f"{t:05d}.png") > 0
        masks.append(cv2.resize(m.astype(np.uint8), SIZE, interpolation=cv2.INTER_NEAREST) > 0)
    pseudo = root / "pseudo" / f"{video}.zarr"
    with PseudoLabelWriter(pseudo, num_frames=n, frame_size=SIZE[::-1], variant="gt", categories=CATEGORIES) as w:
        for t, m in enumerate(masks):
            if t == 1:  # a frame where the pseudo-labeler "missed" the object
                w.add_frame(t, np.zeros((0, *SIZE[::-1]), bool), np.zeros(0, int), np.zeros(0))
            else:
                w.add_frame(t, m[None], np.array([cls]), np.array([1.0]))
    flow = root / "flow" / f"{video}.zarr"
    compute_video_flow(frames, flow, backend="dis", gaps=[2], progress=False)
    return frames, pseudo, flow


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[list[str], Path, Path]:
    return make_clip(tmp_path_factory.mktemp("clip"))


def pair_inputs(clip) -> tuple[list[torch.Tensor], list, FramePair]:
    """Frames 0 and 2 of the clip as a MaskConsist pair: images, pseudo-label Instances, FramePair."""
    from wsvis.flow.stage import read_flow
    from wsvis.io.pseudo import frame_instances

    frames, pseudo_path, flow_path = clip
    inst, classes, scores, _ = read_pseudo(pseudo_path)
    pseudo = [make_instances(*frame_instances(np.asarray(inst[t]), classes, scores)[1:]) for t in (0, 2)]
    images = [image_tensor(frames[t]) for t in (0, 2)]
    pair = FramePair(0, 1, np.asarray(read_flow(flow_path, 2, "backward")[0], np.float32),
                     np.asarray(read_flow(flow_path, 2, "forward")[0], np.float32))
    return images, pseudo, pair


def test_build_maskrcnn_backbones():
    shipped = Path(__file__).resolve().parents[1] / "resources" / "weights" / "mobilenet_v2_features_imagenet.pt"
    m = build_maskrcnn(4, backbone="mobilenet_v2", weights=str(shipped), min_size=54, max_size=96)
    assert m.transform.min_size == (54,) and m.transform.max_size == 96
    assert m.roi_heads.box_predictor.cls_score.out_features == 4
    with pytest.raises(ValueError, match="unknown Mask R-CNN backbone"):
        build_maskrcnn(4, backbone="vgg")
    with pytest.raises(FileNotFoundError):
        build_maskrcnn(4, backbone="mobilenet_v2", weights="no/such/file.pt")


def test_losses_with_and_without_maskconsist(clip):
    images, pseudo, pair = pair_inputs(clip)
    torch.manual_seed(0)
    model = build_maskrcnn(4, rois_per_image=64, **TINY).train()
    for consist in (False, True):
        losses, labels = maskconsist_losses(model, images, pseudo, [pair], consist=consist)
        assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
        assert all(torch.isfinite(v) and v.requires_grad for v in losses.values())
        assert len(labels) == 2 and all(len(lab) >= 1 for lab in labels)


def test_candidate_score_keeps_low_score_detections_out_of_the_labels(clip):
    """No detection reaches score 1: with candidate_score 1 nothing is matched or transferred and the
    pair trains on its pseudo-labels; at 0 the untrained model's detections are merged into them."""
    images, pseudo, pair = pair_inputs(clip)
    torch.manual_seed(0)
    model = build_maskrcnn(4, rois_per_image=64, **TINY).train()
    # the untrained classifier scores every class about alike: let class 1 (the label's) win
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.bias.copy_(torch.tensor([0.0, 3.0, 0.0, 0.0]))
    areas = {}
    for cs in (0.0, 1.0):
        torch.manual_seed(0)
        _, labels = maskconsist_losses(model, images, pseudo, [pair], candidate_score=cs)
        areas[cs] = [int(lab.masks.any(0).sum()) for lab in labels]
        if cs == 1.0:
            assert all(torch.equal(lab.masks, p.masks) for lab, p in zip(labels, pseudo))
    pseudo_area = [int(p.masks.any(0).sum()) for p in pseudo]
    assert areas[1.0] == pseudo_area and sum(areas[0.0]) > sum(pseudo_area)


def test_resume_gives_identical_weights(clip, tmp_path):
    frames, pseudo, flow = clip
    # warm-up over the checkpoint (the LR schedule resumes mid-ramp) and clipping on
    kw = dict(method="maskconsist", categories=CATEGORIES, delta=2, iterations=4, batch_size=1,
              warmup_iters=3, warmup_factor=0.1, clip_grad_norm=1.0,
              checkpoint_every=2, log_every=1, rois_per_image=64, device="cpu", progress=False, **TINY)
    full = train_maskrcnn([frames], [pseudo], [flow], tmp_path / "full", **kw)
    train_maskrcnn([frames], [pseudo], [flow], tmp_path / "resumed", max_iterations=2, **kw)
    resumed = train_maskrcnn([frames], [pseudo], [flow], tmp_path / "resumed", **kw)
    a = torch.load(full, weights_only=True)
    b = torch.load(resumed, weights_only=True)
    assert a["categories"] == CATEGORIES and a["backbone"] == "mobilenet_v2"
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    with open(tmp_path / "resumed" / "train_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    # default base_lr 0.002: warm-up 0.1, 0.4, 0.7, then x 1.0 x gamma (milestone 0.75 x 4 = iteration 3)
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.002 * f for f in (0.1, 0.4, 0.7, 0.1)])
    assert {"loss_mask", "lr", "seconds"} <= set(rows[0])
    assert [p.name for p in (tmp_path / "full" / "checkpoints").glob("ckpt_*.pt")] == ["ckpt_4.pt"]


def test_two_runs_give_identical_weights(clip, tmp_path):
    """Same seed, two uninterrupted MaskConsist runs: bit-identical weights, every forward in deterministic mode."""
    frames, pseudo, flow = clip
    kw = dict(method="maskconsist", categories=CATEGORIES, delta=2, iterations=2, batch_size=1, clip_grad_norm=1.0,
              rois_per_image=64, device="cpu", progress=False, **TINY)
    assert_two_runs_identical(lambda d: train_maskrcnn([frames], [pseudo], [flow], tmp_path / d, **kw))


def test_maskconsist_labels_start_at_consist_from(clip, tmp_path, monkeypatch):
    """Before ``consist_from`` the pairs train on their pseudo-labels; Alg. 1 runs from that iteration on."""
    import wsvis.maskconsist.train as mc_train

    calls = []
    real = mc_train.maskconsist_targets

    def counting(*args, **kwargs):
        calls.append(args[0] is not args[2])  # a pair (predictions, pseudo-labels), not a single frame
        return real(*args, **kwargs)

    monkeypatch.setattr(mc_train, "maskconsist_targets", counting)
    frames, pseudo, flow = clip
    kw = dict(method="maskconsist", categories=CATEGORIES, delta=2, iterations=3, batch_size=1, rois_per_image=64,
              device="cpu", progress=False, **TINY)
    train_maskrcnn([frames], [pseudo], [flow], tmp_path / "late", consist_from=2, **kw)
    assert calls == [True]  # iteration 2 only: one pair
    calls.clear()
    train_maskrcnn([frames], [pseudo], [flow], tmp_path / "paper", **kw)
    assert calls == [True, True, True]
    with pytest.raises(ValueError, match="consist_from"):
        train_maskrcnn([frames], [pseudo], [flow], tmp_path / "bad", consist_from=-1, **kw)


def test_pairs_from_consist_draws_single_frames_until_consist_from(clip, tmp_path, monkeypatch):
    """``pairs_from="consist"``: 2 x batch_size single frames per iteration (as maskrcnn) before
    ``consist_from``, pairs (t, t+δ) from it on; ``"start"`` (paper): pairs at every iteration."""
    import wsvis.maskconsist.train as mc_train

    batches = []
    real = mc_train._load_batch

    def recording(videos, batch, dev):
        batches.append([(t, u) for _, t, u in batch])
        return real(videos, batch, dev)

    monkeypatch.setattr(mc_train, "_load_batch", recording)
    frames, pseudo, flow = clip
    kw = dict(method="maskconsist", categories=CATEGORIES, delta=2, iterations=3, batch_size=1, rois_per_image=64,
              consist_from=2, device="cpu", progress=False, **TINY)
    train_maskrcnn([frames], [pseudo], [flow], tmp_path / "consist", pairs_from="consist", **kw)
    assert [len(b) for b in batches] == [2, 2, 1]
    assert all(u is None for b in batches[:2] for _, u in b)
    (t, u), = batches[2]
    assert u - t == 2
    batches.clear()
    train_maskrcnn([frames], [pseudo], [flow], tmp_path / "start", **kw)
    assert [len(b) for b in batches] == [1, 1, 1] and all(u - t == 2 for b in batches for t, u in b)
    with pytest.raises(ValueError, match="pairs_from"):
        train_maskrcnn([frames], [pseudo], [flow], tmp_path / "bad", pairs_from="never", **kw)


def test_train_predict_and_selftrain(clip, tmp_path):
    frames, pseudo, flow = clip
    kw = dict(categories=CATEGORIES, delta=2, iterations=2, batch_size=1, rois_per_image=64, device="cpu",
              progress=False, **TINY)
    model_path = train_maskrcnn([frames], [pseudo], [flow], tmp_path / "mc", method="maskconsist", **kw)
    model, meta = load_maskrcnn(model_path)
    assert not model.training and meta["min_size"] == 54
    out = predict_video(frames[:3], model_path, tmp_path / "pred" / "blackswan.zarr", method="maskconsist",
                        max_detections=7, device="cpu", progress=False)
    group, attrs = read_predictions(out)
    assert attrs["method"] == "maskconsist" and attrs["categories"] == CATEGORIES
    assert group["masks"].shape == (3, 7, 54, 96) and group["masks"].dtype == bool
    assert group["scores"].shape == (3, 7) and group["scores"].dtype == np.float32
    assert group["labels"].shape == (3, 7) and group["labels"].dtype == np.int32
    assert group["boxes"].shape == (3, 7, 4) and group["boxes"].dtype == np.float32
    labels = group["labels"][:]
    assert labels.min() >= 0 and labels.max() <= 3
    scores = group["scores"][:]
    assert np.all(np.diff(scores, axis=1) <= 0)  # sorted per frame
    boxes = group["boxes"][:]
    assert np.all(boxes[..., 2] >= boxes[..., 0]) and np.all(boxes[..., 2] <= 96)
    tta = predict_video(frames[:3], model_path, tmp_path / "pred" / "tta.zarr", method="maskconsist",
                        max_detections=7, hflip_tta=True, device="cpu", progress=False)
    tta_group, tta_attrs = read_predictions(tta)
    assert tta_attrs["hflip_tta"] is True and attrs["hflip_tta"] is False
    assert tta_group["masks"].shape == (3, 7, 54, 96) and np.all(np.diff(tta_group["scores"][:], axis=1) <= 0)

    # self-training: round 1's predictions as pseudo-labels, then the same trainer (single frames here)
    new_pseudo = predictions_to_pseudo(out, tmp_path / "pseudo2" / "blackswan.zarr", score_threshold=0.0)
    inst, classes, _, pattrs = read_pseudo(new_pseudo)
    assert inst.shape == (3, 54, 96) and inst.dtype == np.uint16 and pattrs["categories"] == CATEGORIES
    if inst[:].any():
        p = train_maskrcnn([frames[:3]], [new_pseudo], None, tmp_path / "st", method="maskrcnn", **kw)
        assert p.exists()


def test_inference_proposals_bound_the_detections(clip, tmp_path):
    """``proposals`` is the number of RPN boxes the box head scores: one proposal gives at most one
    detection per class (categories 3); torchvision's 1000 fill all K slots at score threshold 0."""
    frames, pseudo, flow = clip
    model_path = train_maskrcnn([frames], [pseudo], [flow], tmp_path / "m", method="maskrcnn", categories=CATEGORIES,
                                iterations=1, batch_size=1, rois_per_image=64, device="cpu", progress=False, **TINY)
    counts = {}
    for n in (1, 1000):
        out = predict_video(frames[:2], model_path, tmp_path / f"p{n}.zarr", method="maskrcnn", score_threshold=0.0,
                            max_detections=7, proposals=n, device="cpu", progress=False)
        group, attrs = read_predictions(out)
        assert attrs["proposals"] == n
        counts[n] = (group["labels"][:] > 0).sum(axis=1)
    assert counts[1].max() <= len(CATEGORIES) and counts[1].min() >= 1
    assert (counts[1000] == 7).all()
    assert build_maskrcnn(4, test_proposals=300, **TINY).eval().rpn.post_nms_top_n() == 300


def test_fpn_channels_set_the_width_of_the_fpn_and_every_head(clip, tmp_path):
    """fpn_channels 64: FPN levels, RPN conv, box-head input (64 x 7 x 7), four mask convs and the mask
    deconvolution are 64 wide; model.pt stores it and the loader rebuilds that width (a model.pt without the
    key is read as 256 wide and does not fit). The default keeps the 256-wide heads of torchvision's model."""
    frames, pseudo, flow = clip
    net = build_maskrcnn(4, fpn_channels=64, **TINY)
    assert net.backbone.out_channels == 64 and net.rpn.head.conv[0][0].in_channels == 64
    assert net.roi_heads.box_head.fc6.in_features == 64 * 7 * 7
    assert [m[0].out_channels for m in net.roi_heads.mask_head] == [64] * 4
    assert net.roi_heads.mask_predictor.conv5_mask.out_channels == 64
    wide = build_maskrcnn(4, **TINY)
    assert [m[0].out_channels for m in wide.roi_heads.mask_head] == [256] * 4
    assert wide.roi_heads.box_head.fc6.in_features == 256 * 7 * 7
    with pytest.raises(ValueError, match="resnet50"):
        build_maskrcnn(4, backbone="resnet50", fpn_channels=128)
    model_path = train_maskrcnn([frames], [pseudo], [flow], tmp_path / "m", method="maskrcnn", categories=CATEGORIES,
                                iterations=1, batch_size=1, rois_per_image=64, fpn_channels=64, device="cpu",
                                progress=False, **TINY)
    loaded, meta = load_maskrcnn(model_path)
    assert meta["fpn_channels"] == 64 and loaded.backbone.out_channels == 64
    state = torch.load(model_path, weights_only=True)
    del state["fpn_channels"]  # a model.pt written before the option loads 256 wide and does not fit
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_maskrcnn(tmp_path / "old.pt")
