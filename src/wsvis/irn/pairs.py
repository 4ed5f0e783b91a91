"""Pixel pairs within a radius on the stride-4 grid, their line paths, and the IRN pair sets.

IRN (Ahn et al., CVPR 2019, §3.1-3.2) trains on every pair (i, j) of pixels of
the stride-4 feature grid with ``0 < ||x_i - x_j|| < γ`` (γ = ``radius``, 10 in
training, 5 for the random walk). A pair is unordered, so it is listed once:
by its **offset** ``o = (dy, dx) = x_j - x_i`` taken from the half-plane
``dy > 0 or (dy == 0 and dx > 0)``. Every per-pair tensor in :mod:`wsvis.irn`
is laid out ``(..., P, h, w)``: entry ``[p, y, x]`` is the pair
``i = (y, x)``, ``j = (y + dy_p, x + dx_p)``; it is meaningless (and masked
out) where ``j`` falls outside the grid.

The **path** Π_ij of an offset (flowIRN Eq. 1; IRN's ``PathIndex``) is the set
of grid pixels on the segment from ``i`` to ``j``, both ends included: the
segment sampled at ``max(|dy|, |dx|) + 1`` evenly spaced points, rounded to the
nearest pixel (a digital line, as Bresenham's). Paths are stored relative to
``i``.

Pair sets from a label map ``L`` (0 background, 1..C classes, 255 unsure):
P⁺_fg = both labelled the same class > 0; P⁺_bg = both 0; P⁻ = labels differ
and neither is 255 (IRN ``GetAffinityLabelFromIndices``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

__all__ = ["IGNORE", "search_offsets", "offset_path", "paths_for", "shift", "pair_sets", "pair_valid"]

IGNORE = 255


@lru_cache(maxsize=None)
def _offsets(radius: int) -> tuple[tuple[int, int], ...]:
    out = []
    for dy in range(0, radius):
        for dx in range(-radius + 1, radius):
            if dy == 0 and dx <= 0:
                continue
            if dy * dy + dx * dx < radius * radius:
                out.append((dy, dx))
    return tuple(out)


def search_offsets(radius: int) -> np.ndarray:
    """Half-plane offsets ``(dy, dx)`` with ``0 < dy² + dx² < radius²``, each unordered pair once.

    Args:
        radius: γ in stride-4 grid pixels (>= 2 to give any pair).

    Returns:
        (P, 2) int64 array, ordered by dy then dx. radius 10 -> P = 152, radius 5 -> P = 34.

    Raises:
        ValueError: ``radius < 2``.
    """
    if radius < 2:
        raise ValueError(f"radius must be >= 2 grid pixels, got {radius}")
    return np.asarray(_offsets(int(radius)), dtype=np.int64)


def offset_path(dy: int, dx: int) -> np.ndarray:
    """Pixels on the segment from (0, 0) to (dy, dx), both ends included.

    Returns:
        (L, 2) int64 array of (y, x) relative to the pair's first pixel, L = max(|dy|, |dx|) + 1,
        without repeats.
    """
    n = max(abs(dy), abs(dx))
    t = np.linspace(0.0, 1.0, n + 1)
    # round half away from zero, symmetric in the sign of the offset
    ys = np.sign(dy * t) * np.floor(np.abs(dy * t) + 0.5)
    xs = np.sign(dx * t) * np.floor(np.abs(dx * t) + 0.5)
    pts = np.stack([ys, xs], 1).astype(np.int64)
    _, first = np.unique(pts, axis=0, return_index=True)
    return pts[np.sort(first)]


def paths_for(offsets: np.ndarray) -> list[np.ndarray]:
    """:func:`offset_path` of every row of ``offsets`` (P, 2)."""
    return [offset_path(int(dy), int(dx)) for dy, dx in offsets]


def shift(x: torch.Tensor, dy: int, dx: int, fill: float | int = 0) -> torch.Tensor:
    """Value at ``(y + dy, x + dx)`` on the grid of ``(y, x)``: ``out[..., y, x] = x[..., y+dy, x+dx]``.

    Positions whose source is outside the grid get ``fill``. Works on any
    tensor whose last two axes are (h, w); differentiable.
    """
    h, w = x.shape[-2:]
    out = torch.full_like(x, fill)
    ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
    xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
    if ys.stop > ys.start and xs.stop > xs.start:
        out[..., yd, xd] = x[..., ys, xs]
    return out


def pair_valid(valid: torch.Tensor, offsets: np.ndarray) -> torch.Tensor:
    """Pairs whose both pixels are inside the grid and where ``valid`` holds.

    Args:
        valid: (N, h, w) bool (True = usable pixel; e.g. not crop padding).
        offsets: (P, 2) from :func:`search_offsets`.

    Returns:
        (N, P, h, w) bool.
    """
    return torch.stack([valid & shift(valid, int(dy), int(dx), False) for dy, dx in offsets], 1)


def pair_sets(label: torch.Tensor | np.ndarray, offsets: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """IRN's pair sets P⁺_fg, P⁺_bg, P⁻ from a label map on the stride-4 grid.

    Args:
        label: (h, w) or (N, h, w) integer labels: 0 background, c+1 for class
            index c, 255 unsure / padding.
        offsets: (P, 2) from :func:`search_offsets`.

    Returns:
        ``(fg_pos, bg_pos, neg)``, each (P, h, w) — or (N, P, h, w) for a
        batched label — bool; pairs whose second pixel is off the grid are False.
    """
    label = torch.as_tensor(np.asarray(label) if not isinstance(label, torch.Tensor) else label).long()
    squeeze = label.ndim == 2
    if squeeze:
        label = label[None]
    fg, bg, neg = [], [], []
    known_i = label != IGNORE
    for dy, dx in offsets:
        lj = shift(label, int(dy), int(dx), IGNORE)
        both = known_i & (lj != IGNORE)
        same = both & (label == lj)
        fg.append(same & (label > 0))
        bg.append(same & (label == 0))
        neg.append(both & (label != lj))
    out = tuple(torch.stack(s, 1) for s in (fg, bg, neg))
    return tuple(s[0] for s in out) if squeeze else out  # type: ignore[return-value]
