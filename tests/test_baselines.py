"""Baselines with no learning (wsvis.baselines): motion, box, grabcut on hand-built frames."""

import numpy as np
import pandas as pd
import pytest

from wsvis.baselines import compute_video_baseline
from wsvis.baselines.box import box_instances, cut_source, grabcut_instances, grabcut_mask, grabcut_refine
from wsvis.baselines.motion import camera_flow, motion_foreground, motion_instances, moving_region_masks
from wsvis.evaluate.pseudo import region_similarity
from wsvis.flow.stage import compute_video_flow
from wsvis.io.pseudo import read_pseudo

H, W = 96, 128


def _camera(h=H, w=W):
    """Flow of a panning, slightly zooming camera: a homography (8 % zoom about the centre, pan (3, -2))."""
    py, px = np.mgrid[0:h, 0:w].astype(np.float32)
    zoom, cx, cy = 1.08, w / 2, h / 2
    return np.stack([(px - cx) * (zoom - 1) + 3.0, (py - cy) * (zoom - 1) - 2.0], axis=-1).astype(np.float32)


def _square():
    m = np.zeros((H, W), bool)
    m[30:62, 40:80] = True
    return m


def test_camera_flow_recovers_a_homography():
    flow = _camera()
    np.testing.assert_allclose(camera_flow(flow, "homography"), flow, atol=1e-3)
    np.testing.assert_allclose(camera_flow(flow, "affine"), flow, atol=1e-3)  # zoom + pan is affine too
    assert np.all(camera_flow(flow, "none") == 0)
    with pytest.raises(ValueError, match="compensation"):
        camera_flow(flow, "rigid")


def test_motion_recovers_the_square_on_a_panning_zooming_background():
    flow = _camera()
    square = _square()
    flow[square] = [-4.0, 3.0]  # the object moves against the camera
    masks, classes, scores = motion_instances(flow, [2])
    assert masks.shape == (1, H, W) and classes.tolist() == [2]
    assert region_similarity(masks[0], square) > 0.95
    assert 0 < scores[0] <= 1
    # Without compensation the zoom's edges move more than Otsu's cut: the square is not found alone.
    raw, _, _ = motion_instances(flow, [2], compensation="none")
    assert region_similarity(raw.any(axis=0), square) < 0.8
    # Median compensation removes the pan but not the zoom: worse than the homography.
    med, _, _ = motion_instances(flow, [2], compensation="median")
    assert region_similarity(med.any(axis=0), square) < region_similarity(masks[0], square)


def test_motion_static_scene_and_untagged_frames_give_nothing():
    flow = _camera() * 0
    assert len(motion_instances(flow, [1])[0]) == 0
    assert not motion_foreground(np.full((H, W), 0.4, np.float32), min_magnitude=1.0).any()
    moving = _camera()
    moving[_square()] = [-4.0, 3.0]
    assert len(motion_instances(moving, [])[0]) == 0


def test_motion_several_tags_give_distinct_classes_largest_region_first():
    flow = np.zeros((H, W, 2), np.float32)
    big = np.zeros((H, W), bool)
    big[10:50, 10:60] = True
    small = np.zeros((H, W), bool)
    small[60:80, 90:110] = True
    flow[big] = [5, 0]
    flow[small] = [0, 5]
    masks, classes, _ = motion_instances(flow, [3, 1])
    by_class = {int(c): m for m, c in zip(masks, classes)}
    assert sorted(by_class) == [1, 3]
    assert region_similarity(by_class[1], big) > 0.95  # largest region, first tag in id order
    assert region_similarity(by_class[3], small) > 0.95


