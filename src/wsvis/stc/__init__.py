"""STC-Seg pseudo-labels (Yan et al., §III-B1, §IV-B): contextual similarity of depth and flow
(mini network, Eq. 1) fused by a threshold filter (Eq. 2)."""

import lazy_loader

# Submodules load on first use (PEP 562): a job imports torch only if its stage needs it.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "mini_network": ["SIGNALS", "MiniNetwork", "contextual_similarity", "stc_pseudo_mask"],
    },
)
