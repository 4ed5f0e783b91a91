"""Pseudo-label artifacts: ``pseudo/{variant}/{video}.zarr``.

Arrays (``../shared/DESIGN.md``, "Artifacts"):

* ``instances`` (T, H, W) uint16 label map, 0 = background. Instance ids are
  unique within the video (1..N, assigned frame by frame), so an id names one
  mask in one frame;
* ``classes`` (N + 1,) int32: category id (1-based, as in ``gt.json``) of each
  instance id; ``classes[0] = 0`` (background);
* ``scores`` (N + 1,) float32: confidence of each instance; ``scores[0] = 0``;
* ``frames`` (N + 1,) int32: the frame index of each instance id (-1 for 0).

Attrs: the ``stage`` (``"pseudo"``), ``variant``, ``categories`` (names in id
order) and the producing stage's params, plus the store's usual attrs.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import zarr

from wsvis.io.store import DEFAULT_COMPRESSOR, ArtifactWriter, open_artifact

__all__ = ["PseudoLabelWriter", "read_pseudo", "frame_instances"]


class PseudoLabelWriter:
    """Write a pseudo-label artifact frame by frame (atomically, via :class:`ArtifactWriter`).

    Usage::

        with PseudoLabelWriter(out, num_frames=T, frame_size=(H, W), variant="flowirn",
                               categories=cats, params=cfg) as w:
            for t in range(T):
                w.add_frame(t, masks_t, classes_t, scores_t)

    Args:
        out: artifact path.
        num_frames: T.
        frame_size: (H, W) pixels.
        variant: pseudo-labeler name (``irn``, ``flowirn``, ``cam``, ``stc``...).
        categories: class names in category-id order.
        params: the producing stage's config, stored in attrs.
        compressor: a key of :data:`wsvis.io.store.COMPRESSORS`.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        *,
        num_frames: int,
        frame_size: tuple[int, int],
        variant: str,
        categories: list[str],
        params: dict | None = None,
        attrs: dict | None = None,
        compressor: str = DEFAULT_COMPRESSOR,
    ) -> None:
        self._writer = ArtifactWriter(
            out,
            stage="pseudo",
            params=params,
            frame_size=frame_size,
            units={"instances": "instance id (0 = background)", "scores": "confidence in [0, 1]"},
            attrs={"variant": variant, "categories": list(categories), **(attrs or {})},
            compressor=compressor,
        )
        self.num_frames = num_frames
        self.frame_size = tuple(frame_size)
        self.num_categories = len(categories)
        self._classes: list[int] = [0]
        self._scores: list[float] = [0.0]
        self._frames: list[int] = [-1]
        self._instances: zarr.Array | None = None

    def __enter__(self) -> "PseudoLabelWriter":
        self._writer.__enter__()
        h, w = self.frame_size
        self._instances = self._writer.create_array("instances", shape=(self.num_frames, h, w), dtype="uint16")
        return self

    def create_array(self, name: str, **kwargs: Any) -> zarr.Array:
        """An extra array beside the contract's (e.g. STC's ``foreground``); keywords of
        :meth:`wsvis.io.store.ArtifactWriter.create_array`."""
        return self._writer.create_array(name, **kwargs)

    def add_frame(self, t: int, masks: np.ndarray, classes: np.ndarray, scores: np.ndarray) -> None:
        """Store the instances of frame ``t``.

        Args:
            t: frame index.
            masks: (K, H, W) bool; where masks overlap, the later one wins (its
                pixels are taken from the earlier ones), so order by increasing score.
            classes: (K,) category ids in 1..len(categories).
            scores: (K,) float.

        Raises:
            ValueError: shapes disagree with ``frame_size``/each other, or a class id is out of range.
        """
        masks = np.asarray(masks, dtype=bool)
        classes = np.asarray(classes, dtype=np.int64).reshape(-1)
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        if masks.ndim != 3 or masks.shape[1:] != self.frame_size or not (len(masks) == len(classes) == len(scores)):
            raise ValueError(
                f"frame {t}: masks {masks.shape}, classes {classes.shape}, scores {scores.shape} "
                f"do not fit frame size {self.frame_size}"
            )
        if len(classes) and (classes.min() < 1 or classes.max() > self.num_categories):
            raise ValueError(f"frame {t}: class ids {classes.tolist()} outside 1..{self.num_categories}")
        label = np.zeros(self.frame_size, np.uint16)
        for mask, cls, score in zip(masks, classes, scores):
            if not mask.any():
                continue
            if len(self._classes) >= np.iinfo(np.uint16).max:
                raise ValueError("more than 65535 instances in one video do not fit a uint16 label map")
            label[mask] = len(self._classes)
            self._classes.append(int(cls))
            self._scores.append(float(score))
            self._frames.append(int(t))
        assert self._instances is not None
        self._instances[t] = label

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self._writer.write_array("classes", np.asarray(self._classes, np.int32))
            self._writer.write_array("scores", np.asarray(self._scores, np.float32))
            self._writer.write_array("frames", np.asarray(self._frames, np.int32))
            self._writer.update_attrs({"num_instances": len(self._classes) - 1})
        return self._writer.__exit__(exc_type, exc, tb)


def read_pseudo(path: str | os.PathLike) -> tuple[zarr.Array, np.ndarray, np.ndarray, dict[str, Any]]:
    """Open a pseudo-label artifact.

    Returns:
        ``(instances, classes, scores, attrs)``: the lazy (T, H, W) uint16
        label map, (N + 1,) int32 category ids, (N + 1,) float32 scores, and
        the group attrs (``variant``, ``categories``, ``params``...).

    Raises:
        ArtifactError: missing, incomplete or not a pseudo-label artifact.
    """
    group = open_artifact(path, "pseudo")
    return group["instances"], group["classes"][:], group["scores"][:], dict(group.attrs)


def frame_instances(
    label_map: np.ndarray, classes: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split one frame's (H, W) label map into instances.

    Returns:
        ``(ids, masks, class_ids, scores)``: (K,) instance ids present,
        (K, H, W) bool masks, (K,) int32 category ids, (K,) float32 scores,
        in increasing id order.
    """
    ids = np.unique(label_map)
    ids = ids[ids > 0]
    masks = label_map[None] == ids[:, None, None]
    return ids, masks, classes[ids], scores[ids]
