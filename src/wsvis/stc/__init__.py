"""STC-Seg pseudo-labels (Yan et al., §III-B1, §IV-B): contextual similarity of depth and flow
(mini network, Eq. 1) fused by a threshold filter (Eq. 2)."""

from wsvis.stc.mini_network import SIGNALS, MiniNetwork, contextual_similarity, stc_pseudo_mask

__all__ = ["SIGNALS", "MiniNetwork", "contextual_similarity", "stc_pseudo_mask"]
