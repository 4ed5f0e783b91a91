"""The CAM stage: per-video CAMs and flow-amplified CAMs as a Zarr artifact.

Artifact ``cam/{video}.zarr`` (``DESIGN.md``, "Artifacts"):

* ``cam``: (T, C, h, w) float16, IRN CAMs (:func:`wsvis.cam.infer.make_cams`),
  h, w = ceil(H/4), ceil(W/4) (stride 4), tagged classes max-normalised to
  [0, 1], untagged classes 0;
* ``fcam``: (T, C, h, w) float16, flowIRN Eq. 2 (:func:`wsvis.cam.fcam.flow_amplified_cam`).
  Frame t < T-1 uses the forward flow t -> t+1 (gap 1, on frame t's grid); the
  last frame uses the backward flow T-1 -> T-2 (on frame T-1's grid). Without
  flow (a one-frame video, or no flow artifact given) ``fcam`` equals ``cam``
  and attr ``fcam_flow`` says ``"none"``.

Attrs: ``categories`` (channel order; category id = index + 1), ``stride``
(4), ``frame_size``, ``num_frames``, ``scales``, ``amplification``,
``percentile``, ``compensation``, ``normalize``, ``fcam_flow``, ``model`` (file name),
``params``, ``units``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import zarr
from tqdm import tqdm

from wsvis.cam.fcam import flow_amplified_cam
from wsvis.cam.infer import DEFAULT_SCALES, make_cams, strided_size
from wsvis.cam.train import load_cam_model
from wsvis.flow.stage import frame_flow, read_flow
from wsvis.io.images import FrameError, read_image
from wsvis.io.store import DEFAULT_COMPRESSOR, ArtifactWriter, open_artifact

__all__ = ["compute_video_cams", "read_cams", "CAM_STRIDE"]

#: Stride of the stored CAM grid relative to the frame (IRN's "strided" size).
CAM_STRIDE = 4


def compute_video_cams(
    images: Sequence[str | os.PathLike],
    tags: Sequence[Sequence[str]],
    categories: list[str],
    model_path: str | os.PathLike,
    flow_path: str | os.PathLike | None,
    out: str | os.PathLike,
    *,
    scales: Sequence[float] = DEFAULT_SCALES,
    amplification: float = 2.0,
    percentile: float = 80.0,
    compensation: str = "none",
    normalize: bool = False,
    device: str = "auto",
    params: dict[str, Any] | None = None,
    compressor: str = DEFAULT_COMPRESSOR,
    progress: bool = True,
) -> None:
    """Compute CAMs and f-CAMs of one video and write the CAM artifact (module docstring).

    Args:
        images: the video's T frame files in temporal order.
        tags: per frame, its class tags (names in ``categories``); CAMs are
            kept only for tagged classes (IRN uses the image labels at inference).
        categories: class names; must equal the model's category list.
        model_path: ``model.pt`` of :func:`wsvis.cam.train.train_cam`.
        flow_path: the video's flow artifact (gap 1 needed), or None for no
            amplification (``fcam = cam``).
        out: artifact path (``results/{dataset}/cam/{video}.zarr``).
        scales: CAM inference scales (IRN 1.0, 0.5, 1.5, 2.0).
        amplification, percentile: flowIRN Eq. 2 settings
            (:data:`wsvis.cam.fcam.FCAM_PRESETS`); compensation, normalize: our
            additions (:func:`wsvis.cam.fcam.flow_amplified_cam`).
        device: ``"auto"`` | ``"cpu"`` | ``"cuda[:N]"``.
        params: the ``cam`` config section, stored in attrs.
        compressor: a key of :data:`wsvis.io.store.COMPRESSORS`.
        progress: tqdm bar over frames.

    Written atomically: on any error nothing appears at ``out``.

    Raises:
        ValueError: no frames, ``len(tags) != len(images)``, a tag not in
            ``categories``, categories differing from the model's, or a flow
            artifact of another frame size / frame count.
        FrameError: an unreadable frame or one whose size differs from frame 0.
        ArtifactError / KeyError: a bad flow artifact or one without gap 1.
    """
    images = [os.fspath(p) for p in images]
    if not images:
        raise ValueError("compute_video_cams: no frames given")
    if len(tags) != len(images):
        raise ValueError(f"compute_video_cams: {len(tags)} tag lists for {len(images)} frames")
    categories = list(categories)
    class_ids = []
    for t, frame_tags in enumerate(tags):
        bad = [c for c in frame_tags if c not in categories]
        if bad:
            raise ValueError(f"frame {t} ({images[t]}): tags {bad} not in the category list {categories}")
        class_ids.append([categories.index(c) for c in frame_tags])
    model = load_cam_model(model_path, device)
    if model.categories != categories:
        raise ValueError(f"{model_path}: model categories {model.categories} differ from {categories}")

    first = read_image(images[0])
    H, W = first.shape[:2]
    h, w = strided_size((H, W), CAM_STRIDE)
    T, C = len(images), len(categories)
    forward = backward = None
    if flow_path is not None and T > 1:
        forward = read_flow(flow_path, 1, "forward")
        backward = read_flow(flow_path, 1, "backward")
        if tuple(forward.shape) != (T - 1, H, W, 2):
            raise ValueError(
                f"{flow_path}: gap-1 flow of shape {tuple(forward.shape)} does not fit {T} frames of {H}x{W}"
            )
        fcam_flow = "gap 1: forward[t] for t < T-1, backward[T-2] for the last frame"
    else:
        fcam_flow = "none" + (" (one-frame video)" if T == 1 else " (no flow artifact given)") + ": fcam = cam"

    attrs = {
        "categories": categories,
        "stride": CAM_STRIDE,
        "num_frames": T,
        "scales": list(scales),
        "amplification": amplification,
        "percentile": percentile,
        "compensation": compensation,
        "normalize": bool(normalize),
        "fcam_flow": fcam_flow,
        "model": Path(model_path).name,
    }
    units = {
        "cam": "class activation, tagged classes max-normalised to [0, 1]",
        "fcam": "flow-amplified class activation (cam times 1 or A; divided by its maximum with normalize)",
    }
    with ArtifactWriter(
        out, stage="cam", params=params, frame_size=(H, W), units=units, attrs=attrs, compressor=compressor
    ) as writer:
        cam_arr = writer.create_array("cam", shape=(T, C, h, w), dtype="float16")
        fcam_arr = writer.create_array("fcam", shape=(T, C, h, w), dtype="float16")
        moving_fraction = []
        bar = tqdm(range(T), desc=f"cam {Path(out).name}", unit="frame", disable=not progress)
        for t in bar:
            img = first if t == 0 else read_image(images[t])
            if img.shape != first.shape:
                raise FrameError(f"{images[t]}: frame size {img.shape[:2]} differs from {images[0]} {(H, W)}")
            cam = make_cams(model, img, class_ids[t], scales)
            cam_arr[t] = cam.astype(np.float16)
            if forward is None:
                fcam_arr[t] = cam.astype(np.float16)
                continue
            flow = frame_flow(forward, backward, t, T)
            fcam, moving = flow_amplified_cam(
                cam, flow, amplification, percentile, compensation=compensation, normalize=normalize
            )
            fcam_arr[t] = fcam.astype(np.float16)
            moving_fraction.append(float(moving.mean()))
        writer.update_attrs({"moving_fraction": moving_fraction})


def read_cams(path: str | os.PathLike) -> tuple[zarr.Array, zarr.Array, list[str], dict[str, Any]]:
    """Open a CAM artifact.

    Returns:
        ``(cam, fcam, categories, attrs)``: the lazy (T, C, h, w) float16
        ``cam`` and ``fcam`` arrays, the class names (channel order), and the
        group attrs (``frame_size``, ``stride``, ``params``...).

    Raises:
        ArtifactError: missing, incomplete or not a CAM artifact.
    """
    group = open_artifact(path, "cam")
    attrs = dict(group.attrs)
    return group["cam"], group["fcam"], list(attrs["categories"]), attrs

