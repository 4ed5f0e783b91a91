"""CondInst on FCOS (stcseg / boxinst / boxinst_flow): forward + backward, training resume, predictions.

A tiny real clip (demo frames downscaled to 96 x 54, boxes from the gt masks,
DIS flow), weight-free MobileNetV2, 2-3 iterations: plumbing, shapes and
determinism (two runs, and a resumed run, end with bit-identical weights), not accuracy.
"""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import DEMO, assert_two_runs_identical
from wsvis.baselines.box import box_masks
from wsvis.boxsup.predict import predict_video_condinst
from wsvis.boxsup.train import box_mask_losses, flow_image, param_groups, train_condinst
from wsvis.flow.stage import compute_video_flow
from wsvis.io.images import read_image, read_mask
from wsvis.io.manifest import mask_boxes
from wsvis.io.predictions import read_predictions
from wsvis.models.condinst import MaskRefine, build_condinst, load_condinst
from wsvis.stc.stage import compute_video_stc

CATEGORIES = ["bird", "car", "dog"]
SIZE = (96, 54)  # (W, H)
TINY = dict(backbone="mobilenet_v2", weights="none", min_size=54, max_size=96)
SCHEDULE = dict(iterations=3, batch_size=1, base_lr=0.01, warmup_iters=2, pairwise_warmup=2, checkpoint_every=1,
                log_every=1, device="cpu", progress=False, mask_channels=4, branch_channels=16)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("boxclip")
    frames, boxes = [], []
    for t in range(4):
        img = read_image(DEMO / "JPEGImages" / "blackswan" / f"{t:05d}.jpg")
        path = root / f"{t:05d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(cv2.resize(img, SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR))
        frames.append(str(path))
        m = read_mask(DEMO / "Annotations" / "blackswan" / f"{t:05d}.png") > 0
        m = cv2.resize(m.astype(np.uint8), SIZE, interpolation=cv2.INTER_NEAREST)
        boxes.append(mask_boxes(m, [1]) if t != 2 else [])  # frame 2 unlabelled
    classes = [["bird"] * len(b) for b in boxes]
    flow = root / "flow.zarr"
    compute_video_flow(frames, flow, backend="dis", gaps=[1], progress=False)
    pseudo = root / "stc.zarr"
    compute_video_stc(boxes, classes, SIZE[::-1], flow, None, pseudo, categories=CATEGORIES, signals="flow")
    return frames, boxes, classes, flow, pseudo


def test_forward_backward_tiny_batch():
    torch.manual_seed(0)
    model = build_condinst(4, two_stream=True, mask_channels=4, branch_channels=16, **TINY)
    images = [torch.rand(3, 54, 96) for _ in range(2)]
    flows = [torch.rand(3, 54, 96) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[10.0, 5.0, 50.0, 40.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[0.0, 0.0, 30.0, 30.0], [40.0, 10.0, 90.0, 50.0]]), "labels": torch.tensor([3, 2])}]
    det, masks = model.train_forward(images, targets, flows, top_k=5)
    assert set(det) == {"classification", "bbox_regression", "bbox_ctrness"}
    logits = masks["logits"]
    assert logits.ndim == 3 and logits.shape[0] <= 10 and logits.shape[0] > 0
    padded = masks["image_list"].tensors.shape[-2:]
    assert tuple(logits.shape[1:]) == (padded[0] // 4, padded[1] // 4)  # 1/4 input resolution
    losses = box_mask_losses("boxinst_flow", masks, images, flows=flows)
    total = sum(det.values()) + sum(losses.values())
    total.backward()
    assert model.fcos.head.controller.weight.grad is not None and model.mask_branch[0].weight.grad is not None
    pseudo = [torch.ones(54, 96, dtype=torch.bool)] * 2
    assert set(box_mask_losses("stcseg", masks, images, pseudo=pseudo)) == {"loss_boundary", "loss_box"}


def test_fusion_switches_and_errors():
    m = build_condinst(3, two_stream=True, mask_fusion="concat", **TINY)
    assert m.mask_in == 16 and m.fcos.head.num_params == (16 + 2) * 16 + 16 + 16 * 16 + 16 + 16 + 1
    assert build_condinst(3, two_stream=True, mask_fusion="max", **TINY).mask_in == 8
    with pytest.raises(ValueError, match="two-stream"):
        m.train_forward([torch.rand(3, 54, 96)], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}])
    with pytest.raises(ValueError, match="unknown fusion"):
        build_condinst(3, two_stream=True, mask_fusion="attention", **TINY)


