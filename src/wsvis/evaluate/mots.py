"""Multi-object tracking and segmentation metrics on TrackEval: sMOTSA, MOTSA, MOTSP, HOTA, IDF1.

* MOTS metrics (Voigtlaender et al., "MOTS: Multi-Object Tracking and
  Segmentation", CVPR 2019), the KITTI MOTS metrics of STC-Seg (Sec. IV):
  with mask IoU > 0.5 matches, TP~ = the summed IoU of the matches,
  ``MOTSA = (TP - FP - IDSW) / |GT|``, ``sMOTSA = (TP~ - FP - IDSW) / |GT|``,
  ``MOTSP = TP~ / TP``. These are TrackEval's CLEAR ``MOTA``, ``sMOTA`` and
  ``MOTP`` computed on masks.
* HOTA (Luiten et al., "HOTA: A Higher Order Metric for Evaluating
  Multi-Object Tracking", IJCV 2021): DetA, AssA, LocA, HOTA averaged over
  alpha 0.05:0.05:0.95, as TrackEval reports it.
* IDF1 (Ristani et al., ECCV 2016 workshops), TrackEval's ``Identity``.

Nothing is re-implemented: files are read by TrackEval's KITTI MOTS reader
(:class:`MOTSTxt`, a :class:`trackeval.datasets.KittiMOTS` over two plain
folders with any class ids), preprocessed by KITTI MOTS's rules (unmatched
predictions lying > 50 % in an ignore region are dropped) and scored by
``trackeval.metrics.HOTA``, ``CLEAR`` and ``Identity`` through
``trackeval.Evaluator``; sequences are pooled as TrackEval's
``COMBINED_SEQ`` (counts summed, not per-sequence means).

File format (KITTI MOTS txt, one line per object per frame, space separated):
``frame obj_id class_id height width rle`` with 0-based frames, ids unique
within a frame, ``rle`` the compressed COCO RLE string, and masks that do not
overlap within a frame (TrackEval refuses overlapping masks). KITTI MOTS
uses class 1 car, 2 pedestrian, 10 ignore region, ``obj_id = class * 1000 + k``.
We write gt category ids as classes (:func:`gt_to_mots_txt`); an ignore
class only applies when ``ignore_class_id`` is given (pass 10 for real
KITTI MOTS ground truth).

:func:`mot_box_metrics` scores MOTChallenge 2D box files with TrackEval's
``MotChallenge2DBox``; ``tests/test_evaluate_mots.py`` checks it against the
MOT15 reference numbers of mmtracking / py-motmetrics.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import trackeval
from pycocotools import mask as mask_util
from trackeval.datasets import KittiMOTS, MotChallenge2DBox

from wsvis.io.rle import decode_rle, encode_mask
from wsvis.io.store import atomic_file

__all__ = ["MOTSTxt", "write_mots_txt", "gt_to_mots_txt", "mots_metrics", "mot_box_metrics", "row_from_trackeval"]


# ------------------------------------------------------------------------------------------------ writing


def write_mots_txt(objects: Iterable[tuple[int, int, int, Any]], out: str | os.PathLike) -> int:
    """Write a KITTI MOTS txt file atomically.

    Args:
        objects: ``(frame, obj_id, class_id, mask)`` with ``mask`` an (H, W)
            bool array or a COCO RLE dict (``size`` [H, W], str/bytes counts);
            empty masks are skipped. Lines are written sorted by (frame, obj_id).
        out: the file path.

    Returns:
        The number of lines written.
    """
    lines = []
    for t, obj, cls, mask in objects:
        if isinstance(mask, dict):
            h, w = (int(s) for s in mask["size"])
            counts = mask["counts"]
            if isinstance(counts, list):
                rle = encode_mask(decode_rle(mask, h, w).astype(bool))
                counts = rle["counts"]
            counts = counts.decode("ascii") if isinstance(counts, bytes) else counts
            if mask_util.area({"size": [h, w], "counts": counts.encode("ascii")}) == 0:
                continue
        else:
            mask = np.asarray(mask, bool)
            if not mask.any():
                continue
            h, w = mask.shape
            counts = encode_mask(mask)["counts"]
        lines.append((int(t), int(obj), f"{int(t)} {int(obj)} {int(cls)} {h} {w} {counts}"))
    lines.sort()
    with atomic_file(out) as tmp:
        Path(tmp).write_text("".join(line + "\n" for _, _, line in lines))
    return len(lines)


def gt_to_mots_txt(gt: dict, video: str, out: str | os.PathLike) -> int:
    """Write the ground truth of one video of a YouTube-VIS gt as a KITTI MOTS txt.

    Class id = the gt ``category_id``; object id = ``category_id * 1000 + k``
    with k the 1-based index of the gt track in the video (KITTI's
    convention). Frames are 0-based. MOTS masks may not overlap: where two gt
    masks of a frame overlap, the pixel stays with the track listed first in
    ``gt`` (a deterministic rule; label-map ground truth never overlaps).

    Returns:
        Number of lines written.

    Raises:
        KeyError: ``video`` is not in ``gt`` (names the videos).
    """
    byname = {v["name"]: v for v in gt.get("videos", [])}
    if video not in byname:
        raise KeyError(f"video {video!r} not in gt (videos: {sorted(byname)})")
    v = byname[video]
    t_len, h, w = int(v["length"]), int(v["height"]), int(v["width"])
    anns = [a for a in gt.get("annotations", []) if a["video_id"] == v["id"]]
    taken = np.zeros((t_len, h, w), bool)
    objects = []
    for k, ann in enumerate(anns, 1):
        cls = int(ann["category_id"])
        for t, seg in enumerate(list(ann["segmentations"])[:t_len]):
            if not seg:
                continue
            m = decode_rle(seg, h, w).astype(bool) & ~taken[t]
            taken[t] |= m
            objects.append((t, cls * 1000 + k, cls, m))
    return write_mots_txt(objects, out)


# ------------------------------------------------------------------------------------------------ TrackEval glue


class MOTSTxt(KittiMOTS):
    """TrackEval's KITTI MOTS dataset over two folders of ``{seq}.txt``, with any class ids.

    Reading, the overlap check, similarity (mask IoU) and preprocessing are
    :class:`trackeval.datasets.KittiMOTS`'s; only the folder layout, the
    class list and the ignore class differ.

    Args:
        gt_dir: folder with the gt ``{seq}.txt``.
        res_dir: folder with the tracker's ``{seq}.txt``.
        seq_lengths: ``{seq: number of frames}``.
        classes: ``{class name: class id}`` to evaluate (each separately).
        ignore_class_id: gt class whose masks are ignore regions (KITTI: 10), or None.
    """

    def __init__(
        self,
        gt_dir: str | os.PathLike,
        res_dir: str | os.PathLike,
        seq_lengths: dict[str, int],
        classes: dict[str, int],
        ignore_class_id: int | None = None,
    ) -> None:
        trackeval.datasets._base_dataset._BaseDataset.__init__(self)
        res_dir = Path(res_dir).resolve()
        self.config = {
            **self.get_default_dataset_config(),
            "GT_FOLDER": str(gt_dir),
            "TRACKERS_FOLDER": str(res_dir.parent),
            "TRACKER_SUB_FOLDER": "",
            "GT_LOC_FORMAT": "{gt_folder}/{seq}.txt",
            "SEQ_INFO": dict(seq_lengths),
            "PRINT_CONFIG": False,
        }
        self.gt_fol = str(gt_dir)
        self.tracker_fol = str(res_dir.parent)
        self.tracker_sub_fol = ""
        self.output_fol = tempfile.gettempdir()  # never written: the evaluator's outputs are off
        self.output_sub_fol = ""
        self.data_is_zipped = False
        self.should_classes_combine = True
        self.use_super_categories = False
        self.ignore_class_id = ignore_class_id
        if ignore_class_id is not None and ignore_class_id in classes.values():
            raise ValueError(f"class id {ignore_class_id} is both evaluated and the ignore class")
        self.class_list = list(classes)
        self.class_name_to_class_id = {k: str(int(v)) for k, v in classes.items()}
        self.seq_list = list(seq_lengths)
        self.seq_lengths = {k: int(v) for k, v in seq_lengths.items()}
        self.tracker_list = [res_dir.name]
        self.tracker_to_disp = {res_dir.name: res_dir.name}
        for seq in self.seq_list:
            for f in (Path(gt_dir) / f"{seq}.txt", res_dir / f"{seq}.txt"):
                if not f.is_file():
                    raise FileNotFoundError(f"MOTS txt for sequence {seq!r} not found: {f}")

    def _load_simple_text_file(self, file, crowd_ignore_filter=None, **kwargs):  # TrackEval hook
        if crowd_ignore_filter is not None:  # the gt side: KittiMOTS asks for class '10'
            crowd_ignore_filter = None if self.ignore_class_id is None else {2: [str(self.ignore_class_id)]}
        return KittiMOTS._load_simple_text_file(file, crowd_ignore_filter=crowd_ignore_filter, **kwargs)


def _evaluate(dataset, metrics: list) -> dict:
    """Run ``trackeval.Evaluator`` quietly (no files, no printing): ``res[seq][cls][metric]`` incl. COMBINED_SEQ."""
    config = {
        **trackeval.Evaluator.get_default_eval_config(),
        "USE_PARALLEL": False,
        "PRINT_RESULTS": False,
        "PRINT_CONFIG": False,
        "TIME_PROGRESS": False,
        "OUTPUT_SUMMARY": False,
        "OUTPUT_DETAILED": False,
        "PLOT_CURVES": False,
        "LOG_ON_ERROR": None,
        "BREAK_ON_ERROR": True,
    }
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = trackeval.Evaluator(config)
        res, msg = evaluator.evaluate([dataset], metrics)
    name = dataset.get_name()
    tracker = dataset.tracker_list[0]
    if msg[name][tracker] != "Success":
        raise RuntimeError(f"TrackEval failed on {tracker}: {msg[name][tracker]}")
    return res[name][tracker]


def _metrics() -> list:
    cfg = {"PRINT_CONFIG": False}
    return [trackeval.metrics.HOTA(cfg), trackeval.metrics.CLEAR(cfg), trackeval.metrics.Identity(cfg)]


def row_from_trackeval(r: dict, masks: bool = True) -> dict[str, float]:
    """Flatten one TrackEval result (``res[seq][cls]``) into named numbers.

    With ``masks`` the CLEAR numbers are named as MOTS (``sMOTSA``, ``MOTSA``,
    ``MOTSP``), else as MOT (``MOTA``, ``MOTP``). HOTA, DetA, AssA, LocA are
    means over TrackEval's 19 alpha thresholds.
    """
    h, c, i = r["HOTA"], r["CLEAR"], r["Identity"]
    row = {k: float(np.mean(h[k])) for k in ("HOTA", "DetA", "AssA", "LocA")}
    if masks:
        row.update({"sMOTSA": float(c["sMOTA"]), "MOTSA": float(c["MOTA"]), "MOTSP": float(c["MOTP"])})
    else:
        row.update({"MOTA": float(c["MOTA"]), "MOTP": float(c["MOTP"])})
    row.update({k: float(i[k]) for k in ("IDF1", "IDP", "IDR")})
    row.update({k: int(c[k]) for k in ("IDSW", "CLR_TP", "CLR_FP", "CLR_FN", "MT", "ML", "Frag")})
    row.update({"gt_dets": int(r["Count"]["GT_Dets"]), "tracker_dets": int(r["Count"]["Dets"])})
    return row


def _class_ids_in(files: Iterable[Path]) -> list[int]:
    ids: set[int] = set()
    for f in files:
        for line in Path(f).read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3:
                ids.add(int(parts[2]))
    return sorted(ids)


def mots_metrics(
    gt_txt_dir: str | os.PathLike,
    res_txt_dir: str | os.PathLike,
    seqs: list[str],
    seq_lengths: dict[str, int] | list[int],
    *,
    classes: dict[str, int] | None = None,
    ignore_class_id: int | None = None,
) -> dict[str, Any]:
    """MOTS and HOTA metrics of KITTI-MOTS txt tracks against gt txt (module docstring), via TrackEval.

    Args:
        gt_txt_dir: folder of gt ``{seq}.txt`` (e.g. from :func:`gt_to_mots_txt`).
        res_txt_dir: folder of the tracker's ``{seq}.txt`` (same sequences).
        seqs: sequence (video) names.
        seq_lengths: frames per sequence, ``{seq: T}`` or a list parallel to ``seqs``.
        classes: ``{name: class id}`` to evaluate separately (default: every
            class id in the gt files, named by its id, without the ignore class).
        ignore_class_id: gt class of ignore regions (10 for real KITTI MOTS), or None.

    Returns:
        ``{"per_class": {name: row}, "all": row, "per_seq": {seq: {name: row}}}``
        where a row (:func:`row_from_trackeval`) has ``HOTA, DetA, AssA,
        LocA, sMOTSA, MOTSA, MOTSP, IDF1, IDP, IDR`` floats and ``IDSW,
        CLR_TP, CLR_FP, CLR_FN, MT, ML, Frag, gt_dets, tracker_dets`` ints,
        pooled over sequences; ``"all"`` pools the classes by detections
        (TrackEval's ``cls_comb_det_av``). No class: ``per_class`` is empty
        and ``all`` holds NaN.

    Raises:
        FileNotFoundError: a sequence file is missing.
        RuntimeError / trackeval's TrackEvalException: unreadable files,
            overlapping masks, frames outside ``[0, T)``.
    """
    if not isinstance(seq_lengths, dict):
        seq_lengths = dict(zip(seqs, seq_lengths))
    lengths = {s: int(seq_lengths[s]) for s in seqs}
    if classes is None:
        ids = _class_ids_in(Path(gt_txt_dir) / f"{s}.txt" for s in seqs if (Path(gt_txt_dir) / f"{s}.txt").is_file())
        classes = {str(i): i for i in ids if i != ignore_class_id}
    if not classes:
        return {
            "per_class": {},
            "all": {"HOTA": math.nan, "sMOTSA": math.nan, "MOTSA": math.nan, "MOTSP": math.nan},
            "per_seq": {},
        }
    dataset = MOTSTxt(gt_txt_dir, res_txt_dir, lengths, classes, ignore_class_id)
    res = _evaluate(dataset, _metrics())
    comb = res["COMBINED_SEQ"]
    return {
        "per_class": {c: row_from_trackeval(comb[c]) for c in classes},
        "all": row_from_trackeval(comb["cls_comb_det_av"]),
        "per_seq": {s: {c: row_from_trackeval(res[s][c]) for c in classes} for s in seqs},
    }


def mot_box_metrics(
    gt_dir: str | os.PathLike,
    res_dir: str | os.PathLike,
    seq_lengths: dict[str, int],
    *,
    benchmark: str = "MOT15",
    gt_loc_format: str = "{gt_folder}/{seq}/gt/gt.txt",
) -> dict[str, Any]:
    """CLEAR, Identity and HOTA of MOTChallenge 2D box tracks with TrackEval's ``MotChallenge2DBox``.

    Args:
        gt_dir: folder holding ``{seq}/gt/gt.txt`` (or ``gt_loc_format``).
        res_dir: folder holding the tracker's ``{seq}.txt`` (MOTChallenge CSV).
        seq_lengths: ``{seq: number of frames}``.
        benchmark: MOTChallenge benchmark name; "MOT15" does no distractor preprocessing.
        gt_loc_format: where a sequence's gt is, TrackEval's ``GT_LOC_FORMAT``.

    Returns:
        ``{"combined": row, "per_seq": {seq: row}}`` for the pedestrian class,
        rows as :func:`row_from_trackeval` with ``masks=False`` (``MOTA``,
        ``MOTP`` = box IoU, ``HOTA``, ``IDF1``, ``IDSW``...), ``combined``
        pooled over sequences (TrackEval's ``COMBINED_SEQ``).
    """
    res_dir = Path(res_dir).resolve()
    with contextlib.redirect_stdout(io.StringIO()):
        dataset = MotChallenge2DBox(
            {
                "GT_FOLDER": str(gt_dir),
                "TRACKERS_FOLDER": str(res_dir.parent),
                "TRACKERS_TO_EVAL": [res_dir.name],
                "TRACKER_SUB_FOLDER": "",
                "OUTPUT_FOLDER": tempfile.gettempdir(),  # never written: outputs are off
                "BENCHMARK": benchmark,
                "SKIP_SPLIT_FOL": True,
                "SEQ_INFO": dict(seq_lengths),
                "GT_LOC_FORMAT": gt_loc_format,
                "PRINT_CONFIG": False,
            }
        )
    res = _evaluate(dataset, _metrics())
    return {
        "combined": row_from_trackeval(res["COMBINED_SEQ"]["pedestrian"], masks=False),
        "per_seq": {s: row_from_trackeval(res[s]["pedestrian"], masks=False) for s in seq_lengths},
    }
