"""Zarr artifact store: round trip, attrs, atomicity against exceptions and SIGKILL, the
background writer, and Snakemake's marker file inside a store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest

import wsvis.io.store as store
from wsvis.io.store import ArtifactError, ArtifactWriter, BackgroundWriter, atomic_file, describe, open_artifact


def test_round_trip_attrs_and_chunks(tmp_path):
    data = np.random.default_rng(0).normal(size=(3, 8, 10, 2)).astype(np.float16)
    path = tmp_path / "v.zarr"
    with ArtifactWriter(path, stage="flow", params={"gaps": [1]}, frame_size=(8, 10), units={"forward": "pixels"}) as w:
        w.write_array("gap_1/forward", data)
    group = open_artifact(path, "flow")
    arr = group["gap_1/forward"]
    assert arr.chunks == (1, 8, 10, 2)
    assert arr.dtype == np.float16
    np.testing.assert_array_equal(arr[:], data)
    attrs = dict(group.attrs)
    assert attrs["complete"] is True and attrs["stage"] == "flow"
    assert attrs["params"] == {"gaps": [1]} and attrs["frame_size"] == [8, 10]
    assert attrs["units"] == {"forward": "pixels"} and "wsvis_version" in attrs
    assert "gap_1/forward: shape=(3, 8, 10, 2) dtype=float16" in describe(path)
    assert os.listdir(tmp_path) == ["v.zarr"]  # no temporary sibling left


def test_zero_length_array(tmp_path):
    with ArtifactWriter(tmp_path / "one.zarr", stage="flow") as w:
        w.create_array("gap_1/forward", shape=(0, 4, 5, 2), dtype="float16")
    assert open_artifact(tmp_path / "one.zarr")["gap_1/forward"].shape == (0, 4, 5, 2)


def test_exception_keeps_old_artifact(tmp_path):
    path = tmp_path / "v.zarr"
    with ArtifactWriter(path, stage="depth") as w:
        w.write_array("depth", np.ones((2, 3, 3), np.float16))
    with pytest.raises(RuntimeError, match="boom"):
        with ArtifactWriter(path, stage="depth") as w:
            w.write_array("depth", np.zeros((2, 3, 3), np.float16))
            raise RuntimeError("boom")
    assert open_artifact(path, "depth")["depth"][:].sum() == 18  # the old one, whole
    assert os.listdir(tmp_path) == ["v.zarr"]


def test_stage_mismatch_and_missing(tmp_path):
    with ArtifactWriter(tmp_path / "a.zarr", stage="flow") as w:
        w.write_array("x", np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(ArtifactError, match="expected 'depth'"):
        open_artifact(tmp_path / "a.zarr", "depth")
    with pytest.raises(ArtifactError, match="no such artifact"):
        open_artifact(tmp_path / "b.zarr")


_KILLED_WRITER = """
import sys, time, numpy as np
from wsvis.io.store import ArtifactWriter
with ArtifactWriter(sys.argv[1], stage="flow") as w:
    a = w.create_array("gap_1/forward", shape=(1000, 16, 16, 2), dtype="float16")
    for t in range(1000):
        a[t] = np.full((16, 16, 2), t, np.float16)
        if t == 3:
            print("writing", flush=True)
        time.sleep(0.01)
