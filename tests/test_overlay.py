"""CAM and pseudo-label overlay sheets on real demo frames."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import DEMO
from wsvis.io.pseudo import PseudoLabelWriter
from wsvis.io.store import ArtifactError, ArtifactWriter
from wsvis.viz.overlay import cam_overlay, instance_color, instance_labels, label_overlay, pseudo_overlay
from wsvis.viz.sheet import STRIP_H, label_size, place_labels, titled

IMAGES = sorted((DEMO / "JPEGImages" / "dog").glob("*.jpg"))[:3]
H, W = 240, 427  # demo frame size
CATS = ["bird", "car", "dog"]


def read_png(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture
def cam_path(tmp_path) -> Path:
    """A CAM artifact as the cam stage writes it: stride 4, dog active around (x 200, y 120), fcam doubled."""
    h, w = math.ceil(H / 4), math.ceil(W / 4)
    yy, xx = np.mgrid[0:h, 0:w]
    blob = np.exp(-((xx - 50) ** 2 + (yy - 30) ** 2) / (2 * 6.0**2))
    cam = np.zeros((len(IMAGES), len(CATS), h, w), np.float16)
    cam[:, 2] = blob
    path = tmp_path / "cam" / "dog.zarr"
    with ArtifactWriter(path, stage="cam", frame_size=(H, W), attrs={"categories": CATS, "stride": 4}) as wr:
        wr.write_array("cam", cam)
        wr.write_array("fcam", (cam.astype(np.float32) * 2).astype(np.float16))
    return path


def test_cam_overlay_sheet(cam_path, tmp_path):
    assert cv2.imread(str(IMAGES[0])).shape[:2] == (H, W)
    out = tmp_path / "cam.png"
    cam_overlay([str(p) for p in IMAGES], cam_path, out, frames=2, width=200)
    tile_h = round(H * 200 / W)
    sheet = read_png(out)
    # rows: frames 0, 2, each a caption strip above the picture; columns: frame, cam, fcam
    assert sheet.shape == (2 * (STRIP_H + tile_h), 3 * 200, 3)
    # the CAM peak (x 200, y 120 px) is red in the cam tile; a far corner stays blue-ish
    s = 200 / W
    py, px = STRIP_H + round(120 * s + 6), round(200 * s)  # a little below the peak, clear of the class label
    peak = sheet[py, 200 + px].astype(int)
    frame = sheet[py, px].astype(int)
    assert peak[0] - peak[2] > 80 and frame[0] - frame[2] < 40
    corner = sheet[STRIP_H + tile_h - 3, 200 + 5].astype(int)
    assert corner[2] > corner[0]

    only = tmp_path / "only_cam.png"
    cam_overlay([str(p) for p in IMAGES], cam_path, only, source="cam", frames=6, width=160)
    assert read_png(only).shape == (3 * (STRIP_H + round(H * 160 / W)), 2 * 160, 3)
    with pytest.raises(ValueError, match="frames stored"):
        cam_overlay([str(IMAGES[0])], cam_path, tmp_path / "x.png")
    with pytest.raises(ValueError, match="source"):
        cam_overlay([str(p) for p in IMAGES], cam_path, tmp_path / "x.png", source="irn")
    assert not (tmp_path / "x.png").exists()


def test_pseudo_overlay_distinct_colours(tmp_path):
    masks = np.zeros((len(IMAGES), 2, H, W), bool)
    masks[:, 0, 60:180, 40:160] = True
    masks[:, 1, 60:180, 250:380] = True
    path = tmp_path / "pseudo.zarr"
    with PseudoLabelWriter(path, num_frames=len(IMAGES), frame_size=(H, W), variant="flowirn", categories=CATS) as wr:
        for t in range(len(IMAGES)):
            wr.add_frame(t, masks[t], np.array([3, 3]), np.array([0.9, 0.7]))
    out = tmp_path / "pseudo.png"
    pseudo_overlay([str(p) for p in IMAGES], path, out, frames=1, width=W)
    sheet = read_png(out)
    assert sheet.shape == (STRIP_H + H, 2 * W, 3)  # one row: caption strip over frame | overlay, unscaled
    sheet = sheet[STRIP_H:]
    a, b = sheet[150, W + 100].astype(int), sheet[150, W + 315].astype(int)
    assert np.abs(a - b).sum() > 60  # two instances, two colours
    assert not np.array_equal(instance_color(1), instance_color(2))
    assert np.array_equal(instance_color(7), instance_color(7)) and not instance_color(0).any()
    # the fill tints towards the instance's colour: the overlay is closer to it than the plain frame
    for x, iid in ((100, 1), (315, 2)):
        plain, drawn = sheet[150, x].astype(int), sheet[150, W + x].astype(int)
        c = instance_color(iid).astype(int)
        assert np.abs(drawn - c).sum() < np.abs(plain - c).sum()

    many = tmp_path / "pseudo6.png"
    pseudo_overlay([str(p) for p in IMAGES], path, many, width=160)
    assert read_png(many).shape == (3 * (STRIP_H + round(H * 160 / W)), 2 * 160, 3)
    with pytest.raises(ArtifactError):
        pseudo_overlay([str(p) for p in IMAGES], tmp_path / "missing.zarr", tmp_path / "y.png")


def _disjoint(a, b) -> bool:
    return a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_place_labels_stacks_colliding_labels():
    # three 40 x 12 labels anchored 3 px apart: the first keeps its anchor, the others stack below it
    boxes = place_labels([(10, 10), (12, 13), (8, 11)], [(40, 12)] * 3, (100, 80))
    assert boxes == [(10, 10, 50, 22), (12, 22, 52, 34), (8, 34, 48, 46)]
    # near the bottom edge there is no room below: the second label goes above the first
    boxes = place_labels([(0, 68), (0, 70)], [(40, 12)] * 2, (100, 80))
    assert boxes == [(0, 68, 40, 80), (0, 56, 40, 68)]
    # a label is moved inside the picture, and labels that do not collide stay at their anchors
    assert place_labels([(90, -5), (0, 40)], [(40, 12)] * 2, (100, 80)) == [(60, 0, 100, 12), (0, 40, 40, 52)]
    with pytest.raises(ValueError, match="anchors"):
        place_labels([(0, 0)], [], (10, 10))


def test_instance_labels_do_not_intersect():
    """The case that used to collide: two masks whose top-left corners are 2 px apart, at the tile's corner."""
    label = np.zeros((60, 120), np.int64)
    label[0:40, 0:50] = 1
    label[2:30, 2:100] = 2  # drawn over 1; its corner is 2 px from 1's
    classes, scores = np.array([0, 3, 1]), np.array([0.0, 0.9, 0.7])
    placed = instance_labels(label, classes, scores, CATS)
    assert [(i, text) for i, text, _ in placed] == [(1, "dog 0.90"), (2, "bird 0.70")]
    (_, _, a), (_, _, b) = placed
    assert _disjoint(a, b)
    assert a[:2] == (0, 0) and b[1] == a[3]  # the first at its corner, the second stacked right below it
    w, h = label_size("dog 0.90")
    assert a == (0, 0, w, h)
    drawn = label_overlay(np.full((60, 120, 3), 255, np.uint8), label, classes, scores, CATS)
    # each label box is dark (text on a dark background) with its instance's colour swatch
    for i, _, (x0, y0, x1, y1) in placed:
        assert drawn[y0:y1, x0:x1].mean() < 120
        assert np.abs(drawn[y0 + 5, x0 + 4].astype(int) - instance_color(i).astype(int)).sum() < 10


def test_titled_caption_strip_above_the_picture():
    img = np.full((40, 80, 3), 255, np.uint8)
    out = titled(img, 80, "flowirn: 1 instance")
    assert out.shape == (STRIP_H + 40, 80, 3)
    assert (out[STRIP_H:] == 255).all()  # the picture is untouched by the caption
    assert out[:STRIP_H].max() > 200 and np.median(out[:STRIP_H]) == 0  # white text on black
