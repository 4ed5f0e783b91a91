"""Optical-flow backends and their registry.

:data:`FLOW_BACKENDS` maps the config string (``flow.backend``) to a factory
taking keyword options; :func:`make_flow_backend` checks the name and options.
Every backend object is callable ``backend(img1, img2) -> flow`` with

* ``img1``, ``img2``: (H, W, 3) uint8 RGB frames of the same size;
* ``flow``: (H, W, 2) float32, pixels, x then y, from ``img1`` to ``img2``
  (defined on ``img1``'s grid: pixel p of img1 is at p + flow(p) in img2);

and has a ``name`` attribute. Backends:

* ``"dis"``: OpenCV Dense Inverse Search (Kroeger et al., "Fast Optical Flow
  using Dense Inverse Search", ECCV 2016) on grey frames; option ``preset``
  in ``ultrafast | fast | medium`` (default ``medium``).
* ``"farneback"``: OpenCV polynomial-expansion flow (Farnebäck, SCIA 2003),
  options ``pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5,
  poly_sigma=1.2``.
* ``"raft_small"`` / ``"raft_large"``: torchvision RAFT (Teed & Deng, "RAFT:
  Recurrent All-Pairs Field Transforms for Optical Flow", ECCV 2020); options
  ``weights`` (``"none"``: random init, for tests only, logs a warning;
  ``"default"``: torchvision's ``Raft_*_Weights.DEFAULT``, downloaded once
  into the torch hub cache, so it needs network the first time; or a path to
  a local state_dict file, loaded with ``torch.load(path, weights_only=True)``),
  ``iters`` (GRU refinement iterations, default 12) and ``device``
  (``auto | cpu | cuda``; auto = cuda if available).

Thread counts (``torch.set_num_threads``, ``cv2.setNumThreads``) are the
caller's business, not the backends'.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from wsvis.torchutil import load_state_dict_file, resolve_device


__all__ = [
    "FLOW_BACKENDS",
    "make_flow_backend",
    "build_backend",
    "DISFlow",
    "FarnebackFlow",
    "RAFTFlow",
]

log = logging.getLogger(__name__)


def _check_pair(img1: np.ndarray, img2: np.ndarray) -> None:
    for img in (img1, img2):
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
    if img1.shape != img2.shape:
        raise ValueError(f"frames differ in size: {img1.shape} vs {img2.shape}")


class DISFlow:
    """OpenCV DIS optical flow (Kroeger et al., ECCV 2016) on grey frames.

    Args:
        preset: ``"ultrafast"``, ``"fast"`` or ``"medium"``.

    Raises:
        ValueError: unknown preset.
    """

    PRESETS = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }

    def __init__(self, preset: str = "medium") -> None:
        if preset not in self.PRESETS:
            raise ValueError(f"flow backend 'dis': unknown preset {preset!r}; choose one of {sorted(self.PRESETS)}")
        self.name = "dis"
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(self.PRESETS[preset])

    def __call__(self, img1: np.ndarray, img2: np.ndarray) -> np.ndarray:
        _check_pair(img1, img2)
        g1 = cv2.cvtColor(img1, cv2.COLOR_RGB2GRAY)
        g2 = cv2.cvtColor(img2, cv2.COLOR_RGB2GRAY)
        return self._dis.calc(g1, g2, None).astype(np.float32, copy=False)


class FarnebackFlow:
    """OpenCV Farnebäck dense flow (Farnebäck, SCIA 2003) on grey frames.

    Keyword arguments are those of :func:`cv2.calcOpticalFlowFarneback`
    (``pyr_scale``, ``levels``, ``winsize``, ``iterations``, ``poly_n``,
    ``poly_sigma``) with OpenCV's usual values as defaults.
    """

    def __init__(
        self,
        pyr_scale: float = 0.5,
        levels: int = 3,
        winsize: int = 15,
        iterations: int = 3,
        poly_n: int = 5,
        poly_sigma: float = 1.2,
    ) -> None:
        self.name = "farneback"
        self.params = dict(
            pyr_scale=pyr_scale, levels=levels, winsize=winsize,
            iterations=iterations, poly_n=poly_n, poly_sigma=poly_sigma,
        )

    def __call__(self, img1: np.ndarray, img2: np.ndarray) -> np.ndarray:
        _check_pair(img1, img2)
        g1 = cv2.cvtColor(img1, cv2.COLOR_RGB2GRAY)
        g2 = cv2.cvtColor(img2, cv2.COLOR_RGB2GRAY)
        flow = cv2.calcOpticalFlowFarneback(g1, g2, None, flags=0, **self.params)
        return flow.astype(np.float32, copy=False)


class RAFTFlow:
    """torchvision RAFT (Teed & Deng, ECCV 2020), small or large.

    Frames are converted to float in [-1, 1] (what torchvision's
    ``OpticalFlow`` transforms produce), padded with replicate padding on the
    bottom and right to a multiple of 8 in H and W, and at least
    :attr:`MIN_SIZE` (128: torchvision's correlation pyramid needs feature maps
    of 16 x 16 at 1/8 resolution), and the predicted flow (the last of
    ``iters`` refinements) is cropped back to the frame size.

    Args:
        variant: ``"small"`` or ``"large"``.
        weights: ``"none"`` (random init; for tests only, logs a warning),
            ``"default"`` (torchvision weights API, needs network once), or a
            path to a local state_dict (``torch.load(weights_only=True)``).
        iters: number of recurrent refinement iterations.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Raises:
        FileNotFoundError: ``weights`` is a path that does not exist.
        ValueError: bad ``variant`` / ``iters`` / ``device``.
    """

    MIN_SIZE = 128

    def __init__(self, variant: str, weights: str = "none", iters: int = 12, device: str = "auto") -> None:
        from torchvision.models import optical_flow as of

        builders = {
            "small": (of.raft_small, of.Raft_Small_Weights),
            "large": (of.raft_large, of.Raft_Large_Weights),
        }
        if variant not in builders:
            raise ValueError(f"RAFT variant must be 'small' or 'large', got {variant!r}")
        if int(iters) < 1:
            raise ValueError(f"RAFT iters must be >= 1, got {iters}")
        build, weight_enum = builders[variant]
        self.name = f"raft_{variant}"
        self.iters = int(iters)
        self.device = resolve_device(device)
        if weights == "none":
            log.warning("%s: weights='none', random initialisation; flow is meaningless (tests only)", self.name)
            model = build(weights=None)
        elif weights == "default":
            model = build(weights=weight_enum.DEFAULT, progress=False)
        else:
            model = build(weights=None)
            model.load_state_dict(load_state_dict_file(weights))
        self.model = model.eval().to(self.device)

    @staticmethod
    def _to_tensor(imgs: list[np.ndarray]) -> torch.Tensor:
        batch = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()
        return batch / 127.5 - 1.0  # [0, 255] -> [-1, 1]

    @torch.inference_mode()
    def batch(self, imgs1: list[np.ndarray], imgs2: list[np.ndarray]) -> np.ndarray:
        """Flow for several pairs of equal-size frames at once: (N, H, W, 2) float32."""
        for a, b in zip(imgs1, imgs2, strict=True):
            _check_pair(a, b)
        h, w = imgs1[0].shape[:2]
        pad_w = max(w + (-w) % 8, self.MIN_SIZE) - w
        pad_h = max(h + (-h) % 8, self.MIN_SIZE) - h
        pad = (0, pad_w, 0, pad_h)  # left, right, top, bottom
        x1 = F.pad(self._to_tensor(imgs1), pad, mode="replicate").to(self.device)
        x2 = F.pad(self._to_tensor(imgs2), pad, mode="replicate").to(self.device)
        flow = self.model(x1, x2, num_flow_updates=self.iters)[-1]
        return flow[:, :, :h, :w].permute(0, 2, 3, 1).float().cpu().numpy()

    def __call__(self, img1: np.ndarray, img2: np.ndarray) -> np.ndarray:
        return self.batch([img1], [img2])[0]


#: Config string -> factory taking the backend's keyword options.
FLOW_BACKENDS: dict[str, Callable[..., Any]] = {
    "dis": DISFlow,
    "farneback": FarnebackFlow,
    "raft_small": lambda weights="none", iters=12, device="auto": RAFTFlow("small", weights, iters, device),
    "raft_large": lambda weights="none", iters=12, device="auto": RAFTFlow("large", weights, iters, device),
}


def build_backend(registry: dict[str, Callable[..., Any]], family: str, name: str, options: dict[str, Any]):
    """Call ``registry[name](**options)`` after checking the name and the option names.

    Shared by the flow and depth registries (``family`` is ``"flow"`` or
    ``"depth"``, used in messages).

    Raises:
        ValueError: unknown backend name, or an option the backend does not
            take (the message names it and lists the choices).
    """
    if name not in registry:
        raise ValueError(f"unknown {family} backend {name!r}; choose one of {sorted(registry)}")
    factory = registry[name]
    accepted = list(inspect.signature(factory).parameters)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"{family} backend {name!r}: unknown option(s) {unknown}; it takes {accepted}")
    return factory(**options)


def make_flow_backend(name: str, **options: Any):
    """Build the flow backend ``name`` of :data:`FLOW_BACKENDS` with keyword ``options``.

    Raises:
        ValueError: unknown backend name, or an option the backend does not
            take (the message names it and lists the choices).
    """
    return build_backend(FLOW_BACKENDS, "flow", name, options)
