"""STC-Seg pseudo-labels: mini network (Eq. 1), threshold filter (Eq. 2), the stage artifact."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from wsvis.baselines.box import box_masks, box_motion_prior
from wsvis.flow.stage import compute_video_flow
from wsvis.io.pseudo import read_pseudo
from wsvis.io.store import open_artifact
from wsvis.stc import MiniNetwork, contextual_similarity, stc_pseudo_mask
from wsvis.stc.stage import compute_video_stc


def test_similarity_is_one_on_constant_input():
    for c in (1, 2):
        s = MiniNetwork(c)(torch.full((1, c, 32, 40), 3.7))
        assert s.shape == (1, 1, 32, 40)
        assert torch.allclose(s, torch.ones_like(s))


def test_similarity_drops_across_a_step_edge():
    x = torch.zeros(64, 64, 2)
    x[:, 32:] = 4.0  # flow jumps by 4 px in each component at column 32
    s = contextual_similarity(x)
    assert s[:, 0].min() > 0.999 and s[:, -1].min() > 0.999  # far from the edge: uniform
    assert s[:, 30:34].max() < 0.7  # at the edge: neighbours differ by 4*sqrt(2) -> delta ~ 0.06
    # one neighbour offset: exp(-r * ||d||) with r = 0.5
    assert np.isclose(np.exp(-0.5 * 4 * np.sqrt(2)), 0.0591, atol=1e-3)


def test_mini_network_weights_are_fixed_zero_one():
    net = MiniNetwork(2, layers=3, dilation=2)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3 and all(c.dilation == (2, 2) and c.padding == (2, 2) for c in convs)
    for c in convs:
        assert set(c.weight.unique().tolist()) == {0.0, 1.0} and not c.weight.requires_grad


def test_threshold_filter_on_hand_built_maps():
    s_s = torch.tensor([[0.2, 0.35, 0.9], [0.31, 0.1, 0.5]])
    s_t = torch.tensor([[0.9, 0.45, 0.39], [0.41, 0.9, 0.4]])
    m = stc_pseudo_mask(s_s, s_t, phi_s=0.3, phi_t=0.4)
    assert m.tolist() == [[False, True, False], [True, False, False]]
    assert stc_pseudo_mask(None, s_t).tolist() == [[True, True, False], [True, True, False]]  # flow only
    assert stc_pseudo_mask(s_s, None).tolist() == [[False, True, True], [True, False, True]]  # depth only
    with pytest.raises(ValueError):
        stc_pseudo_mask(None, None)


def test_box_masks_follow_manifest_convention():
    m = box_masks(np.array([[1, 0, 3, 2]]), (3, 4))
    assert m[0].astype(int).tolist() == [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]


def test_stage_writes_instances_inside_boxes(tmp_path, caplog):
    h, w, n = 40, 48, 3
    frames = []
    import cv2

    rng = np.random.default_rng(0)
    for t in range(n):
        img = np.full((h, w, 3), 90, np.uint8) + rng.integers(0, 5, (h, w, 3), dtype=np.uint8)
        img[10:30, 8 + 2 * t:28 + 2 * t] = 220
        p = tmp_path / f"{t:05d}.png"
        cv2.imwrite(str(p), img)
        frames.append(str(p))
    flow = tmp_path / "flow.zarr"
    compute_video_flow(frames, flow, backend="dis", gaps=[1], progress=False)
    boxes = [[[4.0, 6.0, 34.0, 34.0]]] * n
    out = tmp_path / "stc.zarr"
    with caplog.at_level(logging.WARNING):
        compute_video_stc(boxes, [["car"]] * n, (h, w), flow, None, out, categories=["bird", "car"], signals="both")
    assert "no depth backend" in caplog.text and "flow only" in caplog.text
    instances, classes, scores, attrs = read_pseudo(out)
    assert instances.shape == (n, h, w) and attrs["signals_used"] == "flow"
    fg = open_artifact(out, "pseudo")["foreground"]
    inside = box_masks(np.array(boxes[0]), (h, w))[0]
    for t in range(n):
        lab = np.asarray(instances[t])
        assert not lab[~inside].any()
        assert ((lab > 0) == (np.asarray(fg[t]) & inside)).all()
    assert set(classes[1:].tolist()) == {2}
    with pytest.raises(ValueError, match="not in the categories"):
        compute_video_stc(boxes, [["cow"]] * n, (h, w), flow, None, tmp_path / "x.zarr", categories=["car"])


def test_box_motion_prior_marks_what_moves_against_the_surroundings():
    flow = np.zeros((60, 80, 2), np.float32)
    flow[..., 0] = 3.0  # the camera pans
    flow[20:40, 30:50] = [-2.0, 1.0]  # the object moves against it
    prior = box_motion_prior(flow, np.array([25.0, 15.0, 55.0, 45.0]))
    obj = np.zeros((60, 80), bool)
    obj[20:40, 30:50] = True
    assert (prior == obj).all()
    assert box_motion_prior(flow, np.array([0.0, 0.0, 80.0, 60.0])) is None  # no surroundings


def test_box_motion_prior_ring_quantile_keeps_background_whose_motion_varies_out():
    """Background flow growing linearly with the row (parallax: 0 px at the top, 6 px at the bottom)
    and an object moving 12 px against it. The ring (rows 0-59) has median ~3 px, so the box's
    background rows 10-19 and 40-49 differ from it by 1-2 px and pass the 1 px threshold; the ring's
    rows 0-9 and 50-59 differ by 2-3 px, so its 90th percentile (~2.5 px) keeps them out."""
    h, w = 60, 80
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = np.linspace(0.0, 6.0, h)[:, None]
    flow[25:35, 35:45] = [-12.0, 0.0]
    box = np.array([20.0, 10.0, 60.0, 50.0])
    obj = np.zeros((h, w), bool)
    obj[25:35, 35:45] = True
    inside = box_masks(box[None], (h, w))[0]
    plain = box_motion_prior(flow, box)
    assert (plain & inside & ~obj).sum() > 0.3 * (inside & ~obj).sum()  # a third of the background enters
    tight = box_motion_prior(flow, box, quantile=90.0)
    assert (tight[obj]).all()
    assert not (tight & inside & ~obj).any()
    assert (box_motion_prior(flow, box, quantile=0.0) == plain).all()  # threshold never lowered below 1 px


def test_grabcut_flow_refinement_beats_m_inside_the_box(tmp_path):
    """A disc moving over a textured background of the same mean colour: the paper's M ∩ box marks
    smooth-flow pixels (object and background alike); GrabCut from the motion prior finds the disc."""
    import cv2

    from wsvis.evaluate.pseudo import region_similarity

    h, w, n = 72, 96, 3
    rng = np.random.default_rng(1)
    background = rng.integers(0, 255, (h, w, 3)).astype(np.uint8)
    background = cv2.GaussianBlur(background, (5, 5), 0)
    yy, xx = np.mgrid[0:h, 0:w]
    frames, discs, boxes = [], [], []
    for t in range(n):
        disc = (yy - 36) ** 2 + (xx - (40 + 3 * t)) ** 2 < 15**2
        img = background.copy()
        img[disc] = [200, 60, 40]
        p = tmp_path / f"{t:05d}.png"
        cv2.imwrite(str(p), img[..., ::-1])
        frames.append(str(p))
        discs.append(disc)
        boxes.append([[40.0 + 3 * t - 20, 16.0, 40.0 + 3 * t + 20, 56.0]])
    flow = tmp_path / "flow.zarr"
    compute_video_flow(frames, flow, backend="dis", gaps=[1], progress=False)
    paper, ours = tmp_path / "paper.zarr", tmp_path / "ours.zarr"
    compute_video_stc(boxes, [["car"]] * n, (h, w), flow, None, paper, categories=["car"], signals="flow")
    compute_video_stc(boxes, [["car"]] * n, (h, w), flow, None, ours, categories=["car"], signals="flow",
                      refine="grabcut_flow", images=frames)
    j_paper = np.mean([region_similarity(np.asarray(read_pseudo(paper)[0][t]) > 0, discs[t]) for t in range(n)])
    j_ours = np.mean([region_similarity(np.asarray(read_pseudo(ours)[0][t]) > 0, discs[t]) for t in range(n)])
    assert j_ours > 0.85 and j_ours > j_paper + 0.1
    # The same cut on the frames at 2x (refine_resolution: source), written back at (h, w).
    sources = []
    for t, f in enumerate(frames):
        p = tmp_path / f"src{t:05d}.png"
        cv2.imwrite(str(p), cv2.resize(cv2.imread(f), (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST))
        sources.append(str(p))
    big = tmp_path / "source.zarr"
    compute_video_stc(boxes, [["car"]] * n, (h, w), flow, None, big, categories=["car"], signals="flow",
                      refine="grabcut_flow", images=frames, refine_resolution="source", source_images=sources)
    labels = read_pseudo(big)[0]
    assert labels.shape == (n, h, w)
    assert np.mean([region_similarity(np.asarray(labels[t]) > 0, discs[t]) for t in range(n)]) > 0.85
    with pytest.raises(ValueError, match="stc.refine_resolution"):
        compute_video_stc(boxes, [["car"]] * n, (h, w), flow, None, tmp_path / "y.zarr", categories=["car"],
                          signals="flow", refine="grabcut_flow", images=frames, refine_resolution="source")
    group = open_artifact(ours, "pseudo")
    assert (np.asarray(group["foreground"][0]) == (np.asarray(read_pseudo(ours)[0][0]) > 0)).all()
    assert "foreground_stc" in group and "foreground_stc" not in open_artifact(paper, "pseudo")
    with pytest.raises(ValueError, match="needs the video's frames"):
        compute_video_stc(boxes, [["car"]] * n, (h, w), flow, None, tmp_path / "x.zarr", categories=["car"],
                          refine="grabcut_flow")


def test_grabcut_flow_falls_back_to_the_box_cut_when_the_prior_cut_keeps_nothing(tmp_path, monkeypatch):
    """A motion prior too small for GrabCut's colour model can leave an empty cut; the instance is then
    GrabCut from the box alone (what the `grabcut` baseline gives), not the filled box."""
    import cv2

    import wsvis.stc.stage as stc_stage

    h, w, n = 72, 96, 2
    rng = np.random.default_rng(2)
    background = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3)).astype(np.uint8), (5, 5), 0)
    yy, xx = np.mgrid[0:h, 0:w]
    disc = (yy - 36) ** 2 + (xx - 48) ** 2 < 14**2
    frames = []
    for t in range(n):
        img = background.copy()
        img[disc] = [200, 60, 40]
        p = tmp_path / f"{t:05d}.png"
        cv2.imwrite(str(p), img[..., ::-1])
        frames.append(str(p))
    flow = tmp_path / "flow.zarr"
    compute_video_flow(frames, flow, backend="dis", gaps=[1], progress=False)
    real = stc_stage.grabcut_mask
    calls = []

    def empty_prior_cut(image, box, *, prior=None, fallback=None, **kw):
        calls.append(prior is not None)
        return np.zeros(image.shape[:2], bool) if prior is not None else real(image, box, fallback=fallback, **kw)

    monkeypatch.setattr(stc_stage, "grabcut_mask", empty_prior_cut)
    box = [28.0, 16.0, 68.0, 56.0]
    out = tmp_path / "stc.zarr"
    compute_video_stc([[box]] * n, [["car"]] * n, (h, w), flow, None, out, categories=["car"], signals="flow",
                      refine="grabcut_flow", images=frames)
    labels = np.asarray(read_pseudo(out)[0][0]) > 0
    expected = real(np.asarray(cv2.imread(frames[0])[..., ::-1]), np.array(box))
    assert calls[:2] == [True, False]  # the prior's cut, then the box's
    assert (labels == expected).all() and 0 < labels.sum() < box_masks(np.array([box]), (h, w))[0].sum()
