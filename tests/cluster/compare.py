"""Compare two results folders artifact by artifact: values, not timestamps.

Zarr groups: every array's values, dtype and shape, and the attrs; torch files: every tensor;
parquet and CSV: the table (a ``seconds`` column is wall time and left out); JSON: the object;
images: the decoded pixels; other files: the bytes. Logs, resume checkpoints and Snakemake's
benchmark records are not artifacts and are skipped, and so are the two files that print those
timings (the cost table and the report page that shows it).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import zarr
from PIL import Image

SKIP_DIRS = {"logs", "checkpoints", "benchmarks"}
SKIP_FILES = {"metrics/costs.csv", "report/index.html"}
# Snakemake's directory() marker file inside each Zarr group is not a Zarr node.
warnings.filterwarnings("ignore", message="Object at .snakemake_timestamp")
TIME_COLUMNS = {"seconds"}


def _artifacts(root: Path) -> dict[str, Path]:
    """Relative path -> path of each artifact: a Zarr group counts as one artifact."""
    found: dict[str, Path] = {}
    stack = [root]
    while stack:
        folder = stack.pop()
        for path in sorted(folder.iterdir()):
            if path.name in SKIP_DIRS or path.name.startswith(".") or str(path.relative_to(root)) in SKIP_FILES:
                continue
            if path.is_dir() and not path.name.endswith(".zarr"):
                stack.append(path)
            else:
                found[str(path.relative_to(root))] = path
    return found


def _same_tree(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        if not (isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape):
            return False
        if a.is_floating_point():  # exact, but NaN where the other has NaN (a diverged tiny run)
            return bool(torch.allclose(a, b, rtol=0.0, atol=0.0, equal_nan=True))
        return torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_tree(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same_tree(x, y) for x, y in zip(a, b))
    return a == b


def _zarr_difference(a: Path, b: Path) -> str | None:
    ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    if dict(ga.attrs) != dict(gb.attrs):
        return "attrs differ"
    arrays_a = dict(ga.arrays())
    arrays_b = dict(gb.arrays())
    if arrays_a.keys() != arrays_b.keys():
        return f"arrays {sorted(arrays_a)} vs {sorted(arrays_b)}"
    for name, arr in arrays_a.items():
        other = arrays_b[name]
        if arr.shape != other.shape or arr.dtype != other.dtype:
            return f"{name}: {arr.shape} {arr.dtype} vs {other.shape} {other.dtype}"
        if not np.array_equal(arr[...], other[...], equal_nan=arr.dtype.kind == "f"):
            return f"{name}: values differ"
        if dict(arr.attrs) != dict(other.attrs):
            return f"{name}: attrs differ"
    for name, sub in ga.groups():
        if name not in dict(gb.groups()):
            return f"group {name} missing"
        diff = _zarr_difference(a / name, b / name)
        if diff:
            return f"{name}/{diff}"
    return None


def _difference(a: Path, b: Path) -> str | None:
    suffix = a.suffix.lower()
    if suffix == ".zarr":
        return _zarr_difference(a, b)
    if suffix == ".pt":
        same = _same_tree(torch.load(a, map_location="cpu", weights_only=True),
                          torch.load(b, map_location="cpu", weights_only=True))
        return None if same else "tensors differ"
    if suffix in (".parquet", ".csv"):
        read = pd.read_parquet if suffix == ".parquet" else pd.read_csv
        if min(a.stat().st_size, b.stat().st_size) == 0:  # no table to parse: an empty file
            return None if a.stat().st_size == b.stat().st_size else "one of the two files is empty"
        ta, tb = read(a), read(b)
        ta = ta.drop(columns=[c for c in ta.columns if c in TIME_COLUMNS])
        tb = tb.drop(columns=[c for c in tb.columns if c in TIME_COLUMNS])
        try:
            pd.testing.assert_frame_equal(ta, tb, check_exact=True)
        except AssertionError as err:
            return str(err).splitlines()[0]
        return None
    if suffix == ".json":
        return None if json.loads(a.read_text()) == json.loads(b.read_text()) else "JSON differs"
    if suffix in (".png", ".jpg", ".jpeg"):
        return None if np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b))) else "pixels differ"
    return None if a.read_bytes() == b.read_bytes() else "bytes differ"


def compare_results(reference: Path, other: Path) -> list[str]:
    """Differences between two results folders, one line each (empty: identical artifacts)."""
    ref, oth = _artifacts(reference), _artifacts(other)
    problems = [f"missing: {p}" for p in sorted(ref.keys() - oth.keys())]
    problems += [f"extra: {p}" for p in sorted(oth.keys() - ref.keys())]
    for rel in sorted(ref.keys() & oth.keys()):
        diff = _difference(ref[rel], oth[rel])
        if diff:
            problems.append(f"{rel}: {diff}")
    return problems


if __name__ == "__main__":
    import sys

    found = compare_results(Path(sys.argv[1]), Path(sys.argv[2]))
    print("\n".join(found) or "identical")
    sys.exit(1 if found else 0)
