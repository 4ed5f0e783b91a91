"""Building blocks of the per-video picture sheets: tiles, captions, labels, frame choice, PNG writing.

Every sheet (flow overview, CAM and pseudo-label overlays) is rows of
fixed-width tiles, one row per evenly spaced frame, captioned white on black.
Overlay sheets put the tile caption in its own strip above the picture
(:func:`titled`) and place in-picture labels with :func:`place_labels`, so no
label prints over another.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from wsvis.io.store import atomic_file

__all__ = ["write_png", "tile", "titled", "caption", "spaced", "label_size", "place_labels", "draw_label", "STRIP_H"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_SCALE = 0.4  # font scale of every caption and label (about 9 px cap height)

#: Height in pixels of the caption strip :func:`titled` puts above a tile.
STRIP_H = 18
#: Padding in pixels around a label's text inside its background box; the swatch is the colour square's width.
_PAD, _SWATCH = 2, 6

Box = tuple[int, int, int, int]


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB picture to ``path`` atomically.

    Raises:
        OSError: OpenCV could not encode or write it.
    """
    with atomic_file(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{path}: OpenCV could not write the picture")


def caption(img: np.ndarray, text: str, org: tuple[int, int] = (4, 14), color=(255, 255, 255)) -> None:
    """Draw outlined text (black border) at ``org`` = (x, baseline y) pixels, in place."""
    cv2.putText(img, text, org, _FONT, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, _FONT, 0.4, tuple(int(c) for c in color), 1, cv2.LINE_AA)


def tile(img: np.ndarray, width: int, label: str | None = None) -> np.ndarray:
    """Resize an (H, W, 3) uint8 picture to ``width`` pixels wide (aspect kept), captioned with ``label``."""
    h = max(1, round(img.shape[0] * width / img.shape[1]))
    out = cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA)
    if label:
        caption(out, label)
    return out


def titled(img: np.ndarray, width: int, label: str) -> np.ndarray:
    """Resize like :func:`tile`, then put ``label`` in a black strip of :data:`STRIP_H` pixels above the picture.

    The caption never covers the picture (or a label drawn in it); a caption
    wider than the tile is shrunk to fit (font scale down to 0.3), then cut.

    Returns:
        (STRIP_H + h, width, 3) uint8 RGB, h = the resized picture's height.
    """
    body = tile(img, width)
    strip = np.zeros((STRIP_H, width, 3), np.uint8)
    scale = _SCALE
    while scale > 0.3 and cv2.getTextSize(label, _FONT, scale, 1)[0][0] > width - 8:
        scale -= 0.02
    cv2.putText(strip, label, (4, STRIP_H - 5), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([strip, body])


def label_size(text: str) -> tuple[int, int]:
    """(width, height) in pixels of the box :func:`draw_label` draws for ``text`` (text, padding, colour swatch)."""
    (tw, th), base = cv2.getTextSize(text, _FONT, _SCALE, 1)
    return tw + _SWATCH + 3 * _PAD, th + base + 2 * _PAD


def _overlap(a: Box, b: Box) -> int:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0, w) * max(0, h)


def place_labels(anchors: list[tuple[int, int]], sizes: list[tuple[int, int]], bounds: tuple[int, int]) -> list[Box]:
    """Boxes for labels that prefer their anchors but never overlap each other (pure geometry).

    Labels are placed in the given order. Each goes at its anchor (its box's
    preferred top-left corner), moved inside the picture; if that box meets an
    already placed one, it moves up or down to the nearest free slot of its
    column (stacked against the box it met; ties go down). Only when no slot
    of the column is free (more labels than the picture has rows for) is the
    box with the least overlap taken.

    Args:
        anchors: preferred (x, y) top-left corners, pixels.
        sizes: (width, height) of each label's box, pixels (:func:`label_size`).
        bounds: (W, H) of the picture, pixels.

    Returns:
        One box per label, (x0, y0, x1, y1) pixels, half-open (x1, y1 excluded),
        inside ``[0, W] x [0, H]`` where the label fits.

    Raises:
        ValueError: ``anchors`` and ``sizes`` differ in length.
    """
    if len(anchors) != len(sizes):
        raise ValueError(f"{len(anchors)} anchors but {len(sizes)} label sizes")
    big_w, big_h = bounds
    placed: list[Box] = []
    for (ax, ay), (w, h) in zip(anchors, sizes):
        x = int(min(max(0, ax), max(0, big_w - w)))
        y0 = int(min(max(0, ay), max(0, big_h - h)))
        # the nearest free slot is at the anchor, at a picture edge, or touching a placed box's top or bottom
        slots = {y0, 0, big_h - h} | {p[3] for p in placed} | {p[1] - h for p in placed}
        slots = sorted((y for y in slots if 0 <= y and y + h <= big_h), key=lambda y: (abs(y - y0), -y)) or [y0]
        candidates = [(x, y, x + w, y + h) for y in slots]
        free = [c for c in candidates if not any(_overlap(c, p) for p in placed)]
        placed.append(free[0] if free else min(candidates, key=lambda c: sum(_overlap(c, p) for p in placed)))
    return placed


def draw_label(img: np.ndarray, text: str, box: Box, color=(255, 255, 255)) -> None:
    """Draw ``text`` in a dark box at ``box`` (from :func:`place_labels`) with a ``color`` swatch, in place.

    Args:
        img: (H, W, 3) uint8 RGB, changed in place.
        text: the label.
        box: (x0, y0, x1, y1) pixels, half-open, sized by :func:`label_size`.
        color: RGB of the swatch (the instance's colour), so the label names its mask.
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(img.shape[1], x1), min(img.shape[0], y1)
    if x1 <= x0 or y1 <= y0:
        return
    # a see-through dark box: readable on any frame, the picture still shows through a little
    img[y0:y1, x0:x1] = (img[y0:y1, x0:x1].astype(np.float32) * 0.25).astype(np.uint8)
    img[y0 + _PAD : y1 - _PAD, x0 + _PAD : min(x1, x0 + _PAD + _SWATCH)] = np.asarray(color, np.uint8)
    base = cv2.getTextSize(text, _FONT, _SCALE, 1)[1]
    cv2.putText(img, text, (x0 + _SWATCH + 2 * _PAD, y1 - _PAD - base), _FONT, _SCALE, (255, 255, 255), 1, cv2.LINE_AA)


def spaced(n: int, k: int) -> list[int]:
    """Up to ``k`` evenly spaced indices in ``[0, n)`` (empty when ``n <= 0``)."""
    if n <= 0:
        return []
    return np.unique(np.linspace(0, n - 1, num=max(1, min(k, n))).round().astype(int)).tolist()
