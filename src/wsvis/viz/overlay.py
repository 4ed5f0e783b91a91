"""Overlay pictures of CAMs and pseudo-labels on the video frames (per-video PNG sheets).

Sheets follow :mod:`wsvis.viz.flow`: one row per evenly spaced frame, tiles of
a fixed width, written atomically with :func:`wsvis.viz.sheet.write_png`.
Each tile's caption sits in its own strip above the picture
(:func:`wsvis.viz.sheet.titled`) and the labels inside a picture are boxed
and placed by :func:`wsvis.viz.sheet.place_labels`, so no text prints over
other text.
"""

from __future__ import annotations

import colorsys
import os
from pathlib import Path

import cv2
import numpy as np

from wsvis.io.images import read_image
from wsvis.io.pseudo import read_pseudo
from wsvis.io.store import open_artifact
from wsvis.viz.sheet import draw_label, label_size, place_labels, spaced, titled, write_png

__all__ = [
    "cam_overlay", "pseudo_overlay", "track_overlay", "instance_color", "heatmap_blend", "label_overlay",
    "instance_labels",
]

#: Per-array upper end of the colour scale: CAMs are in [0, 1], flow-amplified CAMs up to 2 (f-CAM A = 2).
CAM_RANGE = {"cam": 1.0, "fcam": 2.0}



def _check_frames(images: list, n: int, path) -> None:
    if len(images) != n:
        raise ValueError(f"{path}: {n} frames stored but {len(images)} image paths given")


def _fit(img: np.ndarray, width: int) -> np.ndarray:
    h = max(1, round(img.shape[0] * width / img.shape[1]))
    return cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA)


def _tile_frame(path, width: int) -> np.ndarray:
    return _fit(read_image(path), width)


def instance_color(instance_id: int) -> np.ndarray:
    """Colour of an instance id: (3,) uint8 RGB, the same on every call.

    Hues step by the golden ratio, so consecutive ids get far-apart hues; 0
    (background) is black.
    """
    if instance_id == 0:
        return np.zeros(3, np.uint8)
    hue = (instance_id * 0.618033988749895) % 1.0
    sat = 0.85 if instance_id % 2 else 0.65
    rgb = colorsys.hsv_to_rgb(hue, sat, 0.95)
    return np.round(np.array(rgb) * 255).astype(np.uint8)


