"""Pseudo-label baselines with no learning, one per supervision family (``../shared/DESIGN.md``).

Class tags: ``motion`` (:mod:`wsvis.baselines.motion`); boxes: ``box`` and
``grabcut`` (:mod:`wsvis.baselines.box`). Each writes the pseudo-label
artifact every method writes (:mod:`wsvis.baselines.stage`), so a method row
in any table is read against them.
"""

from wsvis.baselines.stage import BASELINE_SUPERVISION, BASELINES, compute_video_baseline

__all__ = ["BASELINES", "BASELINE_SUPERVISION", "compute_video_baseline"]
