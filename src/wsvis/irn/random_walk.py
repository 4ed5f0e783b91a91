"""Sparse random walk on boundary-derived affinities (IRN §4.2, "Synthesizing instance segmentation labels").

IRN propagates each instance-wise CAM with a random walk whose transition
probabilities come from the class-boundary map:

* a_ij = 1 − max_{k ∈ Π_ij} B(k) for all pixel pairs within ``radius`` on the
  stride-4 grid, both directions, plus the self-loop a_ii = 1 (flowIRN Eq. 1);
* A^{∘β} (element-wise power, β = 10);
* IRN normalises **columns**: T = A^{∘β} S⁻¹ with S_jj = Σ_i a_ij^β, so every
  column of T sums to 1, and propagates a row vector: x ← x · T. Because A is
  symmetric, x · T = (S⁻¹ A^{∘β}) x — the paper's T = S⁻¹A^{∘β} (row sums 1)
  applied as a matrix-vector product; the two write-ups are the same walk.
  Each step replaces a pixel's value with the affinity-weighted mean of its
  neighbourhood, so a constant map is a fixed point;
* vec(M*) = vec(M ⊙ (1 − B)) · T^(2^exp_times).

IRN builds the dense (hw)² matrix and squares it ``exp_times`` times. Here T
is a ``scipy.sparse.csr_matrix`` with at most ``hw · (2P + 1)`` non-zeros (P
half-plane offsets, 34 for radius 5) and the walk is 2^exp_times sparse
products with the (hw, K) block of maps: memory O(hw · P), no dense (hw)²
matrix. :func:`dense_random_walk` is the dense reference for tests and the
benchmark only (``benchmarks/random_walk.py``).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import scipy.sparse as sp

from wsvis.irn.pairs import offset_path, search_offsets

__all__ = ["pair_affinities", "transition_matrix", "random_walk", "dense_random_walk"]


def pair_affinities(boundary: np.ndarray, radius: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Affinities of all unordered pairs within ``radius`` whose both ends are on the grid.

    Args:
        boundary: (h, w) float boundary probability on the stride-4 grid.
        radius: pairs with 0 < distance < radius (grid pixels).

    Returns:
        ``(i, j, a)``: (M,) int64 flat indices (row-major, y * w + x) of the two
        pixels and (M,) float64 a_ij = 1 − max of B over the path (ends included).
    """
    b = np.asarray(boundary, dtype=np.float64)
    h, w = b.shape
    idx = np.arange(h * w, dtype=np.int64).reshape(h, w)
    ii, jj, aa = [], [], []
    for dy, dx in search_offsets(radius):
        dy, dx = int(dy), int(dx)
        y0, y1 = 0, h - dy
        x0, x1 = max(0, -dx), min(w, w - dx)
        if y1 <= y0 or x1 <= x0:
            continue
        m = b[y0:y1, x0:x1].copy()
        for py, px in offset_path(dy, dx)[1:]:
            np.maximum(m, b[y0 + py : y1 + py, x0 + px : x1 + px], out=m)
        ii.append(idx[y0:y1, x0:x1].ravel())
        jj.append(idx[y0 + dy : y1 + dy, x0 + dx : x1 + dx].ravel())
        aa.append(1.0 - m.ravel())
    if not ii:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(ii), np.concatenate(jj), np.concatenate(aa)


def transition_matrix(
    boundary: np.ndarray, radius: int = 5, beta: float = 10, dtype: type = np.float32
) -> sp.csr_matrix:
    """IRN's column-normalised transition matrix T = A^{∘β} S⁻¹ as a sparse matrix.

    Args:
        boundary: (h, w) boundary probability B in [0, 1] on the stride-4 grid.
        radius: neighbourhood radius in grid pixels (IRN: 5 for the walk).
        beta: β (IRN: 10).
        dtype: dtype of the stored values.

    Returns:
        (hw, hw) ``csr_matrix``; T[i, j] = a_ij^β / Σ_k a_kj^β for pairs within
        ``radius`` (both directions) and the self-loop (a_ii = 1); every column
        sums to 1. Flat index = y * w + x. nnz <= hw · (2P + 1).
    """
    h, w = np.asarray(boundary).shape
    n = h * w
    i, j, a = pair_affinities(boundary, radius)
    a = np.power(np.clip(a, 0.0, 1.0), beta)
    diag = np.arange(n, dtype=np.int64)
    rows = np.concatenate([i, j, diag])
    cols = np.concatenate([j, i, diag])
    vals = np.concatenate([a, a, np.ones(n)])
    colsum = np.bincount(cols, weights=vals, minlength=n)
    vals = vals / colsum[cols]
    return sp.csr_matrix((vals.astype(dtype), (rows, cols)), shape=(n, n))