def heatmap_blend(image: np.ndarray, heat: np.ndarray, vmax: float = 1.0, alpha: float = 0.5) -> np.ndarray:
    """Blend a jet-coloured heat map onto a frame.

    Args:
        image: (H, W, 3) uint8 RGB.
        heat: (H, W) float, shown on the scale [0, vmax] (clipped).
        vmax: value drawn as the top of the jet scale (dark red).
        alpha: weight of the heat map.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    v = np.clip(np.nan_to_num(np.asarray(heat, np.float32)) / vmax, 0.0, 1.0)
    jet = cv2.cvtColor(cv2.applyColorMap((v * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(image, 1.0 - alpha, jet, alpha, 0.0)


def _upsample(maps: np.ndarray, stride: int, frame_size: tuple[int, int], out_size: tuple[int, int]) -> np.ndarray:
    """(C, h, w) maps at stride ``stride`` -> (C, H', W') at ``out_size`` (via the frame size, cropping the padding)."""
    c, h, w = maps.shape
    big_h, big_w = frame_size
    out = np.empty((c, *out_size), np.float32)
    for k in range(c):
        m = cv2.resize(maps[k].astype(np.float32), (w * stride, h * stride), interpolation=cv2.INTER_LINEAR)
        m = m[:big_h, :big_w]
        out[k] = cv2.resize(m, (out_size[1], out_size[0]), interpolation=cv2.INTER_LINEAR)
    return out


def cam_overlay(
    images: list[str | os.PathLike],
    cam_path: str | os.PathLike,
    out_png: str | os.PathLike,
    *,
    source: str = "both",
    frames: int = 6,
    width: int = 320,
) -> None:
    """Write a PNG sheet of class activation maps over the frames.

    One row per evenly spaced frame t: the frame, then for each shown array
    (``cam``, ``fcam``) the maximum over the classes tagged in that frame
    (classes whose map peaks above 0.01), jet-coloured and blended on the
    frame, with each tagged class's name written at its map's peak. The
    colour scale is [0, 1] for ``cam`` and [0, 2] for ``fcam`` (
    :data:`CAM_RANGE`), so the two columns compare directly.

    Args:
        images: frame paths of the video, in order (T of them).
        cam_path: the video's ``cam/{video}.zarr`` (arrays ``cam``/``fcam``
            (T, C, h, w) float16 at ``attrs["stride"]``, class names in
            ``attrs["categories"]``, ``attrs["frame_size"]`` [H, W]).
        out_png: PNG path (written atomically).
        source: ``"cam"``, ``"fcam"`` or ``"both"`` (the arrays to show;
            ``"both"`` skips a missing ``fcam``).
        frames: number of rows.
        width: tile width in pixels.

    Raises:
        ArtifactError: missing/incomplete artifact or not a CAM artifact.
        ValueError: unknown ``source``, the requested array is absent, or
            ``len(images)`` differs from T.
    """
    if source not in ("cam", "fcam", "both"):
        raise ValueError(f"source {source!r} is not one of 'cam', 'fcam', 'both'")
    group = open_artifact(cam_path, "cam")
    present = [k for k in ("cam", "fcam") if k in group]
    names = [k for k in ("cam", "fcam") if source in (k, "both") and k in present]
    if not names or (source != "both" and source not in present):
        raise ValueError(f"{cam_path}: array {source!r} not stored (arrays: {present})")
    arrays = {k: group[k] for k in names}
    n = arrays[names[0]].shape[0]
    _check_frames(images, n, cam_path)
    categories = list(group.attrs.get("categories") or [])
    stride = int(group.attrs.get("stride", 4))
    _, _, h, w = arrays[names[0]].shape
    frame_size = tuple(group.attrs.get("frame_size") or (h * stride, w * stride))
    if n == 0:
        raise ValueError(f"{cam_path}: no frames stored")

    rows = []
    for t in spaced(n, frames):
        base = _tile_frame(images[t], width)
        tiles = [titled(base, width, f"frame {t}")]
        for key in names:
            maps = _upsample(np.asarray(arrays[key][t], np.float32), stride, frame_size, base.shape[:2])
            peaks = maps.reshape(len(maps), -1).max(axis=1) if len(maps) else np.zeros(0)
            tagged = [c for c in range(len(maps)) if peaks[c] > 0.01]
            heat = maps[tagged].max(axis=0) if tagged else np.zeros(base.shape[:2], np.float32)
            blended = heatmap_blend(base, heat, CAM_RANGE[key])
            texts, anchors = [], []
            for c in tagged:
                y, x = np.unravel_index(int(np.argmax(maps[c])), maps[c].shape)
                name = categories[c] if c < len(categories) else f"class {c + 1}"
                texts.append(f"{name} {peaks[c]:.2f}")
                w, h = label_size(texts[-1])
                anchors.append((int(x) - w // 2, int(y) - h))  # centred just above the peak
            sizes = [label_size(tx) for tx in texts]
            for tx, box in zip(texts, place_labels(anchors, sizes, (blended.shape[1], blended.shape[0]))):
                draw_label(blended, tx, box)
            title = f"{key} max {heat.max():.2f}" if tagged else f"{key}: no class active"
            tiles.append(titled(blended, width, title))
        rows.append(np.hstack(tiles))
    write_png(out_png, np.vstack(rows))


def label_overlay(
    image: np.ndarray,
    label_map: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    categories: list[str] | None = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """Draw one frame's instances: filled in :func:`instance_color`, contoured, captioned.

    Args:
        image: (H, W, 3) uint8 RGB.
        label_map: (H, W) integer instance ids (0 = background), same size as ``image``.
        classes: (N + 1,) category ids (1-based) indexed by instance id.
        scores: (N + 1,) confidences indexed by instance id.
        categories: class names in category-id order (id k -> ``categories[k - 1]``).
        alpha: opacity of the fill.

    Returns:
        (H, W, 3) uint8 RGB; each instance's ``"<class> <score>"`` is written
        in a dark box with a swatch of its colour, at its top-left corner or,
        where that would cover another label, stacked below or above it
        (:func:`instance_labels`).
    """
    out = image.astype(np.float32)
    ids = [int(i) for i in np.unique(label_map) if i]
    for i in ids:
        m = label_map == i
        out[m] = (1 - alpha) * out[m] + alpha * instance_color(i)
    out = out.round().astype(np.uint8)
    for i in ids:
        m = (label_map == i).astype(np.uint8)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        color = tuple(int(c) for c in (instance_color(i) * 0.6).astype(np.uint8))
        cv2.drawContours(out, contours, -1, color, 1)
    for i, text, box in instance_labels(label_map, classes, scores, categories):
        draw_label(out, text, box, instance_color(i))
    return out


def instance_labels(
    label_map: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    categories: list[str] | None = None,
) -> list[tuple[int, str, tuple[int, int, int, int]]]:
    """Where :func:`label_overlay` writes each instance's label (pure: draws nothing).

    Each instance's ``"<class> <score>"`` prefers the top-left corner of its
    mask's bounding box; instances are taken top to bottom (then left to
    right) and :func:`wsvis.viz.sheet.place_labels` stacks a label that would
    cover an earlier one, so the boxes do not intersect.

    Args:
        label_map: (H, W) integer instance ids (0 = background).
        classes: (N + 1,) category ids (1-based) indexed by instance id.
        scores: (N + 1,) confidences indexed by instance id.
        categories: class names in category-id order (id k -> ``categories[k - 1]``).

    Returns:
        ``(instance id, text, (x0, y0, x1, y1))`` per instance present, boxes in
        pixels, half-open.
    """
    ids = [int(i) for i in np.unique(label_map) if i]
    items = []
    for i in ids:
        ys, xs = np.nonzero(label_map == i)
        cls = int(classes[i])
        name = categories[cls - 1] if categories and 0 < cls <= len(categories) else f"class {cls}"
        items.append((int(ys.min()), int(xs.min()), i, f"{name} {float(scores[i]):.2f}"))
    items.sort()
    boxes = place_labels([(x, y) for y, x, _, _ in items], [label_size(tx) for *_, tx in items],
                         (label_map.shape[1], label_map.shape[0]))
    return [(i, tx, box) for (_, _, i, tx), box in zip(items, boxes)]


def pseudo_overlay(
    images: list[str | os.PathLike],
    pseudo_path: str | os.PathLike,
    out_png: str | os.PathLike,
    *,
    frames: int = 6,
    width: int = 320,
    categories: list[str] | None = None,
) -> None:
    """Write a PNG sheet of pseudo-labels over the frames.

    One row per evenly spaced frame t: the frame, and the frame with every
    instance filled in a colour fixed by its instance id
    (:func:`instance_color`), its contour drawn, and ``"<class> <score>"`` at
    its top-left corner (:func:`label_overlay`). Each tile's caption (file
    name; variant and instance count) is in a strip of
    :data:`wsvis.viz.sheet.STRIP_H` pixels above it. The label map is resized
    to the tile with nearest-neighbour interpolation.

    Args:
        images: frame paths of the video, in order (T of them).
        pseudo_path: the video's ``pseudo/{variant}/{video}.zarr``.
        out_png: PNG path (written atomically).
        frames: number of rows.
        width: tile width in pixels.
        categories: class names in category-id order; default the artifact's
            ``attrs["categories"]``.

    Raises:
        ArtifactError: missing/incomplete artifact or not a pseudo-label artifact.
        ValueError: ``len(images)`` differs from T.
    """
    instances, classes, scores, attrs = read_pseudo(pseudo_path)
    _check_frames(images, instances.shape[0], pseudo_path)
    if categories is None:
        categories = list(attrs.get("categories") or [])
    variant = attrs.get("variant", "pseudo")
    rows = []
    for t in spaced(instances.shape[0], frames):
        base = _tile_frame(images[t], width)
        label = cv2.resize(
            np.asarray(instances[t]).astype(np.int32).astype(np.float32),
            (base.shape[1], base.shape[0]),
            interpolation=cv2.INTER_NEAREST,
        ).astype(np.int64)
        k = len([i for i in np.unique(np.asarray(instances[t])) if i])
        drawn = label_overlay(base, label, classes, scores, categories)
        rows.append(
            np.hstack(
                [
                    titled(base, width, f"{Path(images[t]).name} (frame {t})"),
                    titled(drawn, width, f"{variant}: {k} instance{'s' if k != 1 else ''}"),
                ]
            )
        )
    if not rows:
        raise ValueError(f"{pseudo_path}: no frames stored")
    write_png(out_png, np.vstack(rows))


def track_overlay(
    images: list,
    results: list[dict],
    out_png: str | os.PathLike,
    *,
    frames: int = 6,
    width: int = 320,
    categories: list[str] | None = None,
    title: str = "tracks",
) -> None:
    """Per-video sheet of tracks: one colour per track id (the same in every frame).

    Args:
        images: the video's T frame paths.
        results: the video's YouTube-VIS results (``{"category_id", "score",
            "segmentations": [RLE or None] * T}``), track id = position + 1.
        out_png: PNG path (written atomically).
        frames, width: rows and tile width in pixels.
        categories: class names in category-id order.
        title: caption prefix of the overlay column (e.g. ``"maskconsist / stc"``).

    Masks at another size than the frames (tracks are written at the source size,
    frames may be at ``dataset.process_size``) are resized to the frames.
    Where two tracks claim a pixel, the later track in ``results`` is drawn.

    Raises:
        ValueError: a track's segmentation list length differs from ``len(images)``.
    """
    from wsvis.io.rle import decode_rle
    from wsvis.transforms import resize_masks

    n = len(images)
    for r in results:
        if len(r["segmentations"]) != n:
            raise ValueError(f"{out_png}: a track has {len(r['segmentations'])} frames, the video {n}")
    classes = np.array([0] + [r["category_id"] for r in results])
    scores = np.array([0.0] + [r["score"] for r in results])
    rows = []
    for t in spaced(n, frames):
        img = read_image(images[t])
        label = np.zeros(img.shape[:2], np.int64)
        for k, r in enumerate(results, start=1):
            seg = r["segmentations"][t]
            if seg is not None:
                # tracks are at the source size; the frames may be at the processing size
                label[resize_masks(decode_rle(seg, *img.shape[:2]).astype(bool), img.shape[:2])] = k
        shown = len(np.unique(label)) - 1
        # draw at tile size, so labels keep their font size whatever the frame size
        img = _fit(img, width)
        label = cv2.resize(label.astype(np.float32), (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
        drawn = label_overlay(img, label.astype(np.int64), classes, scores, categories)
        rows.append(np.hstack([titled(img, width, f"frame {t}"), titled(drawn, width, f"{title}: {shown} tracks")]))
    if not rows:
        raise ValueError(f"{out_png}: the video has no frames")
    write_png(out_png, np.vstack(rows))
