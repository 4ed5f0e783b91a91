"""Depth backends and stage with a tiny TorchScript network built in the test."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from wsvis.depth import DEPTH_BACKENDS, compute_video_depth, make_depth_backend, read_depth
from wsvis.io.store import ArtifactError, open_artifact

H, W = 20, 28

# TorchScript is what users export MiDaS to; torch 2.14 marks torch.jit as deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:FutureWarning")


class _TinyDepth(torch.nn.Module):
    """conv + mean over channels: (N, 3, h, w) -> (N, h, w), like MiDaS's output layout."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=1)


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tiny_depth.pt"
    torch.jit.script(_TinyDepth()).save(str(path))
    return str(path)


def _frames(tmp_path, n):
    rng = np.random.default_rng(1)
    paths = []
    for t in range(n):
        path = tmp_path / f"{t:05d}.jpg"
        cv2.imwrite(str(path), rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
        paths.append(str(path))
    return paths


def test_registry_has_no_default_network():
    assert set(DEPTH_BACKENDS) == {"torchscript"}
    with pytest.raises(ValueError, match="checkpoint"):
        make_depth_backend("torchscript")
    with pytest.raises(ValueError, match="'midas'.*torchscript"):
        make_depth_backend("midas")


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pt"):
        make_depth_backend("torchscript", checkpoint=str(tmp_path / "nothere.pt"))


def test_unknown_option_is_named(checkpoint):
    with pytest.raises(ValueError, match="'size'"):
        make_depth_backend("torchscript", checkpoint=checkpoint, size=3)


def test_backend_output_is_frame_sized_float32(checkpoint):
    backend = make_depth_backend("torchscript", checkpoint=checkpoint, input_size=32, device="cpu")
    img = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = backend(img)
    assert backend.name == "torchscript"
    assert depth.shape == (H, W) and depth.dtype == np.float32 and np.isfinite(depth).all()


def test_stage_writes_depth_artifact(tmp_path, checkpoint):
    out = tmp_path / "depth" / "v.zarr"
    params = {"backend": "torchscript", "input_size": 32}
    options = {"checkpoint": checkpoint, "input_size": 32, "device": "cpu"}
    compute_video_depth(_frames(tmp_path, 3), out, backend_options=options, params=params, progress=False)
    depth = read_depth(out)
    assert depth.shape == (3, H, W) and depth.dtype == np.float16 and depth.chunks == (1, H, W)
    attrs = dict(open_artifact(out, "depth").attrs)
    assert attrs["units"] == {"depth": "relative inverse depth"}
    assert attrs["frame_size"] == [H, W] and attrs["num_frames"] == 3
    assert attrs["params"] == params and attrs["backend"] == "torchscript"
    assert np.isfinite(depth[:].astype(np.float32)).all()
    # the same network on the same frame gives the same map as the backend called directly
    backend = make_depth_backend("torchscript", **options)
    from wsvis.io.images import read_image

    direct = backend(read_image(tmp_path / "00001.jpg"))
    np.testing.assert_allclose(depth[1].astype(np.float32), direct, rtol=2e-3, atol=2e-3)


def test_stage_missing_checkpoint_leaves_nothing(tmp_path):
    out = tmp_path / "v.zarr"
    with pytest.raises(FileNotFoundError, match="gone.pt"):
        compute_video_depth(_frames(tmp_path, 2), out, backend_options={"checkpoint": str(tmp_path / "gone.pt")})
    with pytest.raises(ArtifactError):
        read_depth(out)
