"""Frame and mask decoding with errors that name the file.

Frames are decoded with OpenCV and returned RGB; masks with Pillow, because
OpenCV expands a palette PNG to colours and loses the instance ids.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

__all__ = ["FrameError", "read_image", "read_mask", "image_size"]

_JPEG_EXT = {".jpg", ".jpeg"}


class FrameError(ValueError):
    """A frame or mask file is missing, unreadable, truncated or inconsistent."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to RGB.

    Args:
        path: a JPEG/PNG/PPM/... file.

    Returns:
        (H, W, 3) uint8 RGB array.

    Raises:
        FrameError: the file is missing, empty, not decodable, or a JPEG whose
            end-of-image marker is missing (a truncated file, which OpenCV
            would otherwise decode silently with grey rows at the bottom).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FrameError(f"{path}: cannot read frame ({exc.strerror or exc})") from exc
    if not data:
        raise FrameError(f"{path}: empty frame file")
    if path.suffix.lower() in _JPEG_EXT and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise FrameError(f"{path}: truncated JPEG (no end-of-image marker)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise FrameError(f"{path}: corrupt or unsupported image file")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Decode an annotation PNG to its pixel values.

    Palette ('P') and grey ('L', '1', 'I;16') images give their stored values
    (instance ids for DAVIS 2017 style palette masks, {0, 255} for DAVIS 2016).

    Returns:
        (H, W) array, uint8 or uint16.

    Raises:
        FrameError: missing, unreadable or colour (RGB) mask file.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGB", "RGBA"):
                raise FrameError(f"{path}: colour mask (mode {im.mode}); expected palette or grey PNG")
            arr = np.array(im)
    except FrameError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise FrameError(f"{path}: cannot read mask ({exc})") from exc
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype not in (np.uint8, np.uint16):
        arr = arr.astype(np.uint16)
    return arr


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """Return ``(height, width)`` in pixels by decoding ``path`` (see :func:`read_image`)."""
    h, w = read_image(path).shape[:2]
    return h, w
