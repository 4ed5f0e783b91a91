"""Displacement refinement, centroids, instance pseudo-labels and the pseudo-label stage."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from wsvis.io.pseudo import frame_instances, read_pseudo
from wsvis.io.store import ArtifactWriter
from wsvis.irn.instances import find_centroids, instance_map, instance_pseudo_labels, refine_displacement
from wsvis.irn.net import IRNet
from wsvis.irn.stage import make_video_pseudo_labels

H, W = 30, 40
C1, C2 = (10.0, 10.0), (18.0, 30.0)


def _two_blobs():
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    left = xx < 20
    d = np.zeros((2, H, W), np.float32)
    # half-way towards the blob's centre (an under-confident D, refined to the centre)
    d[0] = np.where(left, C1[0] - yy, C2[0] - yy) * 0.5
    d[1] = np.where(left, C1[1] - xx, C2[1] - xx) * 0.5
    blob1 = (yy - C1[0]) ** 2 + (xx - C1[1]) ** 2 < 36
    blob2 = (yy - C2[0]) ** 2 + (xx - C2[1]) ** 2 < 36
    return d, blob1, blob2


def test_refinement_and_centroids():
    d, blob1, blob2 = _two_blobs()
    refined = refine_displacement(d, 100)
    yy, xx = np.mgrid[0:H, 0:W]
    assert np.abs(yy + refined[0] - np.where(xx < 20, C1[0], C2[0])).max() < 0.5
    cents = find_centroids(refined, blob1 | blob2, min_votes=5)
    assert len(cents) == 2
    for c in (C1, C2):
        assert np.min(np.hypot(cents[:, 0] - c[0], cents[:, 1] - c[1])) <= 1.5
    inst = instance_map(refined, cents)
    assert len(np.unique(inst[blob1])) == 1 and len(np.unique(inst[blob2])) == 1
    assert inst[blob1][0] != inst[blob2][0]


def test_centroids_merge_close_peaks():
    refined = np.zeros((2, 20, 20), np.float32)
    yy, xx = np.mgrid[0:20, 0:20]
    refined[0] = np.where(xx < 10, 8 - yy, 8 - yy)
    refined[1] = np.where(xx < 10, 8 - xx, 11 - xx)  # end points at (8, 8) and (8, 11): 3 px apart
    assert len(find_centroids(refined, min_votes=5, merge_distance=5)) == 1
    assert len(find_centroids(refined, min_votes=5, merge_distance=2)) == 2


def test_instance_pseudo_labels_two_instances():
    d, blob1, blob2 = _two_blobs()
    cam = np.zeros((3, H, W), np.float32)
    cam[1][blob1] = 1.0
    cam[1][blob2] = 0.8
    boundary = np.zeros((H, W), np.float32)
    boundary[:, 20] = 1.0  # boundary between the blobs
    masks, classes, scores = instance_pseudo_labels(cam, boundary, d, (4 * H - 2, 4 * W - 3), exp_times=5)
    assert masks.shape == (2, 4 * H - 2, 4 * W - 3) and masks.dtype == bool
    assert classes.tolist() == [2, 2]
    assert np.all(np.diff(scores) >= 0) and scores.max() == pytest.approx(1.0)
    assert not (masks[0] & masks[1]).any()
    # each mask covers its blob's centre
    centres = [(int(4 * C1[0] + 2), int(4 * C1[1] + 2)), (int(4 * C2[0] + 2), int(4 * C2[1] + 2))]
    hit = sorted(int(np.argmax([m[c] for m in masks])) for c in centres)
    assert hit == [0, 1]


def _one_object_two_tags():
    """One disc whose left part has the higher CAM of tag 0 and right part of tag 1 (co-occurring tags)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    disc = (yy - 15) ** 2 + (xx - 20) ** 2 < 64
    cam = np.zeros((2, H, W), np.float32)
    cam[0][disc] = np.where(xx < 17, 1.0, 0.6)[disc]
    cam[1][disc] = np.where(xx < 17, 0.5, 0.9)[disc]
    # a displacement field that splits the disc in two halves (an under-trained D)
    d = np.zeros((2, H, W), np.float32)
    d[0] = 15 - yy
    d[1] = np.where(xx < 20, 16 - xx, 24 - xx)
    return cam, d, disc


def test_instance_options_on_one_object_with_co_occurring_tags():
    cam, d, disc = _one_object_two_tags()
    yy, xx = np.mgrid[0:H, 0:W]
    r2 = (yy - 15) ** 2 + (xx - 20) ** 2
    boundary = ((r2 >= 64) & (r2 < 100)).astype(np.float32)  # the disc's contour
    size = (4 * H, 4 * W)
    big = cv2.resize(disc.astype(np.uint8), (4 * W, 4 * H), interpolation=cv2.INTER_NEAREST).astype(bool)
    # IRN: the displacement halves and the per-pixel argmax cut the disc into pieces of both tags
    masks, classes, _ = instance_pseudo_labels(cam, boundary, d, size, exp_times=3, ins_seg_bg_thres=0.3)
    assert len(masks) >= 2 and set(classes.tolist()) == {1, 2}
    # one class per displacement instance: still two pieces (the halves), each of one tag
    masks, classes, _ = instance_pseudo_labels(cam, boundary, d, size, exp_times=3, ins_seg_bg_thres=0.3,
                                               instance_class="instance")
    assert len(masks) == 2
    # connected regions with one class each: the disc is one instance of the tag whose map sums highest
    masks, classes, scores = instance_pseudo_labels(cam, boundary, d, size, exp_times=3, ins_seg_bg_thres=0.3,
                                                    instances="components", instance_class="instance")
    assert len(masks) == 1
    expected = 1 + int((cam[1] * disc).sum() > (cam[0] * disc).sum())
    assert classes.tolist() == [expected] and scores[0] == pytest.approx(1.0)
    inter, union = (masks[0] & big).sum(), (masks[0] | big).sum()
    assert inter / union > 0.8
    with pytest.raises(ValueError, match="instance_class"):
        instance_pseudo_labels(cam, boundary, d, size, instance_class="frame")
    with pytest.raises(ValueError, match="instances"):
        instance_pseudo_labels(cam, boundary, d, size, instances="boxes")


