"""Shared test fixtures: where the real data lives, tiny torch settings."""

from __future__ import annotations

from pathlib import Path

import pytest

import wsvis  # noqa: F401  (before torch: sets MKL_CBWR, see wsvis/__init__.py)
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
DEMO = REPO / "resources" / "demo"

torch.set_num_threads(2)


def assert_two_runs_identical(train) -> None:
    """Run ``train(name)`` (a full training into ``name``, returning its model.pt path) for "a" and
    "b": every forward runs in torch's deterministic mode, the mode is off afterwards, and the two
    state_dicts are bit-identical."""
    modes = set()
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda *_: modes.add(torch.are_deterministic_algorithms_enabled()))
    try:
        a, b = (torch.load(train(d), weights_only=True)["model"] for d in ("a", "b"))
    finally:
        hook.remove()
    assert modes == {True} and not torch.are_deterministic_algorithms_enabled()  # on while training, then restored
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def shared(*parts: str) -> Path:
    """Path under ../shared/data; skips the test when that folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path


@pytest.fixture
def davis2016() -> Path:
    return shared("davis2016")


@pytest.fixture
def davis_composites() -> Path:
    return shared("davis_composites")


@pytest.fixture
def sintel() -> Path:
    return shared("sintel")


def build_composite_gt(tmp: Path, frames: dict[str, int]) -> dict:
    """gt.json of the first ``frames[video]`` frames of real composite videos, built the way the
    workflow builds it (make_reader -> ingest_video -> merge_manifest)."""
    import json
    import shutil

    from wsvis.io.datasets import make_reader
    from wsvis.io.manifest import ingest_video, merge_manifest

    src = shared("davis_composites")
    root = tmp / "data"
    for video, n in frames.items():
        for sub, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
            (root / sub / video).mkdir(parents=True)
            for t in range(n):
                shutil.copy(src / sub / video / f"{t:05d}.{ext}", root / sub / video / f"{t:05d}.{ext}")
    shutil.copy(src / "instances.csv", root / "instances.csv")
    reader = make_reader("davis", root=root, classes_csv=root / "instances.csv")
    out = tmp / "results"
    tables, gts = [], []
    for v in reader.list_videos():
        ingest_video(reader, v, out / f"{v}.parquet", out / f"{v}.json", split="val")
        tables.append(out / f"{v}.parquet")
        gts.append(out / f"{v}.json")
    merge_manifest(tables, gts, reader.categories(), out / "manifest.parquet", out / "gt.json")
    return json.loads((out / "gt.json").read_text())
