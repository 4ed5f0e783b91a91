"""Trackers: per-frame instance predictions -> object tracks (issue 5).

:data:`TRACKERS` maps the config string (``track.tracker``) to a class with
keyword options; :func:`make_tracker` builds one. Every tracker is called as
``tracker(predictions, flow=None, depth=None, images=None) -> list[Track]``
(inputs described in :mod:`wsvis.track.common`).

* ``"iou"``: :class:`~wsvis.track.iou.IoUTracker`, Hungarian matching on mask IoU (baseline);
* ``"unovost"``: :class:`~wsvis.track.unovost.UnOVOSTTracker`, flow-warped
  tracklets + forest path cutting (Luiten et al., WACV 2020; as flowIRN uses it);
* ``"stc"``: :class:`~wsvis.track.stc.STCTracker`, STC-Seg §III-C (diagonal-point
  Kalman filter, bi-greedy matching Alg. 1, score stages, Eq. 9).

:mod:`wsvis.track.stage` reads the artifacts and writes YouTube-VIS results
JSON and KITTI-MOTS txt.
"""

from __future__ import annotations

from typing import Any, Callable

from wsvis.track.common import Track, build_tracker
from wsvis.track.iou import IoUTracker
from wsvis.track.stc import STCTracker, bi_greedy_match
from wsvis.track.unovost import UnOVOSTTracker

__all__ = ["TRACKERS", "make_tracker", "Track", "IoUTracker", "UnOVOSTTracker", "STCTracker", "bi_greedy_match"]

#: Config string -> tracker class (keyword options, see each class).
TRACKERS: dict[str, Callable[..., Any]] = {
    "iou": IoUTracker,
    "unovost": UnOVOSTTracker,
    "stc": STCTracker,
}


def make_tracker(name: str, **options: Any):
    """Build the tracker ``name`` of :data:`TRACKERS` with keyword ``options``.

    Raises:
        ValueError: unknown tracker name, an option the tracker does not take
            (the message names it and lists the accepted ones), or a bad option value.
    """
    return build_tracker(TRACKERS, name, options)
