"""Frame-level inference of a trained CondInst (stcseg / boxinst / boxinst_flow) into the predictions contract.

Same artifact as :func:`wsvis.maskconsist.predict.predict_video`
(``predictions/{method}/{video}.zarr``, :mod:`wsvis.io.predictions`): masks
binarised at 0.5 from the mask probabilities at frame resolution, boxes xyxy
frame pixels, category ids, the K highest scores. CondInst's inference:
score threshold 0.05, class-wise NMS (config, default 0.5 as the class-tag
branch; CondInst uses 0.6). The two-stream model also reads the video's
flow (flow image of frame t as in training).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from wsvis.boxsup.train import flow_image
from wsvis.flow.stage import read_flow
from wsvis.maskconsist.predict import write_video_predictions
from wsvis.models.condinst import load_condinst
from wsvis.models.tta import detect_hflip
from wsvis.flow.stage import frame_flow
from wsvis.torchutil import resolve_device
from wsvis.transforms import hflip_flow

__all__ = ["predict_video_condinst"]


def predict_video_condinst(
    images: Sequence[str | os.PathLike],
    model_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    method: str,
    flow_path: str | os.PathLike | None = None,
    score_threshold: float = 0.05,
    nms: float = 0.5,
    max_detections: int = 20,
    mask_in_box: bool = False,
    hflip_tta: bool = False,
    device: str = "auto",
    params: dict[str, Any] | None = None,
    progress: bool = True,
    **refine_options: Any,
) -> Path:
    """Run a CondInst ``model.pt`` on every frame of one video and write its predictions artifact.

    Args:
        images: the video's T frame paths in temporal order (one size).
        model_path: ``model.pt`` of :func:`wsvis.boxsup.train.train_condinst`.
        out: ``predictions/{method}/{video}.zarr``.
        method: the run name stored in attrs.
        flow_path: the video's flow artifact (gap 1); required by a two-stream model and by
            ``refine_options['motion_filter']``.
        score_threshold, nms, max_detections, device, params, progress: as
            :func:`wsvis.maskconsist.predict.predict_video`.
        mask_in_box: masks cut to their detected boxes (:meth:`wsvis.models.condinst.CondInst.detect`).
        hflip_tta: also detect on the mirrored frame (and mirrored flow) and merge
            (:func:`wsvis.models.tta.detect_hflip`; ours, the papers test on the frame alone): 2x the detection time.
        refine_options: of :func:`wsvis.maskconsist.predict.write_video_predictions` (``refine`` ...).

    Returns:
        ``out`` as a Path: masks (T, K, H, W) bool, scores (T, K) float32,
        labels (T, K) int32, boxes (T, K, 4) float32.

    Raises:
        FileNotFoundError: no model file; ValueError: no frames, frames of different
        sizes, a two-stream model without ``flow_path``.
    """
    images = [os.fspath(p) for p in images]
    if not images:
        raise ValueError("predict_video_condinst: no frames")
    dev = resolve_device(device)
    model, meta = load_condinst(model_path, dev)
    forward = backward = None
    if model.two_stream:
        if flow_path is None:
            raise ValueError(f"{model_path}: a two-stream model ({meta['method']}) needs the video's flow (--flow)")
        forward, backward = read_flow(flow_path, 1, "forward"), read_flow(flow_path, 1, "backward")
    def detect_view(t: int, img, mirrored: bool):
        flows = None
        if model.two_stream:
            f = frame_flow(forward, backward, t, len(images), negate_backward=True)
            if f is None:
                raise ValueError(f"{images[t]}: a one-frame video has no flow for the two-stream model")
            if mirrored:
                f = hflip_flow(f)
            flows = [flow_image(f).to(dev)]
        return model.detect([img.to(dev)], flows, score_thresh=score_threshold, nms_thresh=nms,
                            detections_per_img=max_detections, mask_in_box=mask_in_box)[0]

    def detect_frame(t: int, img):
        if not hflip_tta:
            return detect_view(t, img, False)
        return detect_hflip(lambda x, mirrored: detect_view(t, x, mirrored), img, nms_thresh=nms,
                            detections_per_img=max_detections)

    return write_video_predictions(
        images, out, detect_frame, method=method, categories=list(meta["categories"]), max_detections=max_detections,
        params=params,
        attrs={"score_threshold": score_threshold, "nms": nms, "mask_in_box": mask_in_box, "hflip_tta": hflip_tta,
               "model_method": meta.get("method")},
        progress=progress, flow_path=flow_path, **refine_options,
    )
