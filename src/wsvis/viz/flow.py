"""Pictures of optical flow: one colour-coded field, and a per-video overview sheet."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from wsvis.flow.ops import fb_consistency, flow_to_color
from wsvis.flow.stage import read_flow
from wsvis.io.images import read_image
from wsvis.io.store import open_artifact
from wsvis.viz.sheet import spaced, tile, write_png

__all__ = ["flow_picture", "flow_overview"]


def flow_picture(flow_path: str | os.PathLike, frame: int, gap: int = 1, direction: str = "forward") -> np.ndarray:
    """Colour-code one stored flow field (Middlebury colour wheel).

    Args:
        flow_path: a ``flow/{video}.zarr`` artifact.
        frame: pair index t (forward[t] is frame t -> t+gap, backward[t] is t+gap -> t).
        gap: frame gap delta of the pair.
        direction: ``"forward"`` or ``"backward"``.

    Returns:
        (H, W, 3) uint8 RGB; white is zero motion, hue is direction, saturation is speed
        relative to the field's largest displacement.

    Raises:
        IndexError: ``frame`` outside ``[0, T - gap)`` (the message gives the range).
        KeyError: no flow stored for ``gap``.
    """
    arr = read_flow(flow_path, gap=gap, direction=direction)
    if not 0 <= frame < arr.shape[0]:
        raise IndexError(f"{flow_path}: frame {frame} out of range; stored pairs 0..{arr.shape[0] - 1} for gap {gap}")
    return flow_to_color(np.asarray(arr[frame], dtype=np.float32))


def flow_overview(
    images: list[str], flow_path: str | os.PathLike, out: str | os.PathLike, *, overview_frames: int = 6,
    overview_width: int = 320,
) -> None:
    """Write a PNG sheet: for evenly spaced frames t, the frame, forward flow, backward flow and
    the forward-backward inconsistency (occlusion) mask, using the smallest stored gap.

    Args:
        images: frame paths of the video, in order.
        flow_path: the video's ``flow/{video}.zarr``.
        out: PNG path (written atomically).
        overview_frames: number of rows.
        overview_width: tile width in pixels.

    A video with one frame (no flow pairs) gives a sheet of its frame with a note.
    """
    group = open_artifact(flow_path, "flow")
    gap = min(group.attrs["gaps"])
    fwd, bwd = read_flow(flow_path, gap, "forward"), read_flow(flow_path, gap, "backward")
    n_pairs = fwd.shape[0]
    rows = []
    if n_pairs == 0:
        rows.append(tile(read_image(images[0]), overview_width, f"{Path(images[0]).name}: no flow pairs"))
    for t in spaced(n_pairs, overview_frames):
        f, b = np.asarray(fwd[t], np.float32), np.asarray(bwd[t], np.float32)
        occluded = fb_consistency(f, b)
        occ = np.repeat((occluded * 255).astype(np.uint8)[..., None], 3, axis=2)
        speed = np.linalg.norm(f, axis=-1).max()
        rows.append(
            np.hstack(
                [
                    tile(read_image(images[t]), overview_width, f"frame {t}"),
                    tile(flow_to_color(f), overview_width, f"fwd {t}->{t + gap} max {speed:.1f}px"),
                    tile(flow_to_color(b), overview_width, f"bwd {t + gap}->{t}"),
                    tile(occ, overview_width, f"fb-inconsistent {occluded.mean():.1%}"),
                ]
            )
        )
    write_png(out, np.vstack(rows))
