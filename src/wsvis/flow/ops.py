"""Operations on optical flow: warping, mask warping, forward-backward check, colour coding, EPE.

Conventions used throughout :mod:`wsvis.flow`:

* a flow field is in pixels, x (u, columns) then y (v, rows); image y points down;
* "flow from frame a to frame b" is defined on the pixel grid of frame a:
  pixel ``p`` of a moves to ``p + flow(p)`` in b;
* :func:`backward_warp` samples ``x(p + flow(p))``, so warping an image of
  frame b with the flow a -> b gives an image on frame a's grid.

Functions that take a flow field accept numpy arrays (H, W, 2) and return
numpy; :func:`backward_warp` is the batched torch primitive the others use.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "backward_warp",
    "warp_mask",
    "masks_to_boxes",
    "fb_consistency",
    "flow_to_color",
    "make_color_wheel",
    "end_point_error",
]


def backward_warp(
    x: torch.Tensor,
    flow: torch.Tensor,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Backward-warp ``x`` by ``flow``: ``out(p) = x(p + flow(p))``.

    Implemented with :func:`torch.nn.functional.grid_sample` and
    ``align_corners=True``, so normalised coordinate -1 is the centre of the
    first pixel and +1 the centre of the last one: ``g = 2 * p / (size - 1) - 1``.
    Zero flow reproduces ``x`` (up to float rounding < 1e-6 of its range).

    Args:
        x: (N, C, H, W) float tensor.
        flow: (N, 2, H, W) float tensor, pixels, x then y.
        mode: ``"bilinear"`` or ``"nearest"`` (grid_sample's ``mode``).
        padding_mode: value for samples outside the frame: ``"zeros"``,
            ``"border"`` or ``"reflection"``.

    Returns:
        (N, C, H, W) tensor, dtype of ``x``.

    Raises:
        ValueError: shapes do not match.
    """
    if x.ndim != 4 or flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"expected x (N, C, H, W) and flow (N, 2, H, W), got {tuple(x.shape)} and {tuple(flow.shape)}")
    if flow.shape[0] != x.shape[0] or flow.shape[2:] != x.shape[2:]:
        raise ValueError(f"x {tuple(x.shape)} and flow {tuple(flow.shape)} differ in batch or frame size")
    n, _, h, w = x.shape
    flow = flow.to(x.dtype)
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=x.dtype, device=x.device),
        torch.arange(w, dtype=x.dtype, device=x.device),
        indexing="ij",
    )
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1)  # (N, H, W, 2), x then y as grid_sample wants
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


