"""Sparse random walk (IRN §4.2) against the dense computation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from wsvis.irn.pairs import offset_path, search_offsets
from wsvis.irn.random_walk import dense_random_walk, random_walk, transition_matrix


def _inputs(h=9, w=11, k=3, seed=0):
    rng = np.random.default_rng(seed)
    boundary = rng.random((h, w)) ** 4
    boundary[:, 5] = 0.9  # a wall
    x = rng.random((k, h, w))
    return x, boundary


def _brute_force_matrix(boundary, radius, beta):
    """Loop-by-loop A^{∘β} with self-loops, column-normalised (independent of the vectorised code)."""
    h, w = boundary.shape
    a = np.zeros((h * w, h * w))
    for y in range(h):
        for x in range(w):
            a[y * w + x, y * w + x] = 1.0
            for dy, dx in search_offsets(radius):
                yj, xj = y + dy, x + dx
                if not (0 <= yj < h and 0 <= xj < w):
                    continue
                m = max(boundary[y + py, x + px] for py, px in offset_path(int(dy), int(dx)))
                a[y * w + x, yj * w + xj] = a[yj * w + xj, y * w + x] = (1 - m) ** beta
    return a / a.sum(0, keepdims=True)


def test_transition_matrix_matches_brute_force():
    _, b = _inputs(6, 7)
    t = transition_matrix(b, radius=3, beta=10, dtype=np.float64)
    np.testing.assert_allclose(t.toarray(), _brute_force_matrix(b, 3, 10), atol=1e-12)


def test_sparse_structure_and_column_mass():
    _, b = _inputs(20, 30)
    t = transition_matrix(b, radius=5, beta=10)
    assert isinstance(t, sp.csr_matrix)
    n = b.size
    assert t.shape == (n, n)
    assert t.nnz <= n * (2 * len(search_offsets(5)) + 1)
    np.testing.assert_allclose(np.asarray(t.sum(0)).ravel(), 1.0, atol=1e-5)  # IRN: columns sum to 1


def test_random_walk_equals_dense():
    x, b = _inputs()
    sparse = random_walk(x, b, radius=5, beta=10, exp_times=6)
    dense = dense_random_walk(x, b, radius=5, beta=10, exp_times=6)
    matvec = dense_random_walk(x, b, radius=5, beta=10, exp_times=6, method="matvec")
    assert sparse.shape == x.shape and sparse.dtype == np.float32
    np.testing.assert_allclose(sparse, dense, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(matvec, dense, rtol=1e-6, atol=1e-7)


def test_random_walk_one_step_and_constant_fixed_point():
    x, b = _inputs(5, 6, k=1)
    t = _brute_force_matrix(b, 5, 10)
    one = random_walk(x, b, exp_times=0)
    np.testing.assert_allclose(one.reshape(1, -1), (x * (1 - b)).reshape(1, -1) @ t, rtol=1e-5)
    # x · T with column-stochastic T keeps a constant map constant (when B = 0)
    flat = random_walk(np.full((1, 5, 6), 0.7), np.zeros((5, 6)), exp_times=4)
    np.testing.assert_allclose(flat, 0.7, rtol=1e-5)


def test_wall_stops_propagation():
    h, w = 8, 16
    b = np.zeros((h, w))
    b[:, 8] = 1.0
    x = np.zeros((1, h, w))
    x[0, 4, 2] = 1.0
    out = random_walk(x, b, radius=5, beta=10, exp_times=6)[0]
    assert out[:, :8].sum() > 0 and out[:, 9:].max() == pytest.approx(0.0, abs=1e-7)


def test_grid_mismatch():
    with pytest.raises(ValueError, match="grid"):
        random_walk(np.zeros((1, 3, 4)), np.zeros((3, 5)))
