"""The IRN pseudo-label stage: instance pseudo-labels of one video (IRN §4; flowIRN §3.2).

Reads the video's CAM artifact (``cam`` for IRN, ``fcam`` for flowIRN), runs
the trained :class:`wsvis.irn.net.IRNet` on each frame (boundary with flip
averaging, displacement), optionally re-cuts each instance with GrabCut
(``refine``), and writes ``pseudo/{variant}/{video}.zarr`` with
:class:`wsvis.io.pseudo.PseudoLabelWriter` from
:func:`wsvis.irn.instances.instance_pseudo_labels`. Frames without tags (all
CAMs zero) get no instances.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from wsvis.baselines.box import REFINEMENTS, cut_source, grabcut_refine
from wsvis.io.pseudo import PseudoLabelWriter
from wsvis.irn.instances import instance_pseudo_labels
from wsvis.irn.labels import open_video_cams, read_frame_like_cams
from wsvis.irn.train import load_irn
from wsvis.torchutil import resolve_device, to_tensor

__all__ = ["REFINEMENTS", "make_video_pseudo_labels"]


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
        device: ``auto | cpu | cuda[:N]`` for the network.
        params: the stage's config section (stored in attrs).
        progress: tqdm bar over frames.

    Raises:
        ValueError: bad ``source`` or ``refine``, frame count or grid differing from the CAMs.
        ArtifactError: missing or incomplete CAM artifact.
        FileNotFoundError: missing model.
        FrameError: unreadable frame or frame size differing from the CAMs'.
    """
    if refine not in REFINEMENTS:
        raise ValueError(f"{out}: irn.infer.refine must be one of {REFINEMENTS}, got {refine!r}")
    cams, (big_h, big_w), categories = open_video_cams(cam_path, source, len(images))
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
            writer.add_frame(t, masks, classes, scores)
