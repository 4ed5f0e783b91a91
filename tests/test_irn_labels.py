"""IR labels from CAMs and the IRN pair sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsvis.io.store import ArtifactWriter
from wsvis.irn.labels import ir_label, make_video_ir_labels, read_ir_labels
from wsvis.irn.pairs import offset_path, pair_sets, search_offsets


def _frame():
    img = np.full((37, 50, 3), 30, np.uint8)
    img[8:30, 10:30] = 220
    cam = np.zeros((3, 10, 13), np.float32)
    cam[1, 2:8, 3:8] = 1.0
    cam[1, 2, 3:8] = 0.2  # unsure ring (between bg and fg thresholds)
    return img, cam


@pytest.mark.parametrize("crf", [False, True])
def test_ir_label_classes(crf):
    img, cam = _frame()
    lab = ir_label(cam, img, crf=crf)
    assert lab.shape == (10, 13) and lab.dtype == np.uint8
    assert set(np.unique(lab)) <= {0, 2, 255}
    assert lab[5, 5] == 2  # confident fg of class index 1 -> id 2
    assert lab[9, 12] == 0 and lab[0, 0] == 0
    if not crf:
        assert (lab == 255).any()


def test_ir_label_untagged_and_errors():
    img, _ = _frame()
    assert (ir_label(np.zeros((3, 10, 13), np.float32), img) == 0).all()
    with pytest.raises(ValueError, match="grid"):
        ir_label(np.zeros((3, 9, 13), np.float32), img)


def test_make_video_ir_labels(tmp_path):
    import cv2

    img, cam = _frame()
    paths = []
    for t in range(2):
        p = tmp_path / f"{t:05d}.png"
        cv2.imwrite(str(p), img[..., ::-1])
        paths.append(p)
    cams = np.stack([cam, np.zeros_like(cam)]).astype(np.float16)
    cam_path = tmp_path / "cam" / "v.zarr"
    with ArtifactWriter(cam_path, stage="cam", frame_size=(37, 50), attrs={"categories": ["a", "b", "c"], "stride": 4}) as w:
        w.write_array("cam", cams)
        w.write_array("fcam", cams * 2)
    out = tmp_path / "irn" / "labels" / "fcam" / "v.zarr"
    make_video_ir_labels(paths, cam_path, "fcam", out, crf=False, progress=False)
    labels = read_ir_labels(out)
    assert labels.shape == (2, 10, 13) and labels.dtype == np.uint8
    assert labels[0, 5, 5] == 2 and (labels[1] == 0).all()
    with pytest.raises(ValueError):
        make_video_ir_labels(paths, cam_path, "bad", out, progress=False)


def test_offsets_and_paths():
    off = search_offsets(2)
    assert sorted(map(tuple, off)) == [(0, 1), (1, -1), (1, 0), (1, 1)]
    assert len(search_offsets(5)) == 34 and len(search_offsets(10)) == 152
    # each unordered pair once: no offset together with its negation
    s = set(map(tuple, search_offsets(10)))
    assert not any((-dy, -dx) in s for dy, dx in s)
    assert offset_path(0, 3).tolist() == [[0, 0], [0, 1], [0, 2], [0, 3]]
    assert offset_path(2, -2).tolist() == [[0, 0], [1, -1], [2, -2]]


def test_pair_set_counts():
    label = np.array([[1, 1, 0], [0, 0, 255]], np.uint8)
    fg, bg, neg = pair_sets(label, search_offsets(2))
    # hand count: fg {(0,0)-(0,1)}; bg {(1,0)-(1,1), (0,2)-(1,1)};
    # neg {(0,1)-(0,2), (0,1)-(1,0), (0,0)-(1,0), (0,1)-(1,1), (0,0)-(1,1)}
    assert (int(fg.sum()), int(bg.sum()), int(neg.sum())) == (1, 2, 5)
    fgb, _, _ = pair_sets(torch.from_numpy(label)[None].repeat(2, 1, 1), search_offsets(2))
    assert fgb.shape == (2, 4, 2, 3) and int(fgb.sum()) == 2


def test_motion_background_turns_still_pixels_with_a_diffuse_cam_into_background():
    # A CAM of a weak classifier: 0.2 everywhere (above IRN's 0.05, so no background at all) and
    # 1.0 on a square that moves. With motion_background, still pixels farther than the margin
    # (2 grid px = 8 image px) from the moving square become background; the square stays fg and
    # the band around it stays unsure.
    img = np.full((40, 60, 3), 90, np.uint8)
    cam = np.full((2, 10, 15), 0.2, np.float32)
    cam[1] = 0.0  # untagged class
    cam[0, 3:7, 5:10] = 1.0
    static = np.ones((40, 60), bool)
    static[12:28, 20:40] = False  # the moving square (grid rows 3-6, cols 5-9)
    plain = ir_label(cam, img, crf=False)
    assert (plain == 0).sum() == 0 and (plain[3:7, 5:10] == 1).all()
    lab = ir_label(cam, img, crf=False, static=static, motion_margin=2)
    assert (lab[3:7, 5:10] == 1).all()
    near = np.zeros((10, 15), bool)
    near[1:9, 3:12] = True  # cell centres within 8 image px (2 grid px) of the square
    ring = near.copy()
    ring[3:7, 5:10] = False
    assert (lab[ring] == 255).all() and (lab[~near] == 0).all()
    with pytest.raises(ValueError, match="static"):
        ir_label(cam, img, crf=False, static=static[:20])


def test_make_video_ir_labels_motion_background_needs_flow_and_reads_it(tmp_path):
    import cv2

    img = np.full((40, 60, 3), 90, np.uint8)
    cam = np.full((1, 10, 15), 0.2, np.float32)
    cam[0, 3:7, 5:10] = 1.0
    paths = []
    for t in range(2):
        p = tmp_path / f"{t:05d}.png"
        cv2.imwrite(str(p), img)
        paths.append(p)
    cams = np.stack([cam, cam]).astype(np.float16)
    cam_path = tmp_path / "cam.zarr"
    with ArtifactWriter(cam_path, stage="cam", frame_size=(40, 60), attrs={"categories": ["a"], "stride": 4}) as w:
        w.write_array("cam", cams)
        w.write_array("fcam", cams)
    flow = np.zeros((1, 40, 60, 2), np.float16)
    flow[0, 12:28, 20:40, 0] = 5.0  # the square moves 5 px right; the camera is still
    flow_path = tmp_path / "flow.zarr"
    with ArtifactWriter(flow_path, stage="flow", attrs={"gaps": [1]}) as w:
        w.write_array("gap_1/forward", flow)
        w.write_array("gap_1/backward", -flow)
    out = tmp_path / "labels.zarr"
    with pytest.raises(ValueError, match="motion_background"):
        make_video_ir_labels(paths, cam_path, "fcam", out, crf=False, motion_background=True, progress=False)
    make_video_ir_labels(paths, cam_path, "fcam", out, crf=False, motion_background=True, flow_path=flow_path,
                         progress=False)
    labels = read_ir_labels(out)
    assert (labels[:, 3:7, 5:10] == 1).all() and (labels[:, 0, :] == 0).all() and (labels[:, :, 0] == 0).all()
    # the cam source never uses motion (Table 4's irn row stays flow-free)
    make_video_ir_labels(paths, cam_path, "cam", tmp_path / "cam_labels.zarr", crf=False, motion_background=True,
                         progress=False)
    assert (read_ir_labels(tmp_path / "cam_labels.zarr") != 0).all()
