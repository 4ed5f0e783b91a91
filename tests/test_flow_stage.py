"""The flow stage: artifact layout, index convention, empty videos, atomicity (also against a
failing background writer), inline vs background writes, gap validation."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

import wsvis.io.store as store

from wsvis.flow.backends import FLOW_BACKENDS
from wsvis.flow.stage import compute_video_flow, read_flow
from wsvis.io.images import FrameError
from wsvis.io.store import ArtifactError, open_artifact

H, W = 24, 32


def _frames(tmp_path, n: int, textured: bool = False) -> list[str]:
    """n PNG frames; plain frame t has value 10 * t in every pixel (so a fake backend can tell them apart)."""
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 256, (H, W + n, 3), dtype=np.uint8), (5, 5), 0)
    paths = []
    for t in range(n):
        img = base[:, t : t + W] if textured else np.full((H, W, 3), 10 * t, np.uint8)
        path = tmp_path / f"{t:05d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR))
        paths.append(str(path))
    return paths


class _Tagging:
    """Fake backend: flow filled with (frame id of img1, frame id of img2)."""

    name = "tagging"

    def __call__(self, img1, img2):
        flow = np.empty((*img1.shape[:2], 2), np.float32)
        flow[..., 0] = img1[0, 0, 0] / 10
        flow[..., 1] = img2[0, 0, 0] / 10
        return flow


def test_layout_attrs_and_index_convention(tmp_path, monkeypatch):
    monkeypatch.setitem(FLOW_BACKENDS, "tagging", _Tagging)
    out = tmp_path / "flow" / "v.zarr"
    params = {"backend": "tagging", "gaps": [1, 2], "note": "whole section"}
    compute_video_flow(_frames(tmp_path, 3), out, backend="tagging", gaps=[1, 2], params=params, progress=False)
    group = open_artifact(out, "flow")
    attrs = dict(group.attrs)
    assert attrs["backend"] == "tagging" and attrs["gaps"] == [1, 2] and attrs["params"] == params
    assert attrs["frame_size"] == [H, W] and attrs["num_frames"] == 3
    assert attrs["units"]["gap_1/forward"] == "pixels"
    assert "t -> t+gap" in attrs["index_convention"]["forward"]
    for gap in (1, 2):
        fwd, bwd = read_flow(out, gap, "forward"), read_flow(out, gap, "backward")
        for arr in (fwd, bwd):
            assert arr.shape == (3 - gap, H, W, 2) and arr.dtype == np.float16
            assert arr.chunks == (1, H, W, 2)
        for t in range(3 - gap):
            np.testing.assert_array_equal(fwd[t][0, 0], [t, t + gap])  # t -> t+gap
            np.testing.assert_array_equal(bwd[t][0, 0], [t + gap, t])  # t+gap -> t
    with pytest.raises(KeyError, match=r"gap 3.*\[1, 2\]"):
        read_flow(out, 3)


def test_frames_decoded_once_with_several_gaps(tmp_path, monkeypatch):
    import wsvis.flow.stage as stage

    calls = []
    real = stage.read_image
    monkeypatch.setattr(stage, "read_image", lambda p: calls.append(p) or real(p))
    monkeypatch.setitem(FLOW_BACKENDS, "tagging", _Tagging)
    paths = _frames(tmp_path, 5)
    compute_video_flow(paths, tmp_path / "v.zarr", backend="tagging", gaps=[1, 3], progress=False)
    assert sorted(calls) == paths


def test_dis_on_textured_frames(tmp_path):
    # frame t+1 is frame t shifted one pixel left: forward flow ~ (-1, 0), backward ~ (+1, 0)
    out = tmp_path / "v.zarr"
    compute_video_flow(_frames(tmp_path, 3, textured=True), out, gaps=[1], progress=False)
    fwd, bwd = read_flow(out)[:], read_flow(out, 1, "backward")[:]
    assert fwd.shape == (2, H, W, 2) and fwd.dtype == np.float16
    assert np.median(fwd[..., 0]) < -0.5 and np.median(bwd[..., 0]) > 0.5


def test_one_frame_video_gives_empty_arrays(tmp_path):
    out = tmp_path / "v.zarr"
    compute_video_flow(_frames(tmp_path, 1), out, gaps=[1, 2], progress=False)
    for gap in (1, 2):
        assert read_flow(out, gap).shape == (0, H, W, 2)
        assert read_flow(out, gap, "backward").shape == (0, H, W, 2)


def test_failure_midway_leaves_no_artifact(tmp_path, monkeypatch):
    class _FailsOnSecondPair:
        name = "fails"

        def __init__(self):
            self.calls = 0

        def __call__(self, img1, img2):
            self.calls += 1
            if self.calls > 2:  # calls 1-2 are pair 0 (forward, backward)
                raise RuntimeError("killed")
            return np.zeros((*img1.shape[:2], 2), np.float32)

    monkeypatch.setitem(FLOW_BACKENDS, "fails", _FailsOnSecondPair)
    out = tmp_path / "v.zarr"
    with pytest.raises(RuntimeError, match="killed"):
        compute_video_flow(_frames(tmp_path, 4), out, backend="fails", progress=False)
    assert not out.exists()
    assert not list(tmp_path.glob(".v.zarr.tmp-*"))
    with pytest.raises(ArtifactError):
        open_artifact(out, "flow")


@pytest.mark.parametrize("gaps", [[0], [1, -2], [1.5], ["1"], [], [True]])
def test_bad_gaps_name_the_config_key(tmp_path, gaps):
    with pytest.raises(ValueError, match="flow.gaps"):
        compute_video_flow(_frames(tmp_path, 2), tmp_path / "v.zarr", gaps=gaps, progress=False)
    assert not (tmp_path / "v.zarr").exists()


def test_compressor_choice_is_recorded(tmp_path):
    out = tmp_path / "v.zarr"
    compute_video_flow(_frames(tmp_path, 2), out, compressor="blosc-lz4", progress=False)
    assert open_artifact(out, "flow").attrs["compressor"] == "blosc-lz4"
    with pytest.raises(KeyError, match="nope"):
        compute_video_flow(_frames(tmp_path, 2), tmp_path / "w.zarr", compressor="nope", progress=False)


def test_overlapped_and_inline_runs_store_the_same_flow(tmp_path, monkeypatch):
    import wsvis.flow.stage as stage

    paths = _frames(tmp_path, 5, textured=True)
    runs = {"inline": (False, 4), "overlap": (True, 4), "overlap, queue of 1": (True, 1)}
    for name, (overlap, queue) in runs.items():
        monkeypatch.setattr(stage, "WRITE_QUEUE", queue)
        compute_video_flow(paths, tmp_path / f"{name}.zarr", gaps=[1, 3], overlap=overlap, progress=False)
    for gap in (1, 3):
        for direction in ("forward", "backward"):
            ref = read_flow(tmp_path / "inline.zarr", gap, direction)[:]
            assert ref.dtype == np.float16 and np.abs(ref).max() > 0.5
            for name in ("overlap", "overlap, queue of 1"):
                np.testing.assert_array_equal(read_flow(tmp_path / f"{name}.zarr", gap, direction)[:], ref)


def _background_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("wsvis-zarr-writer", "wsvis-frame-reader"))]


@pytest.mark.parametrize("fail_at", [0, 2])  # pair 0: surfaces at a later put(); pair 2 (the last): at the end
def test_writer_thread_failure_propagates_and_leaves_no_artifact(tmp_path, monkeypatch, fail_at):
    real = store._write

    def failing(array, index, value):
        if index == fail_at and array.path.endswith("backward"):
            raise OSError("no space left on device")
        real(array, index, value)

    monkeypatch.setattr(store, "_write", failing)
    out = tmp_path / "v.zarr"
    with pytest.raises(OSError, match="no space left"):
        compute_video_flow(_frames(tmp_path, 4), out, gaps=[1], progress=False)
    assert not out.exists() and not list(tmp_path.glob(".v.zarr.tmp-*"))
    assert not _background_threads()
    with pytest.raises(ArtifactError):
        open_artifact(out, "flow")


@pytest.mark.parametrize("overlap", [True, False])
def test_unreadable_frame_read_ahead_fails_the_stage(tmp_path, overlap):
    (tmp_path / "frames").mkdir()
    paths = _frames(tmp_path / "frames", 5)
    with open(paths[3], "wb") as f:
        f.write(b"not a png")
    out = tmp_path / "v.zarr"
    with pytest.raises(FrameError, match="00003.png"):
        compute_video_flow(paths, out, overlap=overlap, progress=False)
    assert not out.exists() and not list(tmp_path.glob(".v.zarr.tmp-*"))
    assert not _background_threads()