"""


def test_sigkill_leaves_no_complete_artifact(tmp_path):
    path = tmp_path / "killed.zarr"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not path.exists()
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and ".tmp-" in leftovers[0].name
    with pytest.raises(ArtifactError):
        open_artifact(path)
    with pytest.raises(ArtifactError, match="temporary"):
        open_artifact(leftovers[0])
    # A half-written group copied to the final name is still refused: no complete marker.
    os.rename(leftovers[0], path)
    with pytest.raises(ArtifactError, match="incomplete"):
        open_artifact(path)
    os.rename(path, leftovers[0])
    # The next writer removes the dead writer's temporary directory.
    with ArtifactWriter(path, stage="flow") as w:
        w.write_array("x", np.zeros((1, 1, 1), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed.zarr"]


def test_atomic_file(tmp_path):
    target = tmp_path / "t.json"
    with atomic_file(target) as tmp:
        assert tmp.suffix == ".json" and tmp.parent == tmp_path
        tmp.write_text("{}")
    assert target.read_text() == "{}"
    with pytest.raises(ValueError):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise ValueError
    assert target.read_text() == "{}" and os.listdir(tmp_path) == ["t.json"]



def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "wsvis-zarr-writer"]


@pytest.mark.parametrize("maxsize", [0, 1, 4])
def test_background_writer_writes_in_order_and_casts(tmp_path, maxsize):
    data = np.random.default_rng(0).normal(size=(6, 5, 7, 2)).astype(np.float32)
    path = tmp_path / "v.zarr"
    with ArtifactWriter(path, stage="flow") as w, BackgroundWriter(maxsize) as bg:
        arr = w.create_array("forward", shape=data.shape, dtype="float16")
        assert len(_writer_threads()) == (1 if maxsize else 0)
        for t in range(len(data)):
            bg.put(arr, t, data[t])
        bg.put(arr, 0, data[5])  # a later write of the same index wins
    expected = np.concatenate([data[5:], data[1:]]).astype(np.float16)
    np.testing.assert_array_equal(open_artifact(path)["forward"][:], expected)
    assert not _writer_threads()


def test_background_writer_rejects_negative_size():
    with pytest.raises(ValueError, match="maxsize"):
        BackgroundWriter(-1)


@pytest.mark.parametrize("fail_at", [0, 5])  # first write: raised by a later put(); last write: raised at exit
@pytest.mark.parametrize("maxsize", [0, 2])
def test_background_writer_error_propagates_and_leaves_no_artifact(tmp_path, monkeypatch, fail_at, maxsize):
    real = store._write
    calls = []

    def failing(array, index, value):
        calls.append(index)
        if index == fail_at:
            raise OSError("disk full")
        real(array, index, value)

    monkeypatch.setattr(store, "_write", failing)
    path = tmp_path / "v.zarr"
    with pytest.raises(OSError, match="disk full") as info:
        with ArtifactWriter(path, stage="flow") as w, BackgroundWriter(maxsize) as bg:
            arr = w.create_array("forward", shape=(6, 3, 4, 2), dtype="float16")
            for t in range(6):
                bg.put(arr, t, np.ones((3, 4, 2), np.float32))
    if maxsize:
        assert any("background Zarr writer" in note for note in info.value.__notes__)
        assert calls[0] == 0 and (fail_at == 5 or calls == [0])  # writes after a failure are skipped
    assert not path.exists() and os.listdir(tmp_path) == []
    assert not _writer_threads()


def test_background_writer_drops_pending_writes_on_caller_error(tmp_path):
    path = tmp_path / "v.zarr"
    with pytest.raises(KeyError):
        with ArtifactWriter(path, stage="flow") as w, BackgroundWriter(2) as bg:
            arr = w.create_array("forward", shape=(3, 3, 4, 2), dtype="float16")
            bg.put(arr, 0, np.ones((3, 4, 2), np.float32))
            raise KeyError("caller")
    assert os.listdir(tmp_path) == [] and not _writer_threads()


def _with_snakemake_marker(tmp_path):
    path = tmp_path / "v.zarr"
    with ArtifactWriter(path, stage="flow") as w:
        w.write_array("gap_1/forward", np.zeros((2, 3, 4, 2), np.float16))
    (path / ".snakemake_timestamp").touch()  # what Snakemake writes into a directory() output
    return path


def test_snakemake_marker_gives_no_warning(tmp_path, recwarn):
    path = _with_snakemake_marker(tmp_path)
    warnings.simplefilter("always")
    group = open_artifact(path, "flow")
    assert [name for name, _ in group.members(max_depth=None)] == ["gap_1", "gap_1/forward"]
    assert "gap_1/forward: shape=(2, 3, 4, 2)" in describe(path)
    assert not [str(w.message) for w in recwarn]
    # only that marker is hidden: another stray file still gets zarr's warning
    (path / "stray.txt").write_text("x")
    list(open_artifact(path).members())
    assert any("stray.txt" in str(w.message) for w in recwarn)


def test_inspect_cli_prints_no_warning_for_snakemake_marker(tmp_path):
    path = _with_snakemake_marker(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-W", "always::UserWarning", "-m", "wsvis.cli", "inspect", str(path)],
        capture_output=True, text=True, check=True,
    )
    assert "gap_1/forward: shape=(2, 3, 4, 2)" in proc.stdout
    assert proc.stderr == ""
