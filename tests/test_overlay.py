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
from wsvis.viz.overlay import cam_overlay, instance_color, pseudo_overlay

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
    assert sheet.shape == (2 * tile_h, 3 * 200, 3)  # rows: frames 0, 2; columns: frame, cam, fcam
    # the CAM peak (x 200, y 120 px) is red in the cam tile; a far corner stays blue-ish
    s = 200 / W
    py, px = round(120 * s + 6), round(200 * s)  # a little below the peak, clear of the class label
    peak = sheet[py, 200 + px].astype(int)
    frame = sheet[py, px].astype(int)
    assert peak[0] - peak[2] > 80 and frame[0] - frame[2] < 40
    corner = sheet[tile_h - 3, 200 + 5].astype(int)
    assert corner[2] > corner[0]

    only = tmp_path / "only_cam.png"
    cam_overlay([str(p) for p in IMAGES], cam_path, only, source="cam", frames=6, width=160)
    assert read_png(only).shape == (3 * round(H * 160 / W), 2 * 160, 3)
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
    assert sheet.shape == (H, 2 * W, 3)  # one row: frame | overlay, unscaled
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
    assert read_png(many).shape == (3 * round(H * 160 / W), 2 * 160, 3)
    with pytest.raises(ArtifactError):
        pseudo_overlay([str(p) for p in IMAGES], tmp_path / "missing.zarr", tmp_path / "y.png")
