"""wsvis: weakly supervised video instance segmentation and tracking.

The library behind the Snakemake workflow: dataset readers and Zarr artifacts
(:mod:`wsvis.io`), optical flow (:mod:`wsvis.flow`), monocular depth
(:mod:`wsvis.depth`), pictures (:mod:`wsvis.viz`) and the ``wsvis`` command
line (:mod:`wsvis.cli`).
"""

import os

# Intel MKL (torch's CPU BLAS here) picks code paths by the memory alignment of its operands, so
# the same computation can differ in the last bit between runs (allocation patterns differ, e.g.
# a training resumed from a checkpoint against one that never stopped), and a training amplifies
# that. Conditional Numerical Reproducibility "AUTO" fixes the path per CPU. MKL reads it when
# it loads: wsvis is imported before torch by the CLI; the tests' conftest imports wsvis first.
# Measured: tests/test_condinst.py::test_training_resumes_to_identical_weights failed 3 of 3
# without it (weights 1e-4 apart), passed 4 of 4 with it. A user's own setting is kept.
os.environ.setdefault("MKL_CBWR", "AUTO")

__version__ = "0.1.0"