def test_moving_region_masks_by_hand():
    """Regions largest first, holes filled (their still pixels count in the mean), small regions dropped."""
    mag = np.zeros((H, W), np.float32)
    mag[10:50, 10:60] = 5.0  # 40 x 50 = 2000 px with a still 4 x 4 hole: mean 5 * 1984 / 2000
    mag[28:32, 33:37] = 0.0
    mag[60:70, 90:100] = 4.0  # 100 px
    mag[80:84, 20:24] = 6.0  # 16 px < min_area 0.002 * 96 * 128 = 24.6 px: dropped
    masks, means = moving_region_masks(mag)
    assert masks.shape == (2, H, W) and masks.dtype == bool
    assert masks[0].sum() == 2000 and masks[0][28:32, 33:37].all()
    assert masks[1].sum() == 100 and masks[1][60:70, 90:100].all()
    np.testing.assert_allclose(means, [5.0 * 1984 / 2000, 4.0], rtol=1e-6)
    assert moving_region_masks(mag, min_area=0.01)[0].shape == (1, H, W)  # 100 px < 122.9 px
    still, none = moving_region_masks(np.full((H, W), 0.9, np.float32))
    assert still.shape == (0, H, W) and none.shape == (0,)


def _disc_frame(seed=0, x=64):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    disc = (yy - 48) ** 2 + (xx - x) ** 2 < 22**2
    img = np.full((H, W, 3), 40, np.int64)
    img[disc] = [220, 190, 30]
    img += rng.integers(-12, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), disc


def test_grabcut_recovers_a_disc_inside_its_box():
    img, disc = _disc_frame()
    box = np.array([34.0, 18.0, 94.0, 78.0])  # the disc's box with a margin
    cut = grabcut_mask(img, box, iterations=5)
    assert region_similarity(cut, disc) > 0.8
    filled = box_instances(box[None], np.array([1]), (H, W))[0][0]
    assert region_similarity(filled, disc) < region_similarity(cut, disc)
    np.testing.assert_array_equal(cut, grabcut_mask(img, box, iterations=5))  # reproducible
    whole = grabcut_mask(img, box, iterations=5, context=None)
    assert region_similarity(whole, disc) > 0.8


def test_grabcut_uncuttable_boxes_stay_filled():
    img, _ = _disc_frame()
    full = grabcut_mask(img, np.array([0.0, 0.0, W, H]))
    assert full.all()
    thin = grabcut_mask(img, np.array([10.0, 10.0, 11.0, 50.0]))
    assert thin.sum() == 40 and thin[10:50, 10].all()
    with pytest.raises(ValueError, match="uint8"):
        grabcut_mask(img.astype(np.float32), np.array([0.0, 0.0, 5.0, 5.0]))


def test_grabcut_that_keeps_nothing_falls_back_to_the_box(monkeypatch):
    import cv2

    def cut_everything(img, mask, rect, bgd, fgd, iterations, mode):
        mask[:] = cv2.GC_BGD

    monkeypatch.setattr(cv2, "grabCut", cut_everything)
    img, _ = _disc_frame()
    cut = grabcut_mask(img, np.array([34.0, 18.0, 94.0, 78.0]))
    assert cut.sum() == 60 * 60 and cut[18:78, 34:94].all()


def test_grabcut_refine_pulls_a_blob_and_a_partial_mask_onto_the_disc(monkeypatch):
    """A walk's blob (the disc plus a halo) and a partial mask (its left 70 %) both re-cut onto the disc."""
    import cv2

    img, disc = _disc_frame()
    yy, xx = np.mgrid[0:H, 0:W]
    ys, xs = np.nonzero(disc)
    cy, cx, r = ys.mean(), xs.mean(), np.sqrt(disc.sum() / np.pi)
    blob = (yy - cy) ** 2 + (xx - cx) ** 2 < (1.4 * r) ** 2
    partial = disc & (xx < xs.min() + 0.7 * (xs.max() - xs.min()))
    empty = np.zeros((H, W), bool)
    out = grabcut_refine(img, np.stack([blob, partial, empty]), margin=0.5)
    assert out.shape == (3, H, W) and out.dtype == bool
    for before, after in zip((blob, partial), out[:2]):
        assert region_similarity(before, disc) < 0.8 < region_similarity(after, disc)
    assert not out[2].any()  # empty stays empty
    # A cut that keeps nothing leaves the mask as it was (not its box).
    monkeypatch.setattr(cv2, "grabCut", lambda img, mask, *a: mask.fill(cv2.GC_BGD))
    np.testing.assert_array_equal(grabcut_refine(img, blob[None])[0], blob)
    with pytest.raises(ValueError, match="margin"):
        grabcut_refine(img, blob[None], margin=-0.1)
    with pytest.raises(ValueError, match="masks"):
        grabcut_refine(img, blob[None, :10])


