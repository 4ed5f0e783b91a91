"""The IRN pseudo-label stage: instance pseudo-labels of one video (IRN §4; flowIRN §3.2).

Reads the video's CAM artifact (``cam`` for IRN, ``fcam`` for flowIRN), runs
the trained :class:`wsvis.irn.net.IRNet` on each frame (boundary with flip
averaging, displacement), optionally re-cuts each instance with GrabCut
(``refine``), optionally drops the parts of each instance that do not move
(``motion_filter``), and writes ``pseudo/{variant}/{video}.zarr`` with
:class:`wsvis.io.pseudo.PseudoLabelWriter` from
:func:`wsvis.irn.instances.instance_pseudo_labels`. Frames without tags (all
CAMs zero) get no instances.

Motion filter (``motion_filter``, our addition; IRN and flowIRN: none): each
instance is split into its connected regions and a region is dropped when its
mean camera-compensated flow magnitude is below both ``motion_filter_flow``
pixels and ``motion_filter`` times that of the frame's most moving region
(:func:`wsvis.maskconsist.predict.moving_detections`, the predictions' filter).
The person CAM fires on every person, the random walk joins the dancer to the
still spectators behind him, and GrabCut keeps both (davis2016 breakdance: one
instance over the dancer and the crowd at the frame's edge, 4-27 disconnected
regions); flowIRN's premise is that the objects move. Measured on the refined
flowirn labels of the davis2016 run at 0d2e0f3, J 0.602 -> 0.618 (breakdance
0.378 -> 0.470, bmx-trees 0.334 -> 0.360, no video lower).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import scipy.ndimage as ndi
import torch
from tqdm import tqdm

from wsvis.baselines.box import REFINEMENTS, cut_source, grabcut_refine
from wsvis.baselines.motion import residual_flow_magnitude
from wsvis.flow.stage import frame_flow, read_flow
from wsvis.io.pseudo import PseudoLabelWriter
from wsvis.irn.instances import instance_pseudo_labels
from wsvis.irn.labels import open_video_cams, read_frame_like_cams
from wsvis.irn.train import load_irn
from wsvis.maskconsist.predict import moving_detections
from wsvis.torchutil import resolve_device, to_tensor

__all__ = ["REFINEMENTS", "make_video_pseudo_labels", "moving_regions"]


def moving_regions(
    masks: np.ndarray, classes: np.ndarray, scores: np.ndarray, residual: np.ndarray, *, ratio: float, min_flow: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the connected regions of a frame's instances that move (module docstring, "Motion filter").

    Args:
        masks: (K, H, W) bool instance masks.
        classes: (K,) int category ids; scores: (K,) float.
        residual: (H, W) float camera-compensated flow magnitude of the frame, pixels.
        ratio, min_flow: of :func:`wsvis.maskconsist.predict.moving_detections`, over the
            regions (4-connected) of all instances, each taken as confident.

    Returns:
        ``(masks, classes, scores)`` of the instances that keep a region, each mask the
        union of its kept regions.

    Raises:
        ValueError: ``masks`` and ``residual`` of different frame sizes.
    """
    masks = np.asarray(masks, bool)
    if masks.shape[1:] != np.shape(residual):
        raise ValueError(f"instance masks {masks.shape} and flow residual {np.shape(residual)} differ in frame size")
    regions, owner = [], []
    for k, m in enumerate(masks):
        lab, n = ndi.label(m)
        regions += [lab == i for i in range(1, n + 1)]
        owner += [k] * n
    if not regions:
        return masks, np.asarray(classes), np.asarray(scores)
    keep = moving_detections(np.stack(regions), np.ones(len(regions)), residual, ratio=ratio, min_flow=min_flow)
    out = np.zeros_like(masks)
    for r, k, kept in zip(regions, owner, keep):
        if kept:
            out[k] |= r
    alive = out.reshape(len(out), -1).any(axis=1)
    return out[alive], np.asarray(classes)[alive], np.asarray(scores)[alive]


