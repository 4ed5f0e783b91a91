"""Optical-flow and float-image file formats: Middlebury ``.flo`` and ``.pfm``.

* ``.flo`` (Middlebury, Baker et al. IJCV 2011; also MPI-Sintel, FlyingChairs):
  little-endian float32 magic ``202021.25`` (the bytes ``PIEH``), int32 width,
  int32 height, then ``height * width * 2`` float32 values, row-major, u (x
  displacement) and v (y displacement) interleaved, in pixels.
* ``.pfm`` (Portable Float Map, used by FlyingThings3D): a text header
  ``PF`` (3 channels) or ``Pf`` (1 channel), ``width height``, and a scale whose
  sign gives the byte order (negative = little-endian); then float32 rows stored
  bottom-to-top.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["FLO_MAGIC", "read_flo", "write_flo", "read_pfm"]

#: Middlebury ``.flo`` tag (float32 202021.25, the bytes ``b"PIEH"``).
FLO_MAGIC = np.float32(202021.25)


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a Middlebury ``.flo`` file.

    Args:
        path: the ``.flo`` file.

    Returns:
        (H, W, 2) float32 flow in pixels, x (u) then y (v).

    Raises:
        ValueError: the file (named in the message) has a wrong magic number,
            a non-positive size, or a payload length that does not match its
            header.
        OSError: the file cannot be read.
    """
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 12:
        raise ValueError(f"{path}: too short for a .flo file ({len(data)} bytes)")
    magic = np.frombuffer(data, "<f4", count=1)[0]
    if magic != FLO_MAGIC:
        raise ValueError(f"{path}: bad .flo magic {magic!r} (expected 202021.25)")
    w, h = (int(v) for v in np.frombuffer(data, "<i4", count=2, offset=4))
    if w <= 0 or h <= 0:
        raise ValueError(f"{path}: bad .flo size {w}x{h}")
    expected = 12 + h * w * 2 * 4
    if len(data) != expected:
        raise ValueError(f"{path}: .flo payload is {len(data)} bytes, header {w}x{h} needs {expected}")
    return np.frombuffer(data, "<f4", offset=12).reshape(h, w, 2).astype(np.float32)


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Write (H, W, 2) flow (pixels, x then y) as a Middlebury ``.flo`` file (float32).

    Raises:
        ValueError: ``flow`` is not (H, W, 2).
    """
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got {flow.shape}")
    h, w = flow.shape[:2]
    with open(path, "wb") as f:
        f.write(np.asarray(FLO_MAGIC, "<f4").tobytes())
        f.write(np.array([w, h], "<i4").tobytes())
        f.write(np.ascontiguousarray(flow, "<f4").tobytes())


def read_pfm(path: str | os.PathLike) -> np.ndarray:
    """Read a Portable Float Map.

    Returns:
        (H, W) float32 for ``Pf`` files, (H, W, 3) float32 for ``PF`` files, top
        row first (PFM stores rows bottom-to-top; they are flipped here). The
        header scale's magnitude is not applied (it is a format hint only).

    Raises:
        ValueError: the file (named) has a bad header or payload length.
    """
    path = Path(path)
    with open(path, "rb") as f:
        kind = f.readline().strip()
        if kind not in (b"PF", b"Pf"):
            raise ValueError(f"{path}: not a PFM file (header {kind[:10]!r})")
        dims = f.readline().split()
        while dims and dims[0].startswith(b"#"):
            dims = f.readline().split()
        try:
            w, h = int(dims[0]), int(dims[1])
            scale = float(f.readline().strip())
        except (IndexError, ValueError) as exc:
            raise ValueError(f"{path}: bad PFM header ({exc})") from exc
        payload = f.read()
    channels = 3 if kind == b"PF" else 1
    dtype = "<f4" if scale < 0 else ">f4"
    count = h * w * channels
    if len(payload) < count * 4:
        raise ValueError(f"{path}: PFM payload is {len(payload)} bytes, header {w}x{h}x{channels} needs {count * 4}")
    shape = (h, w, 3) if channels == 3 else (h, w)
    arr = np.frombuffer(payload, dtype, count=count).reshape(shape)
    return np.ascontiguousarray(arr[::-1]).astype(np.float32)
