"""Sparse vs dense random walk (IRN §4.2) at 1/4 resolution of 854x480, then sparse at 1280x720.

Inputs: a synthetic but realistic stride-4 scene — four overlapping ellipses
(objects) on a background; the boundary map B is their outline blurred
(Gaussian, σ = 1 grid px) plus weak texture noise (B ≈ 0.05-0.2 inside
regions, up to ~0.9 on outlines); K = 3 instance-wise CAMs are smooth peaks
masked to three of the objects. Settings: radius 5, β = 10, exp_times 8
(2^8 = 256 steps).

* sparse: :func:`wsvis.irn.random_walk.random_walk` (CSR T, 256 sparse products);
* dense: :func:`wsvis.irn.random_walk.dense_random_walk` with
  ``method="matvec"`` in float32 — the dense (hw)² matrix and 256 dense
  matrix-vector products. IRN instead squares the dense matrix 8 times,
  O((hw)³) = ~1.7e13 flops per squaring at 214x120, hours on 2 cores, so the
  baseline here is the faster dense variant.

Each method runs in its own subprocess; time is wall time of the walk
(including building T); memory is the peak resident set (ru_maxrss) of that
subprocess minus its resident set after the inputs were made. Reported: the
largest difference of the argmax labels (fraction of pixels whose argmax over
{bg 0.25, K maps normalised by their max} differs) and the max abs difference
of the propagated maps (normalised by the global max).

    python benchmarks/random_walk.py [--threads 2] [--skip-dense]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def scene(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(K=3, h, w) instance CAMs and (h, w) boundary map on a stride-4 grid."""
    import scipy.ndimage as ndi

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    label = np.zeros((h, w), np.int64)
    objects = [(0.45, 0.25, 0.25, 0.14), (0.55, 0.45, 0.3, 0.16), (0.5, 0.75, 0.28, 0.12), (0.2, 0.6, 0.1, 0.08)]
    for k, (cy, cx, ry, rx) in enumerate(objects, 1):
        label[((yy / h - cy) / ry) ** 2 + ((xx / w - cx) / rx) ** 2 < 1] = k
    edge = np.zeros((h, w))
    edge[:, :-1] += label[:, :-1] != label[:, 1:]
    edge[:-1, :] += label[:-1, :] != label[1:, :]
    boundary = ndi.gaussian_filter(np.minimum(edge, 1.0), 1.0) * 2.2
    boundary += 0.05 + 0.15 * ndi.gaussian_filter(rng.random((h, w)), 2.0)
    boundary = np.clip(boundary, 0, 0.95)
    cams = []
    for k, (cy, cx, ry, rx) in enumerate(objects[:3], 1):
        peak = np.exp(-(((yy / h - cy) / (ry * 0.6)) ** 2 + ((xx / w - cx) / (rx * 0.6)) ** 2))
        cams.append(peak * (label == k))
    return np.stack(cams), boundary


def worker(method: str, h: int, w: int, out: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from wsvis.irn.random_walk import dense_random_walk, random_walk

    x, b = scene(h, w)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if method == "sparse":
        y = random_walk(x, b, radius=5, beta=10, exp_times=8)
    else:
        y = dense_random_walk(x, b, radius=5, beta=10, exp_times=8, method="matvec", dtype=np.float32)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    np.save(out, y)
    print(json.dumps({"seconds": seconds, "peak_mb": (peak - base) / 1024}))


def run(method: str, h: int, w: int, threads: int, tmp: Path) -> tuple[dict, np.ndarray]:
    out = tmp / f"{method}_{h}x{w}.npy"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    res = subprocess.run(
        [sys.executable, __file__, "--worker", method, "--grid", str(h), str(w), "--out", str(out), "--threads", str(threads)],
        check=True, capture_output=True, text=True, env=env,
    )
    return json.loads(res.stdout.strip().splitlines()[-1]), np.load(out)


def labels(y: np.ndarray, bg: float = 0.25) -> np.ndarray:
    y = y / y.max()
    return np.concatenate([np.full((1, *y.shape[1:]), bg), y]).argmax(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-dense", action="store_true")
    parser.add_argument("--worker", choices=["sparse", "dense"])
    parser.add_argument("--grid", type=int, nargs=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, *args.grid, args.out, args.threads)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        h, w = 120, 214
        s, ys = run("sparse", h, w, args.threads, tmp)
        print(f"grid {w}x{h} (854x480 / 4), K=3, radius 5, beta 10, 256 steps, {args.threads} threads")
        print(f"  sparse: {s['seconds']:.2f} s, peak +{s['peak_mb']:.0f} MB")
        if not args.skip_dense:
            d, yd = run("dense", h, w, args.threads, tmp)
            print(f"  dense (float32, 256 mat-vec): {d['seconds']:.1f} s, peak +{d['peak_mb']:.0f} MB")
            scale = max(ys.max(), yd.max())
            diff = float(np.abs(ys - yd).max() / scale)
            frac = float((labels(ys) != labels(yd)).mean())
            print(f"  max |sparse - dense| / max = {diff:.2e}; argmax labels differing: {frac:.2e} of pixels")
        s2, _ = run("sparse", 180, 320, args.threads, tmp)
        print(f"grid 320x180 (1280x720 / 4): sparse {s2['seconds']:.2f} s, peak +{s2['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