def make_video_pseudo_labels(
    images: Sequence[str | os.PathLike],
    cam_path: str | os.PathLike,
    source: str,
    model_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    variant: str,
    beta: float = 10,
    exp_times: int = 8,
    rw_radius: int = 5,
    ins_seg_bg_thres: float = 0.25,
    instances: str = "displacement",
    instance_class: str = "pixel",
    refine: str = "none",
    refine_margin: float = 0.1,
    refine_iterations: int = 5,
    refine_resolution: str = "process",
    source_images: Sequence[str | os.PathLike | None] | None = None,
    motion_filter: float | None = None,
    motion_filter_flow: float = 1.5,
    flow_path: str | os.PathLike | None = None,
    device: str = "auto",
    params: dict[str, Any] | None = None,
    progress: bool = True,
) -> None:
    """Write the instance pseudo-labels of one video.

    Args:
        images: the video's frames in order (T paths).
        cam_path: its CAM artifact (stage ``"cam"``; arrays (T, C, h, w) on the stride-4 grid).
        source: ``"cam"`` or ``"fcam"``: which CAMs to propagate.
        model_path: ``model.pt`` from :func:`wsvis.irn.train.train_irn`.
        out: ``pseudo/{variant}/{video}.zarr``.
        variant: pseudo-labeler name stored in attrs (``irn``, ``flowirn``).
        beta, exp_times, rw_radius, ins_seg_bg_thres, instances, instance_class: of
            :func:`wsvis.irn.instances.instance_pseudo_labels` (IRN 10, 8, 5, 0.25,
            ``"displacement"``, ``"pixel"``).
        refine: ``"none"`` (IRN) or ``"grabcut"``: each instance re-cut by GrabCut
            started from it (:func:`wsvis.baselines.box.grabcut_refine`, our addition).
        refine_margin, refine_iterations: ``margin`` and ``iterations`` of that cut.
        refine_resolution: ``process`` or ``source`` (:func:`wsvis.baselines.box.cut_source`):
            the cut on the frame at its source resolution (``source_images``, one per frame).
        source_images: the frames at their source resolution (ingest ``source_image``).
        motion_filter, motion_filter_flow: ``ratio`` and ``min_flow`` of :func:`moving_regions`
            (module docstring, "Motion filter"); None: no filter (IRN, flowIRN).
        flow_path: the video's flow artifact (gap 1, at the frames' size), needed by ``motion_filter``.
        device: ``auto | cpu | cuda[:N]`` for the network.
        params: the stage's config section (stored in attrs).
        progress: tqdm bar over frames.

    Raises:
        ValueError: bad ``source`` or ``refine``, frame count or grid differing from the CAMs;
            ``motion_filter`` without ``flow_path``, or a flow of another frame count or size.
        ArtifactError: missing or incomplete CAM (or flow) artifact.
        FileNotFoundError: missing model.
        FrameError: unreadable frame or frame size differing from the CAMs'.
    """
    if refine not in REFINEMENTS:
        raise ValueError(f"{out}: irn.infer.refine must be one of {REFINEMENTS}, got {refine!r}")
    cams, (big_h, big_w), categories = open_video_cams(cam_path, source, len(images))
    forward = backward = None
    if motion_filter is not None:
        if flow_path is None:
            raise ValueError(f"{out}: irn.infer.motion_filter needs the video's flow artifact")
        forward, backward = read_flow(flow_path, 1, "forward"), read_flow(flow_path, 1, "backward")
        if forward.shape[0] != max(len(images) - 1, 0) or tuple(forward.shape[1:3]) != (big_h, big_w):
            raise ValueError(
                f"{flow_path}: flow of shape {forward.shape} does not fit {len(images)} frames of {(big_h, big_w)}"
            )
    images = [os.fspath(p) for p in images]
    dev = resolve_device(device)
    net = load_irn(model_path, dev)
    settings = {
        "source": source,
        "beta": beta,
        "exp_times": exp_times,
        "rw_radius": rw_radius,
        "ins_seg_bg_thres": ins_seg_bg_thres,
        "instances": instances,
        "instance_class": instance_class,
        "refine": refine,
        "refine_margin": refine_margin,
        "refine_iterations": refine_iterations,
        "refine_resolution": refine_resolution,
        "motion_filter": motion_filter,
        "motion_filter_flow": motion_filter_flow,
    }
    with PseudoLabelWriter(
        out,
        num_frames=len(images),
        frame_size=(big_h, big_w),
        variant=variant,
        categories=categories,
        params=params,
        attrs={"irn": settings},
    ) as writer:
        bar = tqdm(range(len(images)), desc=f"pseudo {variant} {os.path.basename(os.fspath(out))}", disable=not progress)
        for t in bar:
            cam = np.asarray(cams[t], np.float32)
            if not (cam > 0).any():
                writer.add_frame(t, np.zeros((0, big_h, big_w), bool), np.zeros(0, np.int64), np.zeros(0, np.float32))
                continue
            img = read_frame_like_cams(images[t], (big_h, big_w))
            with torch.no_grad():
                boundary, disp = net.infer(to_tensor(img).to(dev))
            masks, classes, scores = instance_pseudo_labels(
                cam,
                boundary.cpu().numpy(),
                disp.cpu().numpy(),
                (big_h, big_w),
                beta=beta,
                exp_times=exp_times,
                rw_radius=rw_radius,
                ins_seg_bg_thres=ins_seg_bg_thres,
                instances=instances,
                instance_class=instance_class,
            )
            if refine == "grabcut":
                src = cut_source(
                    refine_resolution, source_images[t] if source_images else None, key="irn.infer.refine_resolution"
                )
                masks = grabcut_refine(img, masks, margin=refine_margin, iterations=refine_iterations, source=src)
            flow = frame_flow(forward, backward, t, len(images)) if forward is not None else None
            if flow is not None and len(masks):
                masks, classes, scores = moving_regions(
                    masks, classes, scores, residual_flow_magnitude(flow), ratio=motion_filter, min_flow=motion_filter_flow
                )
            writer.add_frame(t, masks, classes, scores)