def _flow_tensor(flow) -> torch.Tensor:
    """(H, W, 2) numpy/torch flow -> (1, 2, H, W) float32 tensor."""
    flow = torch.as_tensor(np.asarray(flow, np.float32) if not torch.is_tensor(flow) else flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got {tuple(flow.shape)}")
    return flow.float().permute(2, 0, 1).unsqueeze(0)


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight boxes of binary masks.

    Args:
        masks: (K, H, W) bool tensor.

    Returns:
        (K, 4) float32 ``x_min, y_min, x_max, y_max`` in pixel indices, max
        inclusive (the convention of :func:`torchvision.ops.masks_to_boxes`).
        An empty mask gets the box ``(0, 0, 0, 0)``.
    """
    k = masks.shape[0]
    boxes = torch.zeros((k, 4), dtype=torch.float32)
    for i in range(k):
        ys, xs = torch.nonzero(masks[i], as_tuple=True)
        if len(xs):
            boxes[i] = torch.stack((xs.min(), ys.min(), xs.max(), ys.max())).float()
    return boxes


def warp_mask(masks, flow_target_to_source, threshold: float = 0.5):
    """Warp instance masks of frame t onto frame t+δ (MaskConsist, Liu et al. CVPR 2021, appendix A.2).

    The masks are warped bilinearly with ``grid_sample`` (as in Spatial
    Transformer Networks), binarised at ``threshold`` (0.5 in the paper), and
    each box is recomputed from its warped mask.

    Args:
        masks: (K, H, W) bool (or {0, 1}) masks on frame t's grid, numpy or torch.
        flow_target_to_source: (H, W, 2) flow in pixels, x then y, from frame
            t+δ back to frame t (the ``backward`` array of the flow artifact for
            pair t), numpy or torch.
        threshold: binarisation threshold on the warped soft mask (warped >= threshold).

    Returns:
        ``(warped_masks, boxes)``: (K, H, W) bool masks on frame t+δ's grid and
        (K, 4) float32 xyxy boxes in pixels (see :func:`masks_to_boxes`: max
        inclusive; an empty warped mask gets ``(0, 0, 0, 0)``). Both are numpy
        arrays when ``masks`` is a numpy array, torch tensors otherwise.
        Pixels that sample outside frame t get 0 (zero padding).

    Raises:
        ValueError: shapes do not match.
    """
    as_numpy = not torch.is_tensor(masks)
    m = torch.as_tensor(np.asarray(masks)) if as_numpy else masks
    if m.ndim != 3:
        raise ValueError(f"masks must be (K, H, W), got {tuple(m.shape)}")
    flow = _flow_tensor(flow_target_to_source).to(m.device)
    k = m.shape[0]
    if k == 0:
        warped = torch.zeros(m.shape, dtype=torch.bool)
    else:
        soft = backward_warp(m.float().unsqueeze(0), flow)[0]  # channels = instances
        warped = soft >= threshold
    boxes = masks_to_boxes(warped.cpu())
    if as_numpy:
        return warped.cpu().numpy(), boxes.numpy()
    return warped, boxes


def fb_consistency(forward, backward, alpha1: float = 0.01, alpha2: float = 0.5) -> np.ndarray:
    """Forward-backward consistency check: occluded or unreliable pixels of frame t.

    Sundaram, Brox & Keutzer, "Dense point trajectories by GPU-accelerated
    large displacement optical flow", ECCV 2010 (the same test is UnFlow's
    occlusion mask, Meister et al. AAAI 2018, with alpha1 = 0.01, alpha2 = 0.5).
    With ``B~(p) = B(p + F(p))`` (the backward flow sampled bilinearly where
    ``p`` lands), pixel ``p`` is inconsistent when::

        |F + B~|^2 > alpha1 * (|F|^2 + |B~|^2) + alpha2

    Border rule: a pixel whose target ``p + F(p)`` falls outside frame t+δ (it
    leaves the view, so the check cannot be made) is reported inconsistent.

    Args:
        forward: (H, W, 2) flow t -> t+δ on frame t's grid, pixels (numpy or torch).
        backward: (H, W, 2) flow t+δ -> t on frame t+δ's grid, pixels.
        alpha1: relative tolerance (unitless).
        alpha2: absolute tolerance in squared pixels.

    Returns:
        (H, W) bool numpy array, True = inconsistent (occluded / out of view).
    """
    f = _flow_tensor(forward)
    b = _flow_tensor(backward)
    if f.shape != b.shape:
        raise ValueError(f"forward {tuple(f.shape)} and backward {tuple(b.shape)} differ")
    b_at = backward_warp(b, f)
    lhs = ((f + b_at) ** 2).sum(1)
    rhs = alpha1 * ((f**2).sum(1) + (b_at**2).sum(1)) + alpha2
    _, _, h, w = f.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    tx, ty = xs + f[:, 0], ys + f[:, 1]
    outside = (tx < 0) | (tx > w - 1) | (ty < 0) | (ty > h - 1)
    return ((lhs > rhs) | outside)[0].numpy()


#: Segment lengths of the Middlebury colour wheel (Baker et al. IJCV 2011):
#: red-yellow, yellow-green, green-cyan, cyan-blue, blue-magenta, magenta-red.
WHEEL_SEGMENTS = (("RY", 15), ("YG", 6), ("GC", 4), ("CB", 11), ("BM", 13), ("MR", 6))


def make_color_wheel() -> np.ndarray:
    """The 55-colour Middlebury flow wheel (Baker et al., IJCV 2011), (55, 3) float RGB in [0, 255].

    Colour 0 is pure red (flow pointing +x); hue runs through yellow, green,
    cyan, blue and magenta back to red, each segment a linear ramp of one
    channel (``floor(255 * i / n)``, i = 0..n-1) with another channel held at 255.
    """
    rows = []
    for name, n in WHEEL_SEGMENTS:
        ramp = np.floor(255 * np.arange(n) / n)
        up, full, zero = ramp, np.full(n, 255.0), np.zeros(n)
        down = 255 - ramp
        rows.append(
            {
                "RY": (full, up, zero),
                "YG": (down, full, zero),
                "GC": (zero, full, up),
                "CB": (zero, down, full),
                "BM": (up, zero, full),
                "MR": (full, zero, down),
            }[name]
        )
    return np.concatenate([np.stack(r, axis=1) for r in rows], axis=0)


def flow_to_color(flow, max_flow: float | None = None) -> np.ndarray:
    """Colour-code a flow field with the Middlebury wheel (Baker et al., IJCV 2011).

    Hue is the flow direction (+x red, +y i.e. downwards yellow-green, -x cyan,
    -y blue-magenta), saturation the magnitude divided by ``max_flow``
    (default: the largest finite magnitude in ``flow``): zero flow is white, a
    flow of magnitude ``max_flow`` is the fully saturated wheel colour, larger
    ones are the wheel colour darkened to 75 %. Between the 55 wheel colours
    the hue is interpolated linearly around the circle. Non-finite vectors are
    drawn as zero flow.

    Args:
        flow: (H, W, 2) flow in pixels, x then y (numpy or torch).
        max_flow: magnitude (pixels) that maps to full saturation.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    flow = flow.detach().cpu().numpy() if torch.is_tensor(flow) else np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got {flow.shape}")
    u = flow[..., 0].astype(np.float64)
    v = flow[..., 1].astype(np.float64)
    bad = ~(np.isfinite(u) & np.isfinite(v))
    u[bad] = 0.0
    v[bad] = 0.0
    mag = np.hypot(u, v)
    if max_flow is None:
        max_flow = float(mag.max()) if mag.size else 0.0
    rad = mag / max(float(max_flow), np.finfo(np.float32).eps)

    wheel = make_color_wheel() / 255.0
    ncols = len(wheel)
    pos = np.mod(np.arctan2(v, u) / (2 * np.pi), 1.0) * ncols  # angle 0 (+x) -> colour 0
    k0 = np.floor(pos).astype(np.int64) % ncols
    k1 = (k0 + 1) % ncols
    frac = (pos - np.floor(pos))[..., None]
    col = (1 - frac) * wheel[k0] + frac * wheel[k1]
    r = rad[..., None]
    col = np.where(r <= 1, 1 - r * (1 - col), col * 0.75)
    return np.floor(255 * np.clip(col, 0, 1)).astype(np.uint8)


def end_point_error(flow, gt, valid=None) -> float:
    """Mean end-point error ``mean ||flow - gt||_2`` in pixels.

    Args:
        flow: (H, W, 2) estimated flow, pixels (numpy or torch).
        gt: (H, W, 2) ground-truth flow, pixels.
        valid: optional (H, W) bool; only these pixels are averaged.

    Returns:
        Mean EPE in pixels (NaN if no pixel is valid).

    Raises:
        ValueError: shapes differ.
    """
    to_np = lambda a: a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)  # noqa: E731
    flow, gt = to_np(flow).astype(np.float64), to_np(gt).astype(np.float64)
    if flow.shape != gt.shape or flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow {flow.shape} and gt {gt.shape} must both be (H, W, 2)")
    epe = np.linalg.norm(flow - gt, axis=2)
    if valid is not None:
        valid = to_np(valid).astype(bool)
        if valid.shape != epe.shape:
            raise ValueError(f"valid {valid.shape} does not match flow {epe.shape[:2]}")
        epe = epe[valid]
    return float(epe.mean()) if epe.size else float("nan")
