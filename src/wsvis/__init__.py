"""wsvis: weakly supervised video instance segmentation and tracking.

The library behind the Snakemake workflow: dataset readers and Zarr artifacts
(:mod:`wsvis.io`), optical flow (:mod:`wsvis.flow`), monocular depth
(:mod:`wsvis.depth`), pictures (:mod:`wsvis.viz`) and the ``wsvis`` command
line (:mod:`wsvis.cli`).
"""

__version__ = "0.1.0"