def test_head_convs_sets_the_fcos_tower_depth(clip, tmp_path):
    towers = lambda m: [m.fcos.head.classification_head.conv, m.fcos.head.regression_head.conv]  # noqa: E731
    for k in (4, 1):  # conv, GroupNorm, ReLU per layer
        assert [len(t) for t in towers(build_condinst(3, head_convs=k, **TINY))] == [3 * k, 3 * k]
    with pytest.raises(ValueError, match="head_convs"):
        build_condinst(3, head_convs=0, **TINY)
    frames, boxes, classes, _, pseudo = clip
    model = train_condinst([frames], [boxes], [classes], tmp_path / "m", method="stcseg", categories=CATEGORIES,
                           pseudo_paths=[pseudo], head_convs=2, **TINY, **{**SCHEDULE, "iterations": 1})
    net, meta = load_condinst(model)  # the depth is stored with the weights and rebuilt
    assert meta["head_convs"] == 2 and [len(t) for t in towers(net)] == [6, 6]
    old = torch.load(train_condinst([frames], [boxes], [classes], tmp_path / "o", method="stcseg",
                                    categories=CATEGORIES, pseudo_paths=[pseudo], **TINY,
                                    **{**SCHEDULE, "iterations": 1}), weights_only=True)
    del old["head_convs"]  # a model.pt written before the option loads with the papers' 4
    torch.save(old, tmp_path / "old.pt")
    assert [len(t) for t in towers(load_condinst(tmp_path / "old.pt")[0])] == [12, 12]


def test_fpn_channels_set_the_width_of_p3_p7_and_the_towers(clip, tmp_path):
    """fpn_channels 64: P3..P7, both FCOS towers and the mask branch's input are 64 wide; stored in model.pt."""
    net = build_condinst(3, fpn_channels=64, **TINY)
    assert net.fcos.backbone.out_channels == 64 and net.mask_branch[0].in_channels == 64
    towers = [net.fcos.head.classification_head.conv, net.fcos.head.regression_head.conv]
    assert {m.out_channels for t in towers for m in t if isinstance(m, torch.nn.Conv2d)} == {64}
    levels, _ = net._backbone(torch.rand(1, 3, 64, 96))
    assert len(levels) == 5 and {lv.shape[1] for lv in levels} == {64}
    with pytest.raises(ValueError, match="resnet50"):
        build_condinst(3, backbone="resnet50", fpn_channels=128)
    frames, boxes, classes, _, pseudo = clip
    model = train_condinst([frames], [boxes], [classes], tmp_path / "m", method="stcseg", categories=CATEGORIES,
                           pseudo_paths=[pseudo], fpn_channels=64, **TINY, **{**SCHEDULE, "iterations": 1})
    loaded, meta = load_condinst(model)
    assert meta["fpn_channels"] == 64 and loaded.fcos.backbone.out_channels == 64


