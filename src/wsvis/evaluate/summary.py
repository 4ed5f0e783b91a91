"""``metrics/summary.csv``: frame, pseudo-label, video (and MOTS) metrics in one long table.

Long format, one number per line, so rows of different kinds (which have
different metrics) join without empty cells and a plot or a pivot is one
pandas call::

    kind,method,tracker,metric,value
    frame,maskconsist,,AP50,0.41
    pseudo,flowirn,,J,0.55
    video,maskconsist,unovost,mAP,0.21
    mots,stcseg,bigreedy,sMOTSA,0.63

* ``kind``: ``pseudo`` (:func:`wsvis.evaluate.pseudo.pseudo_label_metrics`
  rows; their ``variant`` becomes ``method``), ``frame``
  (:func:`wsvis.evaluate.frames.frame_metrics`), ``video`` (video AP/AR or
  J&F rows, :mod:`wsvis.evaluate.video`), ``mots`` (:mod:`wsvis.evaluate.mots`);
* ``method``: the pseudo-labeler or segmenter; ``tracker``: the tracker
  ("" for pseudo and frame rows);
* ``metric``, ``value``: every numeric key of the row (counts such as
  ``videos`` / ``frames`` included); strings (``note``) are left out; NaN
  stays NaN (written as an empty cell).

Wide view: ``df.pivot_table(index=["kind", "method", "tracker"], columns="metric", values="value")``.

``metrics/per_sequence.csv`` (:func:`per_sequence_table`): the pseudo and frame
rows' J per video (their ``J_per_video``), as the DAVIS toolkit's per-sequence
results, long format ``kind,method,video,metric,value``; the summary's ``J`` of a
method is the mean of its videos' values.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Iterable

import pandas as pd

from wsvis.io.store import atomic_file

__all__ = ["PER_SEQUENCE_COLUMNS", "SUMMARY_COLUMNS", "per_sequence_table", "summary_table", "write_summary"]

#: Columns of ``metrics/summary.csv``.
SUMMARY_COLUMNS = ["kind", "method", "tracker", "metric", "value"]
#: Columns of ``metrics/per_sequence.csv``.
PER_SEQUENCE_COLUMNS = ["kind", "method", "video", "metric", "value"]

_ID_KEYS = {"kind", "method", "variant", "tracker"}


def _long(kind: str, rows: Iterable[dict]) -> list[dict]:
    out = []
    for row in rows:
        method = row.get("method", row.get("variant", ""))
        tracker = row.get("tracker", "") or ""
        for key, value in row.items():
            if key in _ID_KEYS or isinstance(value, bool) or not isinstance(value, numbers.Number):
                continue
            out.append(
                {
                    "kind": row.get("kind", kind),
                    "method": str(method),
                    "tracker": str(tracker),
                    "metric": str(key),
                    "value": float(value) if not (isinstance(value, float) and math.isnan(value)) else math.nan,
                }
            )
    return out


def summary_table(
    frame_rows: Iterable[dict] = (),
    pseudo_rows: Iterable[dict] = (),
    video_rows: Iterable[dict] = (),
    mots_rows: Iterable[dict] = (),
) -> pd.DataFrame:
    """The long summary table (module docstring) of the given rows, in the order pseudo, frame, video, mots."""
    records = _long("pseudo", pseudo_rows) + _long("frame", frame_rows) + _long("video", video_rows)
    records += _long("mots", mots_rows)
    return pd.DataFrame(records, columns=SUMMARY_COLUMNS)


def per_sequence_table(frame_rows: Iterable[dict] = (), pseudo_rows: Iterable[dict] = ()) -> pd.DataFrame:
    """J per video of each pseudo-label variant and segmenter (module docstring), pseudo rows first.

    Args:
        frame_rows: rows of :func:`wsvis.evaluate.frames.frame_metrics`.
        pseudo_rows: rows of :func:`wsvis.evaluate.pseudo.pseudo_label_metrics`.
            A row without ``J_per_video`` (written before it existed) adds nothing.

    Returns:
        A DataFrame with :data:`PER_SEQUENCE_COLUMNS`, one line per (kind,
        method, video), ``metric`` "J", videos in the rows' (sorted) order.
    """
    records = [
        {"kind": kind, "method": str(row.get("method", row.get("variant", ""))), "video": str(video),
         "metric": "J", "value": float(value)}
        for kind, rows in (("pseudo", pseudo_rows), ("frame", frame_rows))
        for row in rows
        for video, value in (row.get("J_per_video") or {}).items()
    ]
    return pd.DataFrame(records, columns=PER_SEQUENCE_COLUMNS)


def write_summary(
    frame_rows: Iterable[dict],
    pseudo_rows: Iterable[dict],
    video_rows: Iterable[dict],
    out_csv: str | os.PathLike,
    mots_rows: Iterable[dict] = (),
    per_sequence_csv: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Write ``metrics/summary.csv`` (long format, module docstring) atomically.

    Args:
        frame_rows: rows of :func:`wsvis.evaluate.frames.frame_metrics`.
        pseudo_rows: rows of :func:`wsvis.evaluate.pseudo.pseudo_label_metrics`.
        video_rows: dicts with ``method``, ``tracker`` and numbers (e.g.
            ``{"method", "tracker", **video_ap(...)}`` without its non-numeric keys,
            which are skipped anyway).
        out_csv: the CSV path.
        mots_rows: optional MOTS/HOTA rows (``method``, ``tracker`` + numbers).
        per_sequence_csv: where to write :func:`per_sequence_table` of the frame
            and pseudo rows (atomically); None: not written.

    Returns:
        The written summary DataFrame (:data:`SUMMARY_COLUMNS`).
    """
    frame_rows, pseudo_rows = list(frame_rows), list(pseudo_rows)
    df = summary_table(frame_rows, pseudo_rows, video_rows, mots_rows)
    if per_sequence_csv is not None:
        with atomic_file(per_sequence_csv) as tmp:
            per_sequence_table(frame_rows, pseudo_rows).to_csv(tmp, index=False)
    with atomic_file(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    return df
