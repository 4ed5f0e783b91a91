"""The IRN pseudo-label stage: instance pseudo-labels of one video (IRN §4; flowIRN §3.2).

Reads the video's CAM artifact (``cam`` for IRN, ``fcam`` for flowIRN), runs
the trained :class:`wsvis.irn.net.IRNet` on each frame (boundary with flip
averaging, displacement), optionally re-cuts each instance with GrabCut
(``refine``), optionally adds the moving regions the walk missed
(``motion_instances``), optionally drops the parts of each instance that do
not move (``motion_filter``), and writes ``pseudo/{variant}/{video}.zarr`` with
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

Motion instances (``motion_instances``, our addition; IRN and flowIRN: none):
the walk's background is a fraction of the frame's largest propagated score,
and each class's CAM is divided by its own maximum, so when a video's tags
always co-occur (a bird and a horse in every frame) every class's map peaks on
the dominant mover and the others' objects stay under the background
(davis_composites: 1.02 label instances per frame against 2.24 in the ground
truth). The regions that move against the camera (the ``motion`` baseline's,
:func:`wsvis.baselines.motion.motion_instances`) are the class-agnostic
instance source flowIRN's premise gives: a region becomes an instance when
less than ``max_overlap`` (0.5, MaskConsist's IoM) of it lies on the walk's
instances, its best tag's mean CAM over it (maps in [0, 1]) is at least
``motion_instances``, and it moves at least ``motion_instances_ratio`` times as
much as the most moving walk instance (a missed object stands out by its
motion; parallax and water move less than the objects the CAM found). It takes
that tag and the pixels no instance holds, then is cut and filtered as the
others. Added before the cut, so GrabCut shapes it from the frame's colours.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import scipy.ndimage as ndi
import torch
from tqdm import tqdm

from wsvis.baselines.box import REFINEMENTS, cut_source, grabcut_refine
from wsvis.baselines.motion import moving_region_masks, residual_flow_magnitude
from wsvis.flow.stage import frame_flow, read_flow
from wsvis.io.pseudo import PseudoLabelWriter
from wsvis.irn.instances import instance_pseudo_labels
from wsvis.irn.labels import open_video_cams, read_frame_like_cams
from wsvis.irn.train import load_irn
from wsvis.maskconsist.predict import moving_detections
from wsvis.torchutil import resolve_device, to_tensor

__all__ = ["REFINEMENTS", "add_motion_instances", "make_video_pseudo_labels", "moving_regions"]


def add_motion_instances(
    masks: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    cam: np.ndarray,
    residual: np.ndarray,
    *,
    min_cam: float,
    ratio: float = 1.0,
    max_overlap: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add the moving regions a frame's walk missed as instances (module docstring, "Motion instances").

    Args:
        masks: (K, H, W) bool instances of the walk (K may be 0).
        classes: (K,) int category ids (class index + 1); scores: (K,) float.
        cam: (C, h, w) float CAM (f-CAM) on the stride-4 grid of the frame, each
            class's map in [0, 1]; all-zero maps are not the frame's tags.
        residual: (H, W) float camera-compensated flow magnitude of the frame in pixels
            (:func:`wsvis.baselines.motion.residual_flow_magnitude`).
        min_cam: the smallest mean CAM of a region's best tag over the region.
        ratio: a region's mean camera-compensated flow magnitude must be at least
            this times that of the most moving walk instance (none: no floor).
        max_overlap: a region whose area lies on the walk's instances by this
            fraction or more is not added (intersection over the region's area).

    Returns:
        ``(masks, classes, scores)`` with the added regions (each the pixels no
        earlier instance holds; its class the best tag, its score that tag's mean
        CAM), ordered by increasing score.

    Raises:
        ValueError: ``residual`` or ``cam`` not of the frame's size (grid ceil(H/4) x ceil(W/4)).
    """
    masks = np.asarray(masks, bool)
    big_h, big_w = masks.shape[1:]
    cam = np.asarray(cam, np.float32)
    h, w = cam.shape[-2:]
    if np.shape(residual) != (big_h, big_w) or (h, w) != (-(-big_h // 4), -(-big_w // 4)):
        raise ValueError(
            f"flow residual {np.shape(residual)} and cam {cam.shape} do not fit instance masks "
            f"of frame size {(big_h, big_w)}"
        )
    keys = np.flatnonzero(cam.reshape(len(cam), -1).max(1) > 0)
    residual = np.asarray(residual, np.float32)
    regions, _ = moving_region_masks(residual)
    if not len(keys) or not len(regions):
        return masks, np.asarray(classes, np.int64), np.asarray(scores, np.float32)
    up = torch.nn.functional.interpolate(
        torch.from_numpy(cam[keys])[None], size=(4 * h, 4 * w), mode="bilinear", align_corners=False
    )[0, :, :big_h, :big_w].numpy()
    floor = ratio * max((float(residual[m].mean()) for m in masks if m.any()), default=0.0)
    taken = masks.any(axis=0)
    out_m, out_c, out_s = list(masks), [int(c) for c in classes], [float(s) for s in scores]
    for region in sorted(regions, key=lambda r: -int(r.sum())):  # largest first keeps its pixels
        area = int(region.sum())
        support = up[:, region].mean(axis=1)
        if (region & taken).sum() >= max_overlap * area or support.max() < min_cam:
            continue
        if residual[region].mean() < floor:
            continue
        region = region & ~taken
        out_m.append(region)
        out_c.append(int(keys[support.argmax()]) + 1)
        out_s.append(float(support.max()))
        taken |= region
    if not out_m:
        return masks, np.asarray(classes, np.int64), np.asarray(scores, np.float32)
    order = np.argsort(out_s, kind="stable")
    return np.stack(out_m)[order], np.asarray(out_c, np.int64)[order], np.asarray(out_s, np.float32)[order]


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
    motion_instances: float | None = None,
    motion_instances_ratio: float = 1.0,
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
        motion_instances, motion_instances_ratio: ``min_cam`` and ``ratio`` of
            :func:`add_motion_instances` (None: no motion instances, IRN's labels).
        flow_path: the video's flow artifact (gap 1, at the frames' size), needed by
            ``motion_filter`` and ``motion_instances``.
        device: ``auto | cpu | cuda[:N]`` for the network.
        params: the stage's config section (stored in attrs).
        progress: tqdm bar over frames.

    Raises:
        ValueError: bad ``source`` or ``refine``, frame count or grid differing from the CAMs;
            ``motion_filter`` or ``motion_instances`` without ``flow_path``, or a flow of another frame count or size.
        ArtifactError: missing or incomplete CAM (or flow) artifact.
        FileNotFoundError: missing model.
        FrameError: unreadable frame or frame size differing from the CAMs'.
    """
    if refine not in REFINEMENTS:
        raise ValueError(f"{out}: irn.infer.refine must be one of {REFINEMENTS}, got {refine!r}")
    cams, (big_h, big_w), categories = open_video_cams(cam_path, source, len(images))
    forward = backward = None
    if motion_filter is not None or motion_instances is not None:
        if flow_path is None:
            raise ValueError(f"{out}: irn.infer.motion_filter / motion_instances need the video's flow artifact")
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
        "motion_instances": motion_instances,
        "motion_instances_ratio": motion_instances_ratio,
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
            residual = None  # camera-compensated flow magnitude, once per frame for both motion options
            if forward is not None:
                residual = residual_flow_magnitude(frame_flow(forward, backward, t, len(images)))
            if motion_instances is not None:
                masks, classes, scores = add_motion_instances(
                    masks, classes, scores, cam, residual, min_cam=motion_instances, ratio=motion_instances_ratio
                )
            if refine == "grabcut":
                src = cut_source(
                    refine_resolution, source_images[t] if source_images else None, key="irn.infer.refine_resolution"
                )
                masks = grabcut_refine(img, masks, margin=refine_margin, iterations=refine_iterations, source=src)
            if motion_filter is not None and len(masks):
                masks, classes, scores = moving_regions(
                    masks, classes, scores, residual, ratio=motion_filter, min_flow=motion_filter_flow
                )
            writer.add_frame(t, masks, classes, scores)