def test_grabcut_refine_grow_keeps_the_cut_near_its_mask():
    """A bar of the disc's colour beside it: the unbounded cut takes it in, grow=3 keeps only the disc."""
    from scipy import ndimage

    img, disc = _disc_frame()
    bar = np.zeros((H, W), bool)
    bar[30:66, 92:100] = True  # 6 px right of the disc (x 42..86)
    img[bar] = img[disc][: bar.sum()]
    mask = ndimage.binary_erosion(disc, iterations=2)
    free = grabcut_refine(img, mask[None], margin=0.5)[0]
    assert (free & bar).sum() > 0.5 * bar.sum()  # GrabCut alone spreads into the look-alike
    grown = grabcut_refine(img, mask[None], margin=0.5, grow=3)[0]
    assert not (grown & bar).any() and region_similarity(grown, disc) > 0.9
    assert (grown & ~ndimage.binary_dilation(mask, iterations=3)).sum() == 0
    shed = grabcut_refine(img, mask[None], margin=0.5, grow=0)[0]
    assert not (shed & ~mask).any()
    with pytest.raises(ValueError, match="grow"):
        grabcut_refine(img, mask[None], grow=-1)


def _concave_frame(seed=0):
    """An L of dark grey (40) on a lighter ground (60), darker (55) in the L's concavity, which the box-shaped mask
    around the L fills (blackswan: the dark water between the neck and the back)."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W, 3), 60, np.int64)
    obj = np.zeros((H, W), bool)
    obj[24:72, 36:52] = True  # the neck
    obj[56:72, 36:92] = True  # the back
    img[obj] = 40
    hole = np.zeros((H, W), bool)
    hole[24:56, 52:92] = True  # the concavity, inside the L's box
    img[hole] = 55
    img += rng.integers(-6, 7, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), obj, hole


def test_grabcut_refine_with_flow_sheds_the_still_background_its_mask_fills():
    """The L moves 4 px right, its ground is still. GrabCut from the filled box keeps the concavity (the
    foreground colour model starts with it); started from the moving part it keeps the L alone."""
    img, obj, hole = _concave_frame()
    mask = obj | hole
    flow = np.zeros((H, W, 2), np.float32)
    flow[obj] = (4.0, 0.0)
    plain = grabcut_refine(img, mask[None], margin=0.5)[0]
    assert (plain & hole).sum() > 0.9 * hole.sum() and region_similarity(plain, obj) < 0.6
    moved = grabcut_refine(img, mask[None], margin=0.5, flow=flow)[0]
    assert not (moved & hole).any() and region_similarity(moved, obj) > 0.98
    # Too little of the mask moves (a still object; motion_keep above the moving share: the 1408 px L is
    # 0.52 of the 2688 px mask): the cut starts from the whole mask, as without flow.
    np.testing.assert_array_equal(grabcut_refine(img, mask[None], margin=0.5, flow=np.zeros_like(flow))[0], plain)
    np.testing.assert_array_equal(grabcut_refine(img, mask[None], margin=0.5, flow=flow, motion_keep=0.5)[0], moved)
    np.testing.assert_array_equal(grabcut_refine(img, mask[None], margin=0.5, flow=flow, motion_keep=0.6)[0], plain)
    with pytest.raises(ValueError, match="flow must be"):
        grabcut_refine(img, mask[None], flow=flow[:, :10])
    with pytest.raises(ValueError, match="motion_keep"):
        grabcut_refine(img, mask[None], flow=flow, motion_keep=0.0)


def _bled_flow(obj, hole):
    """Gap-1 flows of a two-frame video whose L (``obj``) moves 4 px right over a still ground, as DIS reads
    them: the forward flow carries the L's motion into the still concavity beside it (the sand between
    horsejump-high's legs); the backward flow, from the next frame, holds it on the moved L alone."""
    forward = np.zeros((1, H, W, 2), np.float32)
    forward[0][obj | hole] = (4.0, 0.0)
    backward = np.zeros((1, H, W, 2), np.float32)
    backward[0][np.roll(obj, 4, axis=1)] = (-4.0, 0.0)
    return forward, backward


