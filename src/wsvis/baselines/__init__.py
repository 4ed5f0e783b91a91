"""Pseudo-label baselines with no learning, one per supervision family (``../shared/DESIGN.md``).

Class tags: ``motion`` (:mod:`wsvis.baselines.motion`); boxes: ``box`` and
``grabcut`` (:mod:`wsvis.baselines.box`). Each writes the pseudo-label
artifact every method writes (:mod:`wsvis.baselines.stage`), so a method row
in any table is read against them.
"""

import lazy_loader

# Submodules load on first use (PEP 562): a job imports torch only if its stage needs it.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "stage": ["BASELINE_SUPERVISION", "BASELINES", "compute_video_baseline"],
    },
)
