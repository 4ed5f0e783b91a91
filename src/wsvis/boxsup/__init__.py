"""Box-supervised segmenters on CondInst: STC-Seg (puzzle loss on STC pseudo-labels), BoxInst,
and BoxInst with motion (Ikeda & Mori: two-stream encoder, flow-aware pairwise loss)."""

import lazy_loader

# Submodules load on first use (PEP 562): a job imports torch only if its stage needs it.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "train": ["BOX_METHODS", "train_condinst"],
    },
)