def test_fb_check_drops_the_flow_bled_into_the_still_concavity():
    """The forward-backward check flags the concavity (4 px out, 0 back: |F + B~|^2 = 16 > 0.01 * 16 + 0.5), not
    the L (4 out, -4 back). Without it the whole mask moves and the cut keeps the concavity, as GrabCut from the
    mask does; with it (``unreliable``) the cut starts from the L and keeps the L alone."""
    from wsvis.flow.stage import frame_flow_unreliable

    img, obj, hole = _concave_frame()
    forward, backward = _bled_flow(obj, hole)
    unreliable = frame_flow_unreliable(forward, backward, 0, 2)
    assert unreliable[hole].all() and not unreliable[obj].any()
    # The last frame is checked on its own grid (its flow back against the flow forward to it): the moved L
    # agrees (-4 back, 4 out), the concavity's pixels that the L did not move onto do not (0 back, 4 out).
    last = frame_flow_unreliable(forward, backward, 1, 2)
    moved = np.roll(obj, 4, axis=1)
    assert not last[moved].any() and last[hole & ~moved].all()
    assert frame_flow_unreliable(forward[:0], backward[:0], 0, 1) is None
    mask = obj | hole
    plain = grabcut_refine(img, mask[None], margin=0.5)[0]
    assert (plain & hole).sum() > 0.9 * hole.sum()
    np.testing.assert_array_equal(grabcut_refine(img, mask[None], margin=0.5, flow=forward[0])[0], plain)
    checked = grabcut_refine(img, mask[None], margin=0.5, flow=forward[0], unreliable=unreliable)[0]
    assert not (checked & hole).any() and region_similarity(checked, obj) > 0.98
    with pytest.raises(ValueError, match="unreliable must be"):
        grabcut_refine(img, mask[None], flow=forward[0], unreliable=unreliable[:10])
    with pytest.raises(ValueError, match="without flow"):
        grabcut_refine(img, mask[None], unreliable=unreliable)


def _collapse_frame():
    """A white shirt over a red bike in front of a red ground (bmx-trees' rider against graffiti)."""
    rng = np.random.default_rng(0)
    img = np.full((H, W, 3), (200, 40, 40), np.int64)
    img[:, :20] = (40, 160, 40)
    shirt = np.zeros((H, W), bool)
    shirt[24:44, 52:76] = True
    bike = np.zeros((H, W), bool)
    bike[44:76, 44:84] = True
    img[shirt] = 235
    img[bike] = (190, 50, 45)
    return np.clip(img + rng.integers(-10, 11, img.shape), 0, 255).astype(np.uint8), shirt, bike


def test_grabcut_refine_min_keep_rejects_a_cut_that_collapses_onto_one_colour():
    """GrabCut keeps the shirt alone (480 of the mask's 1760 px, 0.27); min_keep above that keeps the mask,
    below it the cut."""
    img, shirt, bike = _collapse_frame()
    mask = shirt | bike
    cut = grabcut_refine(img, mask[None], grow=2)[0]
    np.testing.assert_array_equal(cut, shirt)  # the collapse (min_keep 0: kept, it is not empty)
    np.testing.assert_array_equal(grabcut_refine(img, mask[None], grow=2, min_keep=0.5)[0], mask)
    np.testing.assert_array_equal(grabcut_refine(img, mask[None], grow=2, min_keep=0.25)[0], shirt)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="min_keep"):
            grabcut_refine(img, mask[None], min_keep=bad)