def test_instance_pseudo_labels_no_tags_and_errors():
    d, _, _ = _two_blobs()
    masks, classes, scores = instance_pseudo_labels(np.zeros((3, H, W)), np.zeros((H, W)), d, (4 * H, 4 * W))
    assert masks.shape == (0, 4 * H, 4 * W) and len(classes) == len(scores) == 0
    with pytest.raises(ValueError, match="grid"):
        instance_pseudo_labels(np.zeros((3, H, W)), np.zeros((H, W)), d, (4 * H + 8, 4 * W))


def test_make_video_pseudo_labels(tmp_path):
    rng = np.random.default_rng(0)
    big_h, big_w, n = 46, 61, 3
    h, w = 12, 16
    paths = []
    for t in range(n):
        img = rng.integers(0, 255, (big_h, big_w, 3), dtype=np.uint8)
        p = tmp_path / "frames" / f"{t:05d}.jpg"
        p.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(p), img)
        paths.append(p)
    cam = np.zeros((n, 4, h, w), np.float16)
    cam[0, 2, 2:9, 2:8] = 1.0  # frame 0: class index 2 (id 3)
    cam[0, 0, 5:11, 9:15] = 0.7  # and class index 0 (id 1)
    cam[2, 3, 3:10, 4:12] = 1.0  # frame 2: class index 3 (id 4); frame 1: no tags
    cam_path = tmp_path / "cam" / "v.zarr"
    with ArtifactWriter(cam_path, stage="cam", frame_size=(big_h, big_w),
                        attrs={"categories": ["a", "b", "c", "d"], "stride": 4}) as wr:
        wr.write_array("cam", cam)
        wr.write_array("fcam", cam * 2)
    torch.manual_seed(0)
    net = IRNet("mobilenet_v2", "none")
    model = tmp_path / "model.pt"
    torch.save({"model": net.state_dict(), "backbone": "mobilenet_v2"}, model)
    out = tmp_path / "pseudo" / "irn" / "v.zarr"
    make_video_pseudo_labels(paths, cam_path, "cam", model, out, variant="irn", exp_times=4,
                             device="cpu", params={"beta": 10}, progress=False)
    instances, classes, scores, attrs = read_pseudo(out)
    assert instances.shape == (n, big_h, big_w)
    assert attrs["variant"] == "irn" and attrs["categories"] == ["a", "b", "c", "d"]
    allowed = {0: {1, 3}, 1: set(), 2: {4}}
    for t in range(n):
        _, masks, cls, sc = frame_instances(instances[t], classes, scores)
        assert set(cls.tolist()) <= allowed[t]
        assert np.all((sc >= 0) & (sc <= 1))
    assert (instances[1] == 0).all()
    assert (instances[0] > 0).any() and (instances[2] > 0).any()
    # GrabCut refinement: recorded in the attrs, untagged frames stay empty; a bad value names the key.
    out_gc = tmp_path / "pseudo" / "irn_gc" / "v.zarr"
    make_video_pseudo_labels(paths, cam_path, "cam", model, out_gc, variant="irn", exp_times=4, refine="grabcut",
                             device="cpu", progress=False)
    instances_gc, _, _, attrs_gc = read_pseudo(out_gc)
    assert attrs_gc["irn"]["refine"] == "grabcut" and (instances_gc[1] == 0).all()
    with pytest.raises(ValueError, match="irn.infer.refine"):
        make_video_pseudo_labels(paths, cam_path, "cam", model, tmp_path / "bad.zarr", variant="irn", refine="crf",
                                 device="cpu", progress=False)
    with pytest.raises(ValueError, match="motion_instances need the video's flow"):
        make_video_pseudo_labels(paths, cam_path, "fcam", model, tmp_path / "bad2.zarr", variant="flowirn",
                                 motion_instances=0.2, device="cpu", progress=False)
    assert not (tmp_path / "bad2.zarr").exists()


def test_centroid_at_the_grid_corner():
    """End points that converge on the last row/column (a 2x2 border cell) still give a centroid."""
    h, w = 12, 16
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    refined = np.stack([(h - 1) - yy, (w - 1) - xx])  # every pixel points at (h-1, w-1)
    centroids = find_centroids(refined)
    assert centroids.shape == (1, 2) and np.allclose(centroids[0], (h - 1, w - 1))
