"""Flow backends: registry errors, DIS on a known shift of a real frame, EPE on Sintel, RAFT padding."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import DEMO, shared

from wsvis.flow.backends import FLOW_BACKENDS, make_flow_backend
from wsvis.flow.ops import end_point_error
from wsvis.io.flowfile import read_flo
from wsvis.io.images import read_image


def _real_frame() -> np.ndarray:
    demo = sorted(DEMO.glob("JPEGImages/*/*.jpg"))
    if demo:
        return read_image(demo[0])
    return read_image(shared("davis2016", "JPEGImages", "480p", "blackswan", "00000.jpg"))


def test_registry_names():
    assert {"dis", "farneback", "raft_small", "raft_large"} <= set(FLOW_BACKENDS)


def test_unknown_backend_and_option_are_named():
    with pytest.raises(ValueError, match="'nope'.*dis"):
        make_flow_backend("nope")
    with pytest.raises(ValueError, match="'speed'.*preset"):
        make_flow_backend("dis", speed=3)
    with pytest.raises(ValueError, match="'warp'"):
        make_flow_backend("raft_small", warp=1)
    with pytest.raises(ValueError, match="preset"):
        make_flow_backend("dis", preset="slow")


@pytest.mark.parametrize("dx, dy", [(3, -2), (-4, 5)])
def test_dis_recovers_known_shift_of_real_frame(dx, dy):
    image = _real_frame()
    h, w = 96, 128
    y0, x0 = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    img1 = np.ascontiguousarray(image[y0 : y0 + h, x0 : x0 + w])
    # img2 shows the same content moved by (dx, dy): img2(p + d) = img1(p)
    img2 = np.ascontiguousarray(image[y0 - dy : y0 - dy + h, x0 - dx : x0 - dx + w])
    flow = make_flow_backend("dis")(img1, img2)
    assert flow.shape == (h, w, 2) and flow.dtype == np.float32
    interior = flow[10:-10, 10:-10].reshape(-1, 2)
    np.testing.assert_allclose(np.median(interior, axis=0), [dx, dy], atol=0.5)


def _sintel_easy():
    root = shared("sintel")
    img1 = read_image(root / "clean" / "easy" / "frame_0002.png")
    img2 = read_image(root / "clean" / "easy" / "frame_0003.png")
    gt = read_flo(root / "gt" / "easy" / "frame_0002.flo")
    return img1, img2, gt


# Measured on this machine (OpenCV 5.0.0), Sintel alley_1 clean 2->3, 1024x436, all pixels:
# DIS medium EPE 0.341 px, Farneback (defaults) EPE 0.933 px. Bounds leave ~15 % margin.
@pytest.mark.parametrize("name, bound", [("dis", 0.40), ("farneback", 1.07)])
def test_epe_on_sintel_easy(name, bound):
    img1, img2, gt = _sintel_easy()
    assert gt.shape == (436, 1024, 2)
    flow = make_flow_backend(name)(img1, img2)
    assert flow.shape == gt.shape and flow.dtype == np.float32
    epe = end_point_error(flow, gt)
    assert epe < bound, f"{name}: EPE {epe:.3f} px"
    # sanity: far better than predicting zero motion (gt mean |flow| 2.98 px)
    assert epe < 0.5 * end_point_error(np.zeros_like(gt), gt)


def test_raft_small_random_weights_pads_and_crops(caplog):
    rng = np.random.default_rng(0)
    img1 = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    img2 = np.roll(img1, 1, axis=1)
    with caplog.at_level(logging.WARNING):
        backend = make_flow_backend("raft_small", weights="none", iters=2, device="cpu")
    assert "random" in caplog.text
    assert backend.name == "raft_small"
    flow = backend(img1, img2)
    assert flow.shape == (37, 53, 2) and flow.dtype == np.float32
    assert np.isfinite(flow).all()
    batch = backend.batch([img1, img2], [img2, img1])
    assert batch.shape == (2, 37, 53, 2)


def test_raft_missing_weights_file_is_named(tmp_path):
    missing = tmp_path / "raft.pth"
    with pytest.raises(FileNotFoundError, match="raft.pth"):
        make_flow_backend("raft_small", weights=str(missing), device="cpu")


def test_raft_loads_local_state_dict(tmp_path):
    import torch
    from torchvision.models.optical_flow import raft_small

    path = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), path)
    backend = make_flow_backend("raft_small", weights=str(path), iters=1, device="cpu")
    assert backend.name == "raft_small"
