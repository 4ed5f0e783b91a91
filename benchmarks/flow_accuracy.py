"""End-point error of each flow backend on MPI-Sintel (clean pass, frame 2 -> 3).

Prints, for every backend and scene (easy = alley_1, hard = market_5), the
mean EPE over all pixels and over non-occluded valid pixels (Sintel's
``occlusions`` and ``invalid`` masks), plus the time per flow field.
RAFT rows need a local weights file (``--raft-weights PATH``); without one
they are skipped, since torchvision's weights cannot be downloaded offline.

    python benchmarks/flow_accuracy.py [--sintel DIR] [--raft-weights PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402

from wsvis.flow import end_point_error, make_flow_backend  # noqa: E402
from wsvis.io.flowfile import read_flo  # noqa: E402
from wsvis.io.images import read_image, read_mask  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sintel", type=Path, default=REPO.parent / "shared" / "data" / "sintel")
    parser.add_argument("--scenes", nargs="+", default=["easy", "hard"])
    parser.add_argument("--raft-weights", default=None, help="local RAFT state_dict (.pth); RAFT skipped without it")
    parser.add_argument("--raft-variant", choices=["small", "large"], default="small")
    parser.add_argument("--raft-iters", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2, help="torch / OpenCV threads")
    args = parser.parse_args()

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    backends = [
        ("dis", {"preset": "ultrafast"}),
        ("dis", {"preset": "fast"}),
        ("dis", {"preset": "medium"}),
        ("farneback", {}),
    ]
    if args.raft_weights:
        backends.append((f"raft_{args.raft_variant}", {"weights": args.raft_weights, "iters": args.raft_iters}))
    else:
        print("RAFT skipped: no weights available offline (pass --raft-weights PATH to a local state_dict)")

    print(f"{'backend':<22} {'scene':<5} {'EPE all':>8} {'EPE noc':>8} {'s/field':>8}")
    for name, options in backends:
        backend = make_flow_backend(name, **options)
        label = name + "".join(f" {k}={v}" for k, v in options.items() if k != "weights")
        for scene in args.scenes:
            img1 = read_image(args.sintel / "clean" / scene / "frame_0002.png")
            img2 = read_image(args.sintel / "clean" / scene / "frame_0003.png")
            gt = read_flo(args.sintel / "gt" / scene / "frame_0002.flo")
            occluded = read_mask(args.sintel / "gt" / scene / "occlusions" / "frame_0002.png") > 0
            invalid = read_mask(args.sintel / "gt" / scene / "invalid" / "frame_0002.png") > 0
            backend(img1, img2)  # warm-up
            start = time.perf_counter()
            flow = backend(img1, img2)
            seconds = time.perf_counter() - start
            epe_all = end_point_error(flow, gt)
            epe_noc = end_point_error(flow, gt, ~occluded & ~invalid)
            print(f"{label:<22} {scene:<5} {epe_all:8.3f} {epe_noc:8.3f} {seconds:8.3f}")
    for scene in args.scenes:
        gt = read_flo(args.sintel / "gt" / scene / "frame_0002.flo")
        print(f"{'zero flow (reference)':<22} {scene:<5} {end_point_error(np.zeros_like(gt), gt):8.3f}")

if __name__ == "__main__":
    main()
