"""Flow-amplified CAMs, flowIRN Eq. 2 (Liu et al., "Weakly Supervised Instance
Segmentation for Videos with Temporal Mask Consistency", CVPR 2021, §3.2):

    f-CAM_c(x) = CAM_c(x) * A ** 1[ ||F(x)||_2 > T ]

with A the amplification coefficient and T the ``percentile``-th percentile of
the flow magnitude over the frame. The same factor multiplies every class, so
the arg-max class of a pixel never changes; only the foreground/background
decision (a threshold on the maximum CAM) does.

Resolution: the magnitude ||F|| is computed at flow (frame) resolution, then
resized to the CAM grid with ``cv2.INTER_AREA`` (the mean magnitude over each
CAM cell's footprint; exactly the 4x4 block mean when H and W are multiples
of 4). T is the percentile of that resized magnitude map, the map Eq. 2 is
applied on, so about ``100 - percentile`` % of CAM cells are amplified.

Ties: the indicator is strict (``>``), as in Eq. 2, so cells whose magnitude
equals T are not amplified; a spatially constant magnitude amplifies nothing.

``compensate_camera`` is **our addition**, not in the paper: subtract the
frame's median flow vector (per component, at flow resolution) before taking
the magnitude, a crude removal of dominant camera motion (a pure pan then
amplifies nothing).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["flow_amplified_cam", "flow_magnitude", "FCAM_PRESETS"]

#: flowIRN §4.2 settings per dataset.
FCAM_PRESETS: dict[str, dict[str, float]] = {
    "ytvis": {"amplification": 2.0, "percentile": 80.0},
    "cityscapes": {"amplification": 5.0, "percentile": 50.0},
}


def flow_magnitude(flow: np.ndarray, size: tuple[int, int] | None = None, compensate_camera: bool = False) -> np.ndarray:
    """||F||_2 of a flow field, optionally resized to ``size``.

    Args:
        flow: (H, W, 2) float flow in pixels (float16 accepted).
        size: (h, w) output grid; ``None`` keeps (H, W). Resized with ``cv2.INTER_AREA``.
        compensate_camera: subtract the median flow vector first (our addition).

    Returns:
        (h, w) float32 magnitude in pixels (of the full-resolution flow).

    Raises:
        ValueError: not an (H, W, 2) array.
    """
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got shape {flow.shape}")
    f = flow.astype(np.float32)
    if compensate_camera:
        f = f - np.median(f.reshape(-1, 2), axis=0)
    mag = np.sqrt((f * f).sum(axis=2))
    if size is not None and tuple(size) != mag.shape:
        mag = cv2.resize(mag, (int(size[1]), int(size[0])), interpolation=cv2.INTER_AREA)
    return mag


def flow_amplified_cam(
    cam: np.ndarray,
    flow: np.ndarray,
    amplification: float = 2.0,
    percentile: float = 80.0,
    compensate_camera: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """flowIRN Eq. 2: amplify the CAMs of all classes by A where the flow is large.

    Args:
        cam: (C, h, w) float CAMs (e.g. :func:`wsvis.cam.infer.make_cams`).
        flow: (H, W, 2) float flow of the same frame in pixels (x, y), any
            resolution (usually the frame's); see the module docstring.
        amplification: A (YTVIS 2, Cityscapes 5; :data:`FCAM_PRESETS`).
        percentile: T is this percentile (0-100) of the magnitude over the
            frame (YTVIS 80, Cityscapes 50).
        compensate_camera: subtract the median flow first (our addition).

    Returns:
        ``(fcam, moving)``: (C, h, w) float32 f-CAMs and the (h, w) bool mask
        of amplified cells (``||F|| > T``).

    Raises:
        ValueError: bad shapes or ``percentile`` outside [0, 100].
    """
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 3:
        raise ValueError(f"cam must be (C, h, w), got shape {cam.shape}")
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    mag = flow_magnitude(flow, cam.shape[1:], compensate_camera)
    threshold = np.percentile(mag, percentile)
    moving = mag > threshold
    factor = np.where(moving, np.float32(amplification), np.float32(1.0))
    return cam * factor[None], moving
