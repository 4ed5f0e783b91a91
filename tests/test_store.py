"""Zarr artifact store: round trip, attrs, atomicity against exceptions and SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from wsvis.io.store import ArtifactError, ArtifactWriter, atomic_file, describe, open_artifact


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