def test_mask_stride_4_runs_the_dynamic_head_on_the_stride_4_grid(clip, tmp_path):
    torch.manual_seed(0)
    image = [torch.rand(3, 54, 96)]
    for stride in (8, 4):
        model = build_condinst(3, mask_stride=stride, mask_channels=4, branch_channels=16, **TINY)
        image_list, _, det, mask = model.encode(image)
        padded = image_list.tensors.shape[-2:]  # 64 x 96: a multiple of 32
        assert tuple(mask.shape[-2:]) == (padded[0] // stride, padded[1] // stride)
        assert det[0].shape[-2:] == (padded[0] // 8, padded[1] // 8)  # FCOS still sees P3..P7
        assert len(det) == 5
    # An untrained refinement passes the stride-8 features through, upsampled (its last conv starts at 0).
    refine = MaskRefine(4, 24)
    mask8, c2 = torch.randn(2, 4, 5, 7), torch.randn(2, 24, 10, 14)
    expected = F.interpolate(mask8, size=(10, 14), mode="bilinear", align_corners=False)
    assert torch.equal(refine(mask8, c2), expected)
    with pytest.raises(ValueError, match="mask_stride"):
        build_condinst(3, mask_stride=2, **TINY)
    frames, boxes, classes, flows, pseudo = clip
    for method in ("stcseg", "boxinst_flow"):
        out = train_condinst([frames], [boxes], [classes], tmp_path / method, method=method, categories=CATEGORIES,
                             pseudo_paths=[pseudo], flow_paths=[flows], mask_stride=4, **TINY,
                             **{**SCHEDULE, "iterations": 1})
        net, meta = load_condinst(out)  # the stride is stored with the weights and rebuilt
        assert meta["mask_stride"] == 4 and net.mask_refine is not None
    old = torch.load(out, weights_only=True)
    assert old["model"].keys() >= {"mask_refine.lateral.0.weight", "mask_branch.0.weight"}
    old = torch.load(train_condinst([frames], [boxes], [classes], tmp_path / "o", method="stcseg",
                                    categories=CATEGORIES, pseudo_paths=[pseudo], **TINY,
                                    **{**SCHEDULE, "iterations": 1}), weights_only=True)
    del old["mask_stride"]  # a model.pt written before the option loads with CondInst's stride 8
    torch.save(old, tmp_path / "old.pt")
    assert load_condinst(tmp_path / "old.pt")[0].mask_stride == 8


def test_no_weight_decay_on_norm_layers():
    model = build_condinst(3, **TINY)  # weights none: trainable BatchNorm in the backbone, GroupNorm in the head
    decay, no_decay = param_groups(model, 1e-4)
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) > 0
    ids = {id(p) for p in no_decay["params"]}
    gn = model.fcos.head.regression_head.conv[1]
    assert id(gn.weight) in ids and id(model.mask_branch[0].weight) not in ids


def test_training_resumes_to_identical_weights(clip, tmp_path):
    frames, boxes, classes, flow, pseudo = clip
    method = "boxinst_flow"  # the two-stream model: flow images, flips and the pairwise warm-up all resume
    kw = dict(method=method, categories=CATEGORIES, pseudo_paths=[pseudo], flow_paths=[flow], **TINY, **SCHEDULE)
    full = train_condinst([frames], [boxes], [classes], tmp_path / "full", **kw)
    train_condinst([frames], [boxes], [classes], tmp_path / "part", max_iterations=1, **kw)
    resumed = train_condinst([frames], [boxes], [classes], tmp_path / "part", **kw)
    a, b = torch.load(full, weights_only=True), torch.load(resumed, weights_only=True)
    assert a["method"] == method and a["categories"] == CATEGORIES
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    rows = list(csv.DictReader(open(tmp_path / "part" / "train_log.csv")))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    assert {"loss_projection", "loss_pairwise", "loss_classification"} <= set(rows[0])


def test_two_runs_give_identical_weights(clip, tmp_path):
    """Same seed, two uninterrupted runs: bit-identical weights, every forward in deterministic mode."""
    frames, boxes, classes, flow, _ = clip
    kw = dict(method="boxinst_flow", categories=CATEGORIES, flow_paths=[flow], **TINY,
              **{**SCHEDULE, "iterations": 2, "batch_size": 2, "clip_grad_norm": 1.0})
    assert_two_runs_identical(lambda d: train_condinst([frames], [boxes], [classes], tmp_path / d, **kw))


def test_multi_scale_training_resizes_frames_flows_and_targets_together(clip, tmp_path, monkeypatch):
    """scales (0.5, 1.0): each iteration one size for its frames and flow images, the boxes and the
    pairwise terms on that grid; prediction at min_size; a resumed run ends where an uninterrupted one does."""
    import wsvis.boxsup.train as bt

    frames, boxes, classes, flow, _ = clip
    seen, losses = [], bt.box_mask_losses

    def spy(method, masks, images, **kw):
        size = tuple(masks["image_list"].image_sizes[0])
        seen.append(size)
        scale = size[0] / 54
        for t in masks["targets"]:  # the boxes were resized with the frames (torchvision's transform)
            assert float(t["boxes"][:, 2:].max()) <= 96 * scale + 1e-3
        if kw.get("flows") is not None:
            assert len(kw["flows"]) == len(images)
        return losses(method, masks, images, **kw)

    monkeypatch.setattr(bt, "box_mask_losses", spy)
    kw = dict(method="boxinst_flow", categories=CATEGORIES, flow_paths=[flow], **TINY,
              **{**SCHEDULE, "iterations": 6, "scales": (0.5, 1.0)})
    full = train_condinst([frames], [boxes], [classes], tmp_path / "full", **kw)
    assert set(seen) == {(27, 48), (54, 96)}  # both factors drawn, frames and flows alike (else encode raises)
    model, meta = load_condinst(full)
    assert (meta["min_size"], meta["max_size"]) == (54, 96)
    assert model.fcos.transform.min_size == (54,) and model.fcos.transform.max_size == 96
    train_condinst([frames], [boxes], [classes], tmp_path / "part", max_iterations=2, **kw)
    resumed = train_condinst([frames], [boxes], [classes], tmp_path / "part", **kw)
    a, b = torch.load(full, weights_only=True), torch.load(resumed, weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    # Drawing a factor leaves the frames and flips drawn as before: factors all 1.0 give one size's weights.
    one = dict(kw, scales=(1.0,), iterations=2)
    a = torch.load(train_condinst([frames], [boxes], [classes], tmp_path / "one", **one), weights_only=True)
    b = torch.load(train_condinst([frames], [boxes], [classes], tmp_path / "ones", **dict(one, scales=(1.0, 1.0))),
                   weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    seen.clear()  # one factor other than 1 trains every iteration at that size
    train_condinst([frames], [boxes], [classes], tmp_path / "half", **dict(kw, scales=(0.5,), iterations=2))
    assert set(seen) == {(27, 48)}
    # The checkpoint stamp names scales only when they are not the one size runs had before the key.
    stamps = {d: json.loads((tmp_path / d / "checkpoints" / "config.json").read_text())["config"]
              for d in ("one", "half")}
    assert "scales" not in stamps["one"] and stamps["half"]["scales"] == [0.5]
    for bad in ((), (0.8, 0.0)):
        with pytest.raises(ValueError, match="scales"):
            train_condinst([frames], [boxes], [classes], tmp_path / "bad", **dict(kw, scales=bad))


def test_stcseg_trains_on_stc_pseudo_labels(clip, tmp_path):
    frames, boxes, classes, flow, pseudo = clip
    train_condinst([frames], [boxes], [classes], tmp_path / "s", method="stcseg", categories=CATEGORIES,
                   pseudo_paths=[pseudo], **TINY, **{**SCHEDULE, "iterations": 1})
    row = next(csv.DictReader(open(tmp_path / "s" / "train_log.csv")))
    assert float(row["loss_boundary"]) > 0 and float(row["loss_box"]) > 0
    with pytest.raises(ValueError, match="stcseg needs"):
        train_condinst([frames], [boxes], [classes], tmp_path / "t", method="stcseg", categories=CATEGORIES,
                       **TINY, **SCHEDULE)


def test_predictions_have_the_contract(clip, tmp_path):
    frames, boxes, classes, flow, _ = clip
    model = train_condinst([frames], [boxes], [classes], tmp_path / "m", method="boxinst_flow", categories=CATEGORIES,
                           flow_paths=[flow], **TINY, **{**SCHEDULE, "iterations": 1})
    net, meta = load_condinst(model)
    assert net.two_stream and meta["method"] == "boxinst_flow"
    out = predict_video_condinst(frames, model, tmp_path / "pred.zarr", method="boxinst_flow", flow_path=flow,
                                 score_threshold=0.0, max_detections=3, device="cpu", progress=False)
    group, attrs = read_predictions(out)
    t, (w, h) = len(frames), SIZE
    assert group["masks"].shape == (t, 3, h, w) and group["masks"].dtype == bool
    assert group["scores"].shape == (t, 3) and group["scores"].dtype == np.float32
    assert group["labels"].shape == (t, 3) and group["labels"].dtype == np.int32
    assert group["boxes"].shape == (t, 3, 4) and group["boxes"].dtype == np.float32
    labels = np.asarray(group["labels"][:])
    assert labels.max() <= len(CATEGORIES) and (labels[labels > 0] >= 1).all()
    assert attrs["categories"] == CATEGORIES and attrs["method"] == "boxinst_flow"
    with pytest.raises(ValueError, match="needs the video's flow"):
        predict_video_condinst(frames, model, tmp_path / "p2.zarr", method="x", device="cpu", progress=False)
    # mask_in_box: the same detections, each mask cut to its box (pixel centres inside it).
    cut = predict_video_condinst(frames, model, tmp_path / "cut.zarr", method="boxinst_flow", flow_path=flow,
                                 score_threshold=0.0, max_detections=3, mask_in_box=True, device="cpu",
                                 progress=False)
    cut_group, cut_attrs = read_predictions(cut)
    assert cut_attrs["mask_in_box"] is True
    np.testing.assert_array_equal(cut_group["boxes"][:], group["boxes"][:])
    full, masks = np.asarray(group["masks"][:]), np.asarray(cut_group["masks"][:])
    boxes = np.asarray(group["boxes"][:]).reshape(-1, 4)
    inside = box_masks(boxes, (h, w)).reshape(masks.shape)
    np.testing.assert_array_equal(masks, full & inside)
    # hflip_tta: the mirrored frame with its mirrored flow through the two-stream model, merged; same contract.
    tta = predict_video_condinst(frames, model, tmp_path / "tta.zarr", method="boxinst_flow", flow_path=flow,
                                 score_threshold=0.0, max_detections=3, hflip_tta=True, device="cpu", progress=False)
    tta_group, tta_attrs = read_predictions(tta)
    assert tta_attrs["hflip_tta"] is True and cut_attrs["hflip_tta"] is False
    assert tta_group["masks"].shape == (t, 3, h, w) and (tta_group["labels"][:] > 0).all()


def test_flow_image_range():
    f = np.zeros((5, 6, 2), np.float32)
    f[:, 3:, 0] = 2.0
    img = flow_image(f)
    assert img.shape == (3, 5, 6) and float(img.min()) >= 0 and float(img.max()) <= 1
    assert torch.allclose(img[:, 0, 0], torch.ones(3))  # zero flow is white
