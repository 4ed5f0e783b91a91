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
