"""Shared test fixtures: where the real data lives, tiny torch settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
DEMO = REPO / "resources" / "demo"

torch.set_num_threads(2)


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