def test_grabcut_at_source_resolution_scales_box_and_prior_and_comes_back_by_area(monkeypatch, tmp_path):
    """``source``: the cut runs on the larger frame with the box and prior scaled; its result is
    area-averaged back (a source pixel block counts where at least half of it is foreground)."""
    import cv2

    img, disc = _disc_frame()
    source = np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)  # the same frame at 2x
    box = np.array([34.0, 18.0, 94.0, 78.0])
    cut = grabcut_mask(img, box, iterations=5, source=source)
    assert cut.shape == (H, W) and not cut[:, :34].any() and not cut[:18].any()  # inside the box
    assert region_similarity(cut, disc) > 0.8
    assert region_similarity(cut, grabcut_mask(img, box, iterations=5)) > 0.9  # a 2x copy holds nothing new

    seen = {}

    def left_half(crop, mask, rect, bgd, fgd, iterations, mode):
        # What the cut receives: the 2x crop (context 0.5 of the 2x box) and the prior at 2x.
        seen.update(shape=crop.shape[:2], rect=rect, fg=int((mask == cv2.GC_PR_FGD).sum()), mode=mode)
        x, y, bw, bh = rect
        mask[:] = cv2.GC_BGD
        mask[y : y + bh, x : x + bw // 2 + 1] = cv2.GC_FGD  # one source column past the half: 1/2 of a block
    monkeypatch.setattr(cv2, "grabCut", left_half)
    prior = np.zeros((H, W), bool)
    prior[40:50, 50:60] = True
    out = grabcut_mask(img, box, prior=prior, source=source)
    assert seen["rect"] == (60, 36, 120, 120) and seen["shape"] == (192, 240)  # clipped at the top
    assert seen["fg"] == 4 * prior.sum() and seen["mode"] == cv2.GC_INIT_WITH_MASK
    expected = np.zeros((H, W), bool)
    expected[18:78, 34:65] = True  # 60 + 1 source columns -> 30 full blocks + one half block (kept: >= 0.5)
    np.testing.assert_array_equal(out, expected)
    # A cut that keeps nothing at the source gives the fallback at the processing size.
    monkeypatch.setattr(cv2, "grabCut", lambda crop, mask, *a: mask.fill(cv2.GC_BGD))
    np.testing.assert_array_equal(grabcut_mask(img, box, source=source, fallback=prior), prior)
    with pytest.raises(ValueError, match="source must be"):
        grabcut_mask(img, box, source=source[..., 0])


def test_cut_source_reads_the_source_frame_or_names_the_key(tmp_path):
    import cv2

    img, _ = _disc_frame()
    path = tmp_path / "src.png"
    cv2.imwrite(str(path), img[..., ::-1])
    assert cut_source("process", str(path), key="stc.refine_resolution") is None
    np.testing.assert_array_equal(cut_source("source", str(path), key="stc.refine_resolution"), img)
    with pytest.raises(ValueError, match="stc.refine_resolution.*source_image"):
        cut_source("source", None, key="stc.refine_resolution")
    with pytest.raises(ValueError, match="baselines.grabcut.resolution must be one of"):
        cut_source("full", str(path), key="baselines.grabcut.resolution")


def test_box_instances_fill_boxes_largest_first():
    boxes = np.array([[2.0, 2.0, 4.0, 5.0], [0.0, 0.0, 8.0, 8.0]])
    masks, classes, scores = box_instances(boxes, np.array([1, 2]), (10, 10))
    assert classes.tolist() == [2, 1] and scores.tolist() == [1.0, 1.0]
    assert masks[0].sum() == 64 and masks[1].sum() == 6 and masks[1][2:5, 2:4].all()
    m, c, _ = grabcut_instances(np.zeros((10, 10, 3), np.uint8), boxes, np.array([1, 2]))
    assert c.tolist() == [2, 1] and m.shape == (2, 10, 10)


def _table(tmp_path, frames, boxes, tags):
    import cv2

    rows = []
    for t, img in enumerate(frames):
        path = tmp_path / f"{t:05d}.png"
        cv2.imwrite(str(path), img[..., ::-1])
        rows.append(
            {"video": "v", "frame": t, "image": str(path), "width": W, "height": H, "tags": tags,
             "box_classes": ["b"] * len(boxes[t]), "boxes": boxes[t]}
        )
    return pd.DataFrame(rows)


def test_stage_writes_each_baseline_as_a_pseudo_label_artifact(tmp_path):
    img, disc = _disc_frame()
    moved, _ = _disc_frame(x=70)  # same background, the disc 6 px to the right
    box = [34.0, 18.0, 94.0, 78.0]
    table = _table(tmp_path, [img, moved], [[box], [[40.0, 18.0, 100.0, 78.0]]], ["b"])
    flow_path = tmp_path / "flow.zarr"
    compute_video_flow(table["image"].tolist(), flow_path, backend="dis", gaps=[1])
    for name, options in [("box", {}), ("grabcut", {"iterations": 3}), ("motion", {})]:
        out = tmp_path / f"{name}.zarr"
        compute_video_baseline(name, table, out, categories=["a", "b"], flow_path=flow_path,
                               params={"x": 1}, **options)
        instances, classes, _, attrs = read_pseudo(out)
        assert instances.shape == (2, H, W) and attrs["variant"] == name
        assert set(classes[1:].tolist()) == {2}
    inst, _, _, _ = read_pseudo(tmp_path / "grabcut.zarr")
    assert region_similarity(inst[0] > 0, disc) > 0.8
    moving, _, _, _ = read_pseudo(tmp_path / "motion.zarr")
    # DIS smears the disc's 6 px motion over its surroundings (flat background): measured J 0.60.
    assert region_similarity(moving[0] > 0, disc) > 0.5
    with pytest.raises(ValueError, match="flow artifact"):
        compute_video_baseline("motion", table, tmp_path / "m2.zarr", categories=["a", "b"])
    with pytest.raises(ValueError, match="not in the categories"):
        compute_video_baseline("box", table, tmp_path / "b2.zarr", categories=["a"])
    with pytest.raises(ValueError, match="unknown baseline"):
        compute_video_baseline("snake", table, tmp_path / "s.zarr", categories=["a", "b"])


def test_prediction_refine_recuts_confident_masks_only(tmp_path):
    """segment.predict.refine: a coarse blob around the disc becomes the disc; a low score keeps its mask."""
    import cv2
    import torch

    from wsvis.io.predictions import frame_predictions, read_predictions
    from wsvis.maskconsist.predict import write_video_predictions

    img, disc = _disc_frame()
    path = tmp_path / "00000.png"
    cv2.imwrite(str(path), img[..., ::-1])
    yy, xx = np.mgrid[0:H, 0:W]
    blob = (yy - 48) ** 2 + (xx - 64) ** 2 < 31**2  # a 28x28 mask pasted up: the disc plus a halo

    def detect(t, image):
        return {"masks": torch.from_numpy(np.stack([blob, blob])).float(), "scores": torch.tensor([0.9, 0.3]),
                "labels": torch.tensor([1, 1]), "boxes": torch.tensor([[33.0, 17.0, 95.0, 79.0]] * 2)}

    def run(refine, grow=None):
        out = write_video_predictions([path], tmp_path / f"{refine}{grow}.zarr", detect, method="m",
                                      categories=["a"], max_detections=2, refine=refine, refine_grow=grow,
                                      progress=False)
        group, attrs = read_predictions(out)
        assert attrs["refine"] == refine and attrs["refine_grow"] == grow
        return frame_predictions(group, 0)[0]

    plain, refined = run("none"), run("grabcut")
    assert region_similarity(plain[0], disc) < 0.6
    assert region_similarity(refined[0], disc) > 0.8
    np.testing.assert_array_equal(refined[1], blob)  # score 0.3 < refine_score 0.5: not re-cut
    shed = run("grabcut", grow=0)[0]  # the cut may only shed: still the disc, nothing outside the blob
    assert region_similarity(shed, disc) > 0.8 and not (shed & ~blob).any()
    with pytest.raises(ValueError, match="segment.predict.refine"):
        run("crf")


def test_prediction_refine_grabcut_flow_reads_the_flow_and_sheds_the_concavity(tmp_path):
    """segment.predict.refine: grabcut_flow, on a two-frame video whose L moves 4 px right over a still ground."""
    import cv2
    import torch

    from wsvis.io.predictions import frame_predictions, read_predictions
    from wsvis.io.store import ArtifactWriter
    from wsvis.maskconsist.predict import write_video_predictions

    img, obj, hole = _concave_frame()
    paths = [str(tmp_path / f"{t:05d}.png") for t in range(2)]
    for p in paths:
        cv2.imwrite(p, img[..., ::-1])
    forward = np.zeros((1, H, W, 2), np.float16)
    forward[0][obj] = (4.0, 0.0)
    flow_attrs = {"gaps": [1], "num_frames": 2}
    with ArtifactWriter(tmp_path / "flow.zarr", stage="flow", frame_size=(H, W), attrs=flow_attrs) as wr:
        wr.write_array("gap_1/forward", forward)
        wr.write_array("gap_1/backward", -forward)

    def detect(t, image):
        return {"masks": torch.from_numpy((obj | hole)[None]).float(), "scores": torch.tensor([0.9]),
                "labels": torch.tensor([1]), "boxes": torch.tensor([[36.0, 24.0, 92.0, 72.0]])}

    def run(refine, **kw):
        out = write_video_predictions(paths, tmp_path / f"{refine}.zarr", detect, method="m", categories=["a"],
                                      max_detections=1, refine=refine, refine_margin=0.5, progress=False, **kw)
        group, attrs = read_predictions(out)
        return [frame_predictions(group, t)[0][0] for t in range(2)], attrs

    plain, _ = run("grabcut")
    moved, attrs = run("grabcut_flow", flow_path=str(tmp_path / "flow.zarr"))
    assert attrs["refine"] == "grabcut_flow" and attrs["refine_ring_quantile"] is None
    assert attrs["refine_motion_keep"] == 0.5 and attrs["refine_min_keep"] == 0.0
    assert attrs["motion_filter"] is None  # the flow read, nothing dropped
    for p, m in zip(plain, moved):  # frame 1 reads the backward flow: the same motion against the ground
        assert (p & hole).sum() > 0.9 * hole.sum()
        assert not (m & hole).any() and region_similarity(m, obj) > 0.98
    with pytest.raises(ValueError, match="refine: grabcut_flow needs"):
        run("grabcut_flow")


def test_prediction_refine_fb_check_reaches_the_cut(tmp_path):
    """segment.predict.refine_fb_check: the predictions' grabcut_flow cut drops the flow that fails the
    forward-backward check (frame 0 of the bled flow of ``_bled_flow``)."""
    import cv2
    import torch

    from wsvis.io.predictions import frame_predictions, read_predictions
    from wsvis.io.store import ArtifactWriter
    from wsvis.maskconsist.predict import write_video_predictions

    img, obj, hole = _concave_frame()
    paths = [str(tmp_path / f"{t:05d}.png") for t in range(2)]
    for p in paths:
        cv2.imwrite(p, img[..., ::-1])
    forward, backward = _bled_flow(obj, hole)
    with ArtifactWriter(tmp_path / "flow.zarr", stage="flow", frame_size=(H, W),
                        attrs={"gaps": [1], "num_frames": 2}) as wr:
        wr.write_array("gap_1/forward", forward.astype(np.float16))
        wr.write_array("gap_1/backward", backward.astype(np.float16))

    def detect(t, image):
        return {"masks": torch.from_numpy((obj | hole)[None]).float(), "scores": torch.tensor([0.9]),
                "labels": torch.tensor([1]), "boxes": torch.tensor([[36.0, 24.0, 92.0, 72.0]])}

    def run(check):
        out = write_video_predictions(paths, tmp_path / f"{check}.zarr", detect, method="m", categories=["a"],
                                      max_detections=1, refine="grabcut_flow", refine_margin=0.5,
                                      refine_fb_check=check, flow_path=str(tmp_path / "flow.zarr"), progress=False)
        group, attrs = read_predictions(out)
        return frame_predictions(group, 0)[0][0], attrs["refine_fb_check"]

    bled, attr = run(False)
    assert (bled & hole).sum() > 0.9 * hole.sum() and attr is False
    checked, attr = run(True)
    assert not (checked & hole).any() and region_similarity(checked, obj) > 0.98 and attr is True


def test_prediction_refine_min_keep_keeps_the_mask_whose_cut_collapses(tmp_path):
    """segment.predict.refine_min_keep reaches the cut: 0 writes the collapsed cut, 0.5 the model's mask."""
    import cv2
    import torch

    from wsvis.io.predictions import frame_predictions, read_predictions
    from wsvis.maskconsist.predict import write_video_predictions

    img, shirt, bike = _collapse_frame()
    path = str(tmp_path / "00000.png")
    cv2.imwrite(path, img[..., ::-1])

    def detect(t, image):
        return {"masks": torch.from_numpy((shirt | bike)[None]).float(), "scores": torch.tensor([0.9]),
                "labels": torch.tensor([1]), "boxes": torch.tensor([[44.0, 24.0, 84.0, 76.0]])}

    def run(min_keep):
        out = write_video_predictions([path], tmp_path / f"{min_keep}.zarr", detect, method="m", categories=["a"],
                                      max_detections=1, refine="grabcut", refine_grow=2, refine_min_keep=min_keep,
                                      progress=False)
        group, attrs = read_predictions(out)
        return frame_predictions(group, 0)[0][0], attrs["refine_min_keep"]

    np.testing.assert_array_equal(run(0.0)[0], shirt)
    kept, attr = run(0.5)
    np.testing.assert_array_equal(kept, shirt | bike)
    assert attr == 0.5


def test_prediction_refine_in_worker_threads_keeps_frame_order_and_results(tmp_path):
    """Cuts run beside detection in torch.get_num_threads() workers: same masks, each on its own frame."""
    import cv2
    import torch

    from wsvis.io.predictions import frame_predictions, read_predictions
    from wsvis.maskconsist.predict import write_video_predictions

    xs = [40, 64, 88, 52, 76]
    paths, discs = [], []
    for t, x in enumerate(xs):
        img, disc = _disc_frame(seed=t, x=x)
        paths.append(tmp_path / f"{t:05d}.png")
        cv2.imwrite(str(paths[-1]), img[..., ::-1])
        discs.append(disc)
    yy, xx = np.mgrid[0:H, 0:W]

    def detect(t, image):
        blob = (yy - 48) ** 2 + (xx - xs[t]) ** 2 < 31**2  # the disc plus a halo
        return {"masks": torch.from_numpy(blob[None]).float(), "scores": torch.tensor([0.9]),
                "labels": torch.tensor([1]), "boxes": torch.tensor([[xs[t] - 31.0, 17.0, xs[t] + 31.0, 79.0]])}

    threads = torch.get_num_threads()
    runs = []
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            out = write_video_predictions(paths, tmp_path / f"{n}.zarr", detect, method="m", categories=["a"],
                                          max_detections=1, refine="grabcut", progress=False)
            group, _ = read_predictions(out)
            runs.append([frame_predictions(group, t)[0][0] for t in range(len(xs))])
    finally:
        torch.set_num_threads(threads)
    for t, disc in enumerate(discs):
        assert region_similarity(runs[1][t], disc) > 0.8
        np.testing.assert_array_equal(runs[0][t], runs[1][t])
