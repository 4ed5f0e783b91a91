"""IRN and flowIRN: inter-pixel relations from CAMs to instance pseudo-labels.

One module per paper step (IRN, Ahn et al., CVPR 2019; flowIRN, Liu et al., CVPR 2021 §3.1-3.2):

* :mod:`wsvis.irn.labels` — CAM -> IR labels (confident fg / bg / unsure, dense CRF);
* :mod:`wsvis.irn.pairs` — pixel pairs within a radius, line paths, pair sets P⁺_fg, P⁺_bg, P⁻;
* :mod:`wsvis.irn.net` — IRNet: boundary and displacement branches on a frozen backbone;
* :mod:`wsvis.irn.losses` — affinity (Eq. 1), L^D_fg, L^D_bg, L^B and the flow-boundary loss (Eq. 3);
* :mod:`wsvis.irn.train` — training with checkpoints and resume;
* :mod:`wsvis.irn.random_walk` — sparse random walk T = S⁻¹A^{∘β};
* :mod:`wsvis.irn.instances` — displacement refinement, centroids, instance maps, pseudo-labels;
* :mod:`wsvis.irn.stage` — per-video pseudo-label artifact.
"""