def _prepare(x: np.ndarray, boundary: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    x = np.asarray(x, dtype=np.float64)
    b = np.asarray(boundary, dtype=np.float64)
    if x.shape[-2:] != b.shape:
        raise ValueError(f"maps {x.shape} and boundary {b.shape} are on different grids")
    k = x.shape[0]
    return (x * (1.0 - b)).reshape(k, -1), x.shape


def random_walk(
    x: np.ndarray, boundary: np.ndarray, *, radius: int = 5, beta: float = 10, exp_times: int = 8
) -> np.ndarray:
    """Propagate maps with T^(2^exp_times) (IRN ``propagate_to_edge``), sparse.

    Args:
        x: (K, h, w) non-negative maps on the stride-4 grid (instance-wise CAMs).
        boundary: (h, w) boundary probability B.
        radius, beta: of :func:`transition_matrix`.
        exp_times: the walk has 2^exp_times steps (IRN: 8 -> 256).

    Returns:
        (K, h, w) float32: vec(x ⊙ (1 − B)) · T^(2^exp_times).

    Raises:
        ValueError: ``x`` and ``boundary`` on different grids.

    Cost: 2^exp_times sparse products, O(2^exp_times · hw · P · K) time and
    O(hw · P) memory; no dense (hw)² matrix.
    """
    v, shape = _prepare(x, boundary)
    t = transition_matrix(boundary, radius, beta, dtype=np.float32)
    # x · T  ==  T^T · x^T ; T^T as CSR is row-major for the product. The products run in
    # torch's sparse CSR kernel: for K > 1 maps it is 5-7x faster than scipy's csr_matvecs
    # (measured at 60x107, K = 10 and 30) and uses both cores.
    tt = t.T.tocsr()
    cur = torch.from_numpy(np.ascontiguousarray(v.T, dtype=np.float32))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        op = torch.sparse_csr_tensor(
            torch.from_numpy(tt.indptr.astype(np.int64)),
            torch.from_numpy(tt.indices.astype(np.int64)),
            torch.from_numpy(tt.data),
            size=tt.shape,
            check_invariants=False,  # built by scipy, valid by construction
        )
        for _ in range(2**exp_times):
            cur = op @ cur
    return np.ascontiguousarray(cur.numpy().T).reshape(shape).astype(np.float32)


def dense_random_walk(
    x: np.ndarray,
    boundary: np.ndarray,
    *,
    radius: int = 5,
    beta: float = 10,
    exp_times: int = 8,
    method: str = "square",
    dtype: type = np.float64,
) -> np.ndarray:
    """Dense reference of :func:`random_walk` — for tests and benchmarks only (O((hw)²) memory).

    ``method="square"`` squares the dense T ``exp_times`` times as IRN
    (``to_transition_matrix``), ``"matvec"`` does 2^exp_times dense
    matrix-vector products. ``dtype`` of the dense matrix (float64; float32
    halves the memory of large benchmarks).
    """
    v, shape = _prepare(x, boundary)
    v = v.astype(dtype)
    t = transition_matrix(boundary, radius, beta, dtype=dtype).toarray()
    if method == "square":
        for _ in range(exp_times):
            t = t @ t
        out = v @ t
    elif method == "matvec":
        out = v
        for _ in range(2**exp_times):
            out = out @ t
    else:
        raise ValueError(f"method must be 'square' or 'matvec', got {method!r}")
    return out.reshape(shape).astype(np.float32)
