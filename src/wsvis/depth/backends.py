"""Monocular depth backends and their registry.

:data:`DEPTH_BACKENDS` maps the config string (``depth.backend``) to a factory
taking keyword options. There is deliberately no default network and no
stand-in: a depth backend must be given a real checkpoint, and a missing one
is an error, never a silently fabricated depth map.

Every backend object is callable ``backend(img) -> depth`` with ``img`` an
(H, W, 3) uint8 RGB frame and ``depth`` an (H, W) float32 map of *relative
inverse depth* (larger = nearer, arbitrary scale and shift per frame, as
MiDaS predicts), and has a ``name`` attribute.

Backends:

* ``"torchscript"``: a monocular depth network exported as TorchScript by
  the user (e.g. MiDaS v2.1 small, Ranftl et al., TPAMI 2020, traced at
  256 x 256), loaded with ``torch.jit.load(checkpoint, map_location=device)``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from wsvis.flow.backends import build_backend
from wsvis.torchutil import resolve_device

__all__ = ["DEPTH_BACKENDS", "make_depth_backend", "TorchScriptDepth", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TorchScriptDepth:
    """A TorchScript monocular depth network.

    Pre-processing: RGB in [0, 1], resized (bilinear) to ``input_size x
    input_size`` regardless of aspect ratio (the fixed square input of a
    traced MiDaS-small export), normalised with ``mean`` / ``std``. The
    network gets a (1, 3, input_size, input_size) float32 tensor and must
    return (1, h, w) or (1, 1, h, w) relative inverse depth, which is resized
    (bilinear) back to the frame size.

    Args:
        checkpoint: path of the TorchScript file (required; there is no default network).
        input_size: side of the square network input, pixels.
        mean, std: per-channel normalisation of RGB in [0, 1] (default ImageNet).
        device: ``"auto"`` (cuda if available), ``"cpu"`` or ``"cuda"``.

    Raises:
        ValueError: no ``checkpoint`` given, or bad ``input_size`` / ``mean`` / ``std``.
        FileNotFoundError: ``checkpoint`` does not exist (the message names it).
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        input_size: int = 256,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        device: str = "auto",
    ) -> None:
        if checkpoint is None:
            raise ValueError(
                "depth backend 'torchscript' needs option 'checkpoint' (a TorchScript depth network file); "
                "there is no default depth network"
            )
        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(f"depth backend 'torchscript': checkpoint not found: {checkpoint}")
        if int(input_size) < 1:
            raise ValueError(f"depth input_size must be positive, got {input_size}")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"depth mean/std need 3 values each, got {mean} / {std}")
        self.name = "torchscript"
        self.checkpoint = os.fspath(checkpoint)
        self.input_size = int(input_size)
        self.device = resolve_device(device)
        self.model = torch.jit.load(self.checkpoint, map_location=self.device).eval()
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

    @torch.inference_mode()
    def __call__(self, img: np.ndarray) -> np.ndarray:
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"frame must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
        h, w = img.shape[:2]
        x = torch.from_numpy(img).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        out = self.model((x - self.mean) / self.std)
        if out.ndim == 3:
            out = out[:, None]
        if out.ndim != 4 or out.shape[:2] != (1, 1):
            raise ValueError(f"{self.checkpoint}: expected (1, h, w) or (1, 1, h, w) output, got {tuple(out.shape)}")
        out = F.interpolate(out.float(), size=(h, w), mode="bilinear", align_corners=False)
        return out[0, 0].cpu().numpy().astype(np.float32, copy=False)


#: Config string -> factory taking the backend's keyword options. No entry
#: works without a real checkpoint.
DEPTH_BACKENDS: dict[str, Callable[..., Any]] = {
    "torchscript": TorchScriptDepth,
}


def make_depth_backend(name: str, **options: Any):
    """Build the depth backend ``name`` of :data:`DEPTH_BACKENDS` with keyword ``options``.

    Raises:
        ValueError: unknown backend or option (named, with the choices), or no checkpoint.
        FileNotFoundError: the checkpoint file is missing.
    """
    return build_backend(DEPTH_BACKENDS, "depth", name, options)
