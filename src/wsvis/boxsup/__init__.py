"""Box-supervised segmenters on CondInst: STC-Seg (puzzle loss on STC pseudo-labels), BoxInst,
and BoxInst with motion (Ikeda & Mori: two-stream encoder, flow-aware pairwise loss)."""

from wsvis.boxsup.train import BOX_METHODS, train_condinst

__all__ = ["BOX_METHODS", "train_condinst"]
