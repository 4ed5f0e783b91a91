"""Trackers on synthetic moving boxes/masks: registry, Algorithm 1, Kalman re-identification, tracklet merging, I/O."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from pycocotools import mask as mask_util

from wsvis.io.predictions import PredictionWriter
from wsvis.track import TRACKERS, Track, bi_greedy_match, make_tracker
from wsvis.track.common import mask_iou
from wsvis.track.stage import (
    merge_video_tracks,
    read_mots_txt,
    read_tracks,
    track_video,
    tracks_to_results,
    write_mots_txt,
    write_tracks,
)
from wsvis.track.stc import STCTracker

H, W = 48, 96


def frame(objects, h=H, w=W):
    """Detections of one frame from ``[(x1, y1, x2, y2, label, score), ...]`` (integer boxes, rectangular masks)."""
    masks = np.zeros((len(objects), h, w), bool)
    for i, (x1, y1, x2, y2, _, _) in enumerate(objects):
        masks[i, max(y1, 0) : y2, max(x1, 0) : x2] = True
    scores = np.array([o[5] for o in objects], np.float32)
    labels = np.array([o[4] for o in objects], np.int32)
    boxes = np.array([o[:4] for o in objects], np.float32).reshape(-1, 4)
    return masks, scores, labels, boxes


def owner(tracks, t, box):
    """Id of the track whose mask at frame t is the rectangle ``box`` (None if none)."""
    x1, y1, x2, y2 = box
    for tr in tracks:
        if t in tr.frames and tr.frames[t][0][y1:y2, x1:x2].all() and tr.frames[t][0].sum() == (x2 - x1) * (y2 - y1):
            return tr.track_id
    return None


# ----------------------------------------------------------------------------- registry


def test_registry_and_errors():
    assert set(TRACKERS) == {"iou", "unovost", "stc"}
    assert isinstance(make_tracker("stc", motion="cp", discrepancy=False), STCTracker)
    with pytest.raises(ValueError, match="unknown tracker 'sort'"):
        make_tracker("sort")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['iou'\]"):
        make_tracker("iou", iou=0.5)
    with pytest.raises(ValueError, match="motion"):
        make_tracker("stc", motion="xy")


def test_track_category_majority_and_score():
    tr = Track(track_id=1)
    m = np.ones((2, 2), bool)
    tr.add(0, m, 0.9, 3)
    tr.add(1, m, 0.5, 2)
    tr.add(2, m, 0.4, 2)
    assert tr.category_id == 2 and tr.score == pytest.approx(0.6)
    with pytest.raises(ValueError, match="frame 1"):
        tr.add(1, m, 0.5, 2)


# ----------------------------------------------------------------------------- Algorithm 1


def test_bi_greedy_two_candidates_case():
    """Case (a) of Alg. 1: tracks 0 and 1 both pick detection 0; the nearer (track 1) wins.

    Track 0 is *not* re-offered its second-nearest detection 1 (the algorithm as
    written); detection 1, picked by no track, is case (b): a new instance.
    Hungarian matching would instead give (1, 0) and (0, 1).
    """
    cost = np.array(
        [
            [2.0, 3.0],  # track 0: nearest detection 0, second detection 1
            [1.0, 9.0],  # track 1: nearest detection 0, and nearer to it than track 0
            [np.inf, np.inf],  # track 2: gated out everywhere
        ]
    )
    matches, free_tracks, free_dets = bi_greedy_match(cost)
    assert matches == [(1, 0)]
    assert free_tracks == [0, 2]
    assert free_dets == [1]
    # three tracks on one detection: the nearest of the three candidates
    matches, _, _ = bi_greedy_match(np.array([[0.5], [0.2], [0.3]]))
    assert matches == [(1, 0)]
    assert bi_greedy_match(np.zeros((0, 3)))[2] == [0, 1, 2]


# ----------------------------------------------------------------------------- STC


def occlusion_video(n=14, hidden=(5, 6)):
    """Object A (class 1) moves right 4 px/frame and is missed at ``hidden``; B (class 1) moves left on a lower row."""
    frames, truth = [], []
    for t in range(n):
        a = (4 + 4 * t, 8, 20 + 4 * t, 24, 1, 0.9)
        b = (74 - 3 * t, 22, 90 - 3 * t, 38, 1, 0.8)  # crosses A's path horizontally, overlapping rows 22-24
        objs = [b] if t in hidden else [a, b]
        frames.append(frame(objs))
        truth.append({"a": a[:4] if t not in hidden else None, "b": b[:4]})
    return frames, truth


@pytest.mark.parametrize("motion", ["dp", "cp"])
def test_stc_keeps_ids_through_two_frame_occlusion(motion):
    frames, truth = occlusion_video()
    tracks = STCTracker(motion=motion, discrepancy=False, max_age=3)(frames)
    assert len(tracks) == 2
    ids_a = {owner(tracks, t, tr["a"]) for t, tr in enumerate(truth) if tr["a"]}
    ids_b = {owner(tracks, t, tr["b"]) for t, tr in enumerate(truth)}
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b
    (ta,) = [tr for tr in tracks if tr.track_id in ids_a]
    assert sorted(ta.frames) == [t for t in range(14) if t not in (5, 6)]


def test_stc_max_age_limits_reidentification():
    frames, _ = occlusion_video(hidden=(5, 6, 7, 8))
    assert len(STCTracker(discrepancy=False, max_age=4)(frames)) == 2  # lost 4 frames <= max_age: re-identified
    assert len(STCTracker(discrepancy=False, max_age=3)(frames)) == 3  # lost too long: a new track


def test_stc_low_score_stage_and_discrepancy_weights(caplog):
    frames, _ = occlusion_video(hidden=())
    # A's detections drop to a low score for two frames: matched in the second stage, not a new track
    for t in (5, 6):
        frames[t][1][0] = 0.2
    depth = np.random.default_rng(0).random((len(frames), H, W)).astype(np.float32)
    flow = {k: np.zeros((len(frames) - 1, H, W, 2), np.float32) for k in ("forward", "backward")}
    with caplog.at_level(logging.WARNING, logger="wsvis.track.stc"):
        tracks = STCTracker()(frames, flow=flow, depth=depth)
    assert not caplog.records
    assert len(tracks) == 2 and all(len(tr) == 14 for tr in tracks)
    with caplog.at_level(logging.WARNING, logger="wsvis.track.stc"):
        assert len(STCTracker()(frames, flow=flow)) == 2
    assert any("no depth" in r.message for r in caplog.records)
    assert STCTracker()._weights(False, True) == pytest.approx((0.875, 0.0, 0.125))
    assert STCTracker()._weights(True, True) == pytest.approx((0.7, 0.2, 0.1))
    assert STCTracker(discrepancy=False)._weights(True, True) == (1.0, 0.0, 0.0)
    # ignored below the low threshold: A would then be missing two frames, still re-identified
    for t in (5, 6):
        frames[t][1][0] = 0.05
    assert len(STCTracker(max_age=3)(frames, flow=flow, depth=depth)) == 2


def test_stc_rejects_bad_shapes():
    frames, _ = occlusion_video()
    with pytest.raises(ValueError, match="depth"):
        STCTracker()(frames, depth=np.zeros((3, H, W)))
    with pytest.raises(ValueError, match="flow"):
        STCTracker()(frames, flow={"forward": np.zeros((13, H, W, 2)), "backward": np.zeros((12, H, W, 2))})


# ----------------------------------------------------------------------------- IoU


def test_iou_tracker_one_id_per_object():
    frames = [frame([(2 + 2 * t, 4, 18 + 2 * t, 20, 1, 0.9), (70 - 2 * t, 26, 88 - 2 * t, 44, 2, 0.8),
                     (40, 2, 44, 6, 1, 0.1)]) for t in range(10)]  # noqa: E128
    tracks = make_tracker("iou")(frames)
    assert len(tracks) == 2  # the 0.1-score blob is ignored
    assert sorted(tr.category_id for tr in tracks) == [1, 2]
    assert all(sorted(tr.frames) == list(range(10)) for tr in tracks)
    # a gap ends a track: the iou baseline does not re-identify
    frames[4] = frame([(70 - 8, 26, 88 - 8, 44, 2, 0.8)])
    assert len(make_tracker("iou")(frames)) == 3


# ----------------------------------------------------------------------------- UnOVOST


def gap_video(n=16, gap=(6, 7, 8), v=3):
    """A (class 1, red) moves right ``v`` px/frame and is missed during ``gap``; B (class 1, blue) stands still."""
    frames, images = [], []
    for t in range(n):
        a = (4 + v * t, 6, 20 + v * t, 22, 1, 0.9)
        b = (60, 28, 80, 44, 1, 0.9)
        frames.append(frame([b] if t in gap else [a, b]))
        img = np.full((H, W, 3), 128, np.uint8)
        img[a[1] : a[3], a[0] : a[2]] = (220, 30, 30)
        img[b[1] : b[3], b[0] : b[2]] = (30, 30, 220)
        images.append(img)
    flow = {
        "forward": np.tile(np.array([v, 0], np.float32), (n - 1, H, W, 1)),
        "backward": np.tile(np.array([-v, 0], np.float32), (n - 1, H, W, 1)),
    }
    return frames, images, flow


@pytest.mark.parametrize("with_images", [True, False])
def test_unovost_merges_tracklets_across_gap(with_images):
    frames, images, flow = gap_video()
    tracks = make_tracker("unovost")(frames, flow=flow, images=images if with_images else None)
    assert len(tracks) == 2
    moving = [tr for tr in tracks if 0 in tr.frames and tr.frames[0][0][6:22, 4:20].all()]
    assert len(moving) == 1 and sorted(moving[0].frames) == [t for t in range(16) if t not in (6, 7, 8)]
    # a gap longer than max_gap is not bridged
    assert len(make_tracker("unovost", max_gap=3)(frames, flow=flow)) == 3


def test_unovost_flow_warping_links_fast_motion():
    """Moving 12 px/frame: unwarped IoU of consecutive 16 px boxes is 0.14, so only the flow links them."""
    frames, _, flow = gap_video(n=6, gap=(), v=12)
    frames = [(m[:1], s[:1], lab[:1], b[:1]) for m, s, lab, b in frames]  # only A
    from wsvis.track.unovost import link_tracklets

    kw = dict(score_threshold=0.3, link_iou=0.5, ambiguous_iou=0.2)
    assert len(link_tracklets(frames, flow, **kw)) == 1
    assert len(link_tracklets(frames, None, **kw)) == 6


# ----------------------------------------------------------------------------- stage / formats


def test_mots_txt_round_trip_through_pycocotools(tmp_path):
    frames, _ = occlusion_video(n=4, hidden=())
    tracks = STCTracker(discrepancy=False)(frames)
    tracks[0].labels = {t: 2 for t in tracks[0].labels}  # a second class
    out = tmp_path / "mots" / "0001.txt"
    write_mots_txt(tracks, out, (H, W))
    lines = out.read_text().splitlines()
    assert len(lines) == 8
    t, obj, cls, h, w, rle = lines[0].split(" ")
    assert (int(t), int(h), int(w)) == (0, H, W)
    assert sorted({ln.split(" ")[1] for ln in lines}) == ["1002", "2001"]  # class * 1000 + track index
    for t, obj, cls, mask in read_mots_txt(out):
        tr = tracks[obj % 1000 - 1]
        assert cls == tr.category_id == obj // 1000
        (line,) = [ln for ln in lines if ln.startswith(f"{t} {obj} ")]
        dec = mask_util.decode({"size": [H, W], "counts": line.split(" ")[5].encode()})
        assert np.array_equal(dec.astype(bool), mask)
        expected = tr.frames[t][0].copy()
        if tr.score < max(o.score for o in tracks):  # overlap goes to the higher-scoring track
            other = [o for o in tracks if o is not tr][0]
            expected &= ~other.frames[t][0]
        assert np.array_equal(mask, expected)
    with pytest.raises(ValueError, match="frame_size"):
        write_mots_txt(tracks, out, (H + 1, W))


def test_track_video_json_and_merge(tmp_path):
    frames, _ = occlusion_video(n=6, hidden=(2,))
    paths = []
    for name in ("vid_a", "vid_b"):
        pred = tmp_path / "predictions" / f"{name}.zarr"
        with PredictionWriter(pred, num_frames=6, frame_size=(H, W), max_detections=3, method="test",
                              categories=["car", "person"]) as wr:  # noqa: E128
            for t, f in enumerate(frames):
                wr.add_frame(t, *f)
        out = tmp_path / "tracks" / f"{name}.json"
        res = track_video(pred, out, tracker="stc", options={"discrepancy": False})
        assert read_tracks(out) == res
        assert {r["video"] for r in res} == {name} and len(res) == 2
        paths.append(out)
    seg = res[0]["segmentations"]
    assert len(seg) == 6 and isinstance(seg[0]["counts"], str)
    assert sum(s is None for r in res for s in r["segmentations"]) == 1  # A missing at frame 2
    merged = merge_video_tracks(paths, tmp_path / "tracks" / "all.json")
    assert len(merged) == 4 and read_tracks(tmp_path / "tracks" / "all.json") == merged
    with pytest.raises(ValueError, match="vid_a"):
        merge_video_tracks([paths[0], paths[0]], tmp_path / "x.json")
    dec = mask_util.decode({"size": seg[0]["size"], "counts": seg[0]["counts"].encode()})
    assert mask_iou(dec[None].astype(bool), frames[0][0]).max() == 1.0
    with pytest.raises(ValueError, match="not a YouTube-VIS"):
        write_tracks({"a": 1}, tmp_path / "bad.json") or read_tracks(tmp_path / "bad.json")


def test_tracks_to_results_fields():
    tr = Track(track_id=1)
    tr.add(1, np.ones((2, 3), bool), 0.5, 4)
    (r,) = tracks_to_results([tr], "v", 3)
    assert r["video"] == "v" and r["category_id"] == 4 and r["score"] == 0.5
    assert r["segmentations"][0] is None and r["segmentations"][1]["size"] == [2, 3]
