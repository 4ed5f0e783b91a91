"""Inter-pixel-relation labels from CAMs (IRN ``cam_to_ir_label``, Ahn et al., CVPR 2019 §3.2).

A pixel is confident foreground of class c where the largest CAM beats
``conf_fg_thres`` (0.30) and c is its argmax; confident background where every
CAM is below ``conf_bg_thres`` (0.05); everything else is unsure (255). Both
the foreground and the background decision are refined with a dense CRF at
image resolution (Krähenbühl & Koltun; IRN's ``crf_inference_label``: unary
from the hard labels with ground-truth probability 0.7, pairwise Gaussian
sxy=3 compat=3, bilateral sxy=50 srgb=5 compat=10, 10 mean-field steps).

``motion_background`` (**our addition**, off in IRN / flowIRN): pixels that do
not move against the camera (:func:`wsvis.baselines.motion.motion_foreground`
of :func:`~wsvis.baselines.motion.residual_flow_magnitude`, both at their
defaults: homography, Otsu, 1-px floor; the ``motion`` baseline's mask, not
its ``baselines.motion`` config) and are not
confident foreground become confident background, except within
``motion_margin`` grid pixels (x4 image pixels) of moving or foreground pixels.
IRN's background needs *every* CAM below 0.05; a CAM of a weakly trained
classifier stays above that over most of the frame, so the IR labels had
almost no background next to the objects, hence almost no foreground /
background pairs within the radius, and the class-boundary branch learned no
object contour (the random walk then floods the frame). Only the ``fcam``
labels (flowIRN's, which already use the flow) take it: the ``cam`` labels of
the ``irn`` variant stay flow-free, as Table 4's first row.

Labels live on the stride-4 grid ``(ceil(H/4), ceil(W/4))`` of the CAM
artifact: 0 background, c + 1 for category index c (= category id), 255 unsure.

Artifact ``irn/labels/{source}/{video}.zarr`` (stage ``"ir_labels"``): array
``labels`` (T, h, w) uint8, attrs ``categories``, ``source`` (``cam`` or
``fcam``), ``stride`` 4, ``frame_size``, the thresholds and ``crf``.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from tqdm import tqdm

from wsvis.baselines.motion import motion_foreground, residual_flow_magnitude
from wsvis.flow.stage import frame_flow, read_flow
from wsvis.io.images import FrameError, read_image
from wsvis.io.store import ArtifactWriter, open_artifact
from wsvis.irn.net import grid_size

__all__ = ["IGNORE", "ir_label", "crf_inference_label", "make_video_ir_labels", "read_ir_labels", "upsample_cam"]

IGNORE = 255


def upsample_cam(cam: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """Stride-4 grid maps (C, h, w) -> (C, H, W) float32: bilinear x4 (align_corners=False), cropped to the frame."""
    h, w = cam.shape[-2:]
    t = torch.from_numpy(np.ascontiguousarray(cam, dtype=np.float32))[None]
    up = F.interpolate(t, size=(4 * h, 4 * w), mode="bilinear", align_corners=False)[0]
    return up[:, : frame_size[0], : frame_size[1]].numpy()


def crf_inference_label(image: np.ndarray, labels: np.ndarray, n_labels: int, *, t: int = 10, gt_prob: float = 0.7) -> np.ndarray:
    """Dense-CRF refinement of a hard label map (IRN ``imutils.crf_inference_label``).

    Args:
        image: (H, W, 3) uint8 RGB.
        labels: (H, W) int in [0, n_labels).
        n_labels: number of labels.
        t: mean-field iterations (10).
        gt_prob: confidence of the given labels in the unary (0.7).

    Returns:
        (H, W) int64 refined labels.

    Raises:
        ImportError: pydensecrf is not installed (``pip install pydensecrf2``;
            or pass ``crf=False`` to :func:`ir_label`).
    """
    try:
        import pydensecrf.densecrf as dcrf
        from pydensecrf.utils import unary_from_labels
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the dense CRF needs pydensecrf (pip install pydensecrf2); "
            "or set crf: false to threshold the CAMs without it"
        ) from exc
    h, w = labels.shape
    if n_labels < 2:
        return np.zeros((h, w), np.int64)
    d = dcrf.DenseCRF2D(w, h, n_labels)
    d.setUnaryEnergy(unary_from_labels(labels.astype(np.int32), n_labels, gt_prob=gt_prob, zero_unsure=False))
    d.addPairwiseGaussian(sxy=3, compat=3)
    d.addPairwiseBilateral(sxy=50, srgb=5, rgbim=np.ascontiguousarray(image, dtype=np.uint8), compat=10)
    q = np.asarray(d.inference(t)).reshape(n_labels, h, w)
    return q.argmax(0)


def ir_label(
    cam: np.ndarray,
    image: np.ndarray,
    *,
    conf_fg_thres: float = 0.30,
    conf_bg_thres: float = 0.05,
    crf: bool = True,
    static: np.ndarray | None = None,
    motion_margin: int = 2,
) -> np.ndarray:
    """IR label map of one frame (IRN ``cam_to_ir_label``), optionally with motion background.

    Args:
        cam: (C, h, w) float CAM (or f-CAM) on the stride-4 grid; a class is
            the frame's tag iff its map is not all zero.
        image: (H, W, 3) uint8 RGB frame, with ``(h, w) == (ceil(H/4), ceil(W/4))``.
        conf_fg_thres: confident-foreground threshold (IRN 0.30).
        conf_bg_thres: confident-background threshold (IRN 0.05).
        crf: refine with the dense CRF (IRN). ``False`` thresholds the
            upsampled CAMs directly — the substitute when pydensecrf is not
            available; labels are then blockier and less aligned to edges.
        static: (H, W) bool pixels that do not move against the camera, or
            None (IRN). Where given, static pixels that are not confident
            foreground and lie farther than ``motion_margin`` grid pixels from
            any moving or foreground pixel become background (module docstring).
        motion_margin: that margin in stride-4 grid pixels (4x in image pixels).

    Returns:
        (h, w) uint8: 0 background, c + 1 for class index c, 255 unsure.
        A frame without tags is all background.

    Raises:
        ValueError: the CAM grid or ``static`` does not match the image.
        ImportError: ``crf=True`` without pydensecrf.
    """
    cam = np.asarray(cam, dtype=np.float32)
    if static is not None and np.shape(static) != image.shape[:2]:
        raise ValueError(f"static mask {np.shape(static)} does not fit a {image.shape[:2]} frame")
    big_h, big_w = image.shape[:2]
    h, w = cam.shape[-2:]
    if (h, w) != (-(-big_h // 4), -(-big_w // 4)):
        raise ValueError(f"CAM grid {(h, w)} does not fit a {big_h}x{big_w} frame at stride 4")
    keys = np.flatnonzero(cam.reshape(len(cam), -1).max(1) > 0)
    lut = np.concatenate([[0], keys + 1]).astype(np.uint8)
    if len(keys) == 0:
        return np.zeros((h, w), np.uint8)
    up = upsample_cam(cam[keys], (big_h, big_w))

    def decide(thres: float) -> np.ndarray:
        scores = np.concatenate([np.full((1, big_h, big_w), thres, np.float32), up])
        hard = scores.argmax(0)
        if crf:
            hard = crf_inference_label(image, hard, len(lut))
        return lut[hard]

    fg = decide(conf_fg_thres)
    bg = decide(conf_bg_thres)
    conf = fg.copy()
    conf[fg == 0] = IGNORE
    conf[(fg == 0) & (bg == 0)] = 0
    if static is not None:
        keep_out = ~np.asarray(static, bool) | (fg > 0)
        if motion_margin > 0:
            side = 8 * int(motion_margin) + 1
            keep_out = ndimage.binary_dilation(keep_out, structure=np.ones((side, side), bool))
        conf[~keep_out] = 0
    # back to the stride-4 grid, nearest (the pixel at each cell's centre)
    ys = np.minimum(np.arange(h) * 4 + 2, big_h - 1)
    xs = np.minimum(np.arange(w) * 4 + 2, big_w - 1)
    return np.ascontiguousarray(conf[np.ix_(ys, xs)])


def open_video_cams(cam_path: str | os.PathLike, source: str, num_frames: int) -> tuple[Any, tuple[int, int], list[str]]:
    """Open the ``source`` CAMs of a video's CAM artifact for the IRN steps.

    Args:
        cam_path: ``cam/{video}.zarr``.
        source: ``"cam"`` (IRN) or ``"fcam"`` (flowIRN Eq. 2).
        num_frames: frames of the video (T), which the artifact must hold.

    Returns:
        ``(cams, (H, W), categories)``: the lazy (T, C, h, w) array on the
        stride-4 grid, the frame size in pixels, the class names in id order.

    Raises:
        ValueError: bad ``source``, frame count differing, or a grid that is not
            the stride-4 grid of the frame size.
        ArtifactError: missing / incomplete CAM artifact.
    """
    if source not in ("cam", "fcam"):
        raise ValueError(f"source must be 'cam' or 'fcam', got {source!r}")
    group = open_artifact(cam_path, "cam")
    cams = group[source]
    if cams.shape[0] != num_frames:
        raise ValueError(f"{cam_path}: {cams.shape[0]} CAM frames but {num_frames} images")
    big_h, big_w = (int(v) for v in group.attrs["frame_size"])
    if tuple(cams.shape[2:]) != grid_size(big_h, big_w):
        raise ValueError(f"{cam_path}: CAM grid {tuple(cams.shape[2:])} is not the stride-4 grid of {big_h}x{big_w}")
    return cams, (big_h, big_w), list(group.attrs.get("categories", []))


def read_frame_like_cams(path: str, frame_size: tuple[int, int]) -> np.ndarray:
    """Decode a frame ((H, W, 3) uint8 RGB); FrameError naming it if its size is not the CAMs' ``frame_size``."""
    img = read_image(path)
    if img.shape[:2] != tuple(frame_size):
        raise FrameError(f"{path}: frame size {img.shape[:2]} differs from the CAMs' {tuple(frame_size)}")
    return img


