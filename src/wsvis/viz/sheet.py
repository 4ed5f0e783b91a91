"""Building blocks of the per-video picture sheets: tiles, captions, frame choice, PNG writing.

Every sheet (flow overview, CAM and pseudo-label overlays) is rows of
fixed-width tiles, one row per evenly spaced frame, captioned white on black.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from wsvis.io.store import atomic_file

__all__ = ["write_png", "tile", "caption", "spaced"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX


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


def spaced(n: int, k: int) -> list[int]:
    """Up to ``k`` evenly spaced indices in ``[0, n)`` (empty when ``n <= 0``)."""
    if n <= 0:
        return []
    return np.unique(np.linspace(0, n - 1, num=max(1, min(k, n))).round().astype(int)).tolist()