def make_video_ir_labels(
    images: Sequence[str | os.PathLike],
    cam_path: str | os.PathLike,
    source: str,
    out: str | os.PathLike,
    *,
    conf_fg_thres: float = 0.30,
    conf_bg_thres: float = 0.05,
    crf: bool = True,
    motion_background: bool = False,
    motion_margin: int = 2,
    flow_path: str | os.PathLike | None = None,
    params: dict[str, Any] | None = None,
    progress: bool = True,
) -> None:
    """Write the IR label artifact of one video (``irn/labels/{source}/{video}.zarr``).

    Args:
        images: the video's frames in order (T paths).
        cam_path: its CAM artifact (``cam/{video}.zarr``, stage ``"cam"``).
        source: ``"cam"`` (IRN) or ``"fcam"`` (flowIRN's flow-amplified CAMs).
        out: artifact path.
        conf_fg_thres, conf_bg_thres, crf: of :func:`ir_label`.
        motion_background, motion_margin: static pixels as background
            (module docstring); applied to the ``fcam`` source only.
        flow_path: the video's flow artifact (gap 1), needed by
            ``motion_background`` for ``fcam``; frame t uses ``forward[t]``,
            the last frame ``backward[T-2]``.
        params: the stage's config section (stored in attrs).
        progress: tqdm bar over frames.

    Raises:
        ValueError: bad ``source``, frame count differing from the CAMs, or
            ``motion_background`` for ``fcam`` without a flow artifact.
        ArtifactError: missing / incomplete CAM artifact.
        FrameError: unreadable frame or frame size differing from the CAMs'.
    """
    cams, (big_h, big_w), categories = open_video_cams(cam_path, source, len(images))
    images = [os.fspath(p) for p in images]
    _, _, h, w = cams.shape
    use_motion = bool(motion_background) and source == "fcam" and len(images) > 1
    if use_motion and flow_path is None:
        raise ValueError(f"{out}: ir_labels.motion_background needs the video's flow artifact (--flow)")
    forward = backward = None
    if use_motion:
        forward, backward = read_flow(flow_path, 1, "forward"), read_flow(flow_path, 1, "backward")
    attrs = {
        "categories": categories,
        "source": source,
        "stride": 4,
        "conf_fg_thres": conf_fg_thres,
        "conf_bg_thres": conf_bg_thres,
        "crf": bool(crf),
        "motion_background": use_motion,
        "motion_margin": int(motion_margin),
        "num_frames": len(images),
    }
    with ArtifactWriter(
        out,
        stage="ir_labels",
        params=params,
        frame_size=(big_h, big_w),
        units={"labels": "0 background, category id, 255 unsure; stride-4 grid"},
        attrs=attrs,
    ) as writer:
        labels = writer.create_array("labels", shape=(len(images), h, w), dtype="uint8")
        bar = tqdm(range(len(images)), desc=f"ir labels {os.path.basename(os.fspath(out))}", disable=not progress)
        for t in bar:
            img = read_frame_like_cams(images[t], (big_h, big_w))
            static = None
            if use_motion:
                flow = frame_flow(forward, backward, t, len(images))
                if flow.shape[:2] != (big_h, big_w):
                    raise ValueError(f"{flow_path}: flow of size {flow.shape[:2]} for {big_h}x{big_w} frames")
                static = ~motion_foreground(residual_flow_magnitude(flow))
            labels[t] = ir_label(
                cams[t], img, conf_fg_thres=conf_fg_thres, conf_bg_thres=conf_bg_thres, crf=crf,
                static=static, motion_margin=motion_margin,
            )


def read_ir_labels(path: str | os.PathLike) -> np.ndarray:
    """Load the ``labels`` (T, h, w) uint8 of an IR label artifact.

    Raises:
        ArtifactError: missing, incomplete or not an ``ir_labels`` artifact.
    """
    return open_artifact(path, "ir_labels")["labels"][:]
