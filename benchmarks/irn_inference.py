"""IRN inference time per 480p frame (854x480) on CPU: network, refinement, centroids, random walk.

For each backbone (resnet50, mobilenet_v2; random weights — the time does not
depend on them) on one 854x480 frame (a real DAVIS frame when
``--frame`` exists, else noise):

* network: :meth:`wsvis.irn.net.IRNet.infer` (image + mirror, batch 2);
* refinement: :func:`wsvis.irn.instances.refine_displacement`, 100 steps;
* centroids + instance map: :func:`find_centroids`, :func:`instance_map`;
* random walk + labels: the rest of
  :func:`wsvis.irn.instances.instance_pseudo_labels` (sparse walk of the
  instance-wise CAMs, upsampling, argmax, connected components), timed as
  the whole call minus the two steps above.

The CAMs are the synthetic 3-object scene of ``benchmarks/random_walk.py``
(3 tagged classes); the number of (class, instance) maps walked is printed.
Median of ``--repeats`` runs after one warm-up.

    python benchmarks/irn_inference.py [--threads 2] [--repeats 3] [--frame PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from random_walk import scene  # noqa: E402

from wsvis.irn.instances import find_centroids, instance_map, instance_pseudo_labels, refine_displacement  # noqa: E402
from wsvis.irn.net import IRNet, grid_size  # noqa: E402
from wsvis.torchutil import to_tensor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frame", type=Path,
                        default=REPO.parent / "shared" / "data" / "davis2016" / "JPEGImages" / "480p" / "dog" / "00000.jpg")
    args = parser.parse_args()

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    H, W = 480, 854
    if args.frame.exists():
        from wsvis.io.images import read_image

        img = cv2.resize(read_image(args.frame), (W, H))
        src = str(args.frame.name)
    else:
        img = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
        src = "noise"
    h, w = grid_size(H, W)
    cams3, _ = scene(h, w)
    cam = np.zeros((5, h, w), np.float32)
    cam[[0, 2, 4]] = cams3
    print(f"frame {W}x{H} ({src}), grid {w}x{h}, {args.threads} threads, median of {args.repeats}")
    for name in ["resnet50", "mobilenet_v2"]:
        net = IRNet(name, "none").eval()
        x = to_tensor(img)
        times: dict[str, list[float]] = {"network": [], "refine": [], "centroids": [], "walk+labels": [], "total": []}
        for r in range(args.repeats + 1):
            t0 = time.perf_counter()
            boundary, disp = net.infer(x)
            b, d = boundary.numpy(), disp.numpy()
            t1 = time.perf_counter()
            refined = refine_displacement(d, 100)
            t2 = time.perf_counter()
            cents = find_centroids(refined, cam.max(0) > 0.05)
            if len(cents):
                instance_map(refined, cents)
            t3 = time.perf_counter()
            masks, _, _ = instance_pseudo_labels(cam, b, d, (H, W))
            t4 = time.perf_counter()
            if r == 0:
                continue
            walk = (t4 - t3) - (t3 - t1)
            for k, v in zip(times, [t1 - t0, t2 - t1, t3 - t2, walk, (t1 - t0) + (t4 - t3)]):
                times[k].append(v)
        med = {k: statistics.median(v) for k, v in times.items()}
        n_maps = 3 * max(1, len(cents))
        print(f"  {name:13s} " + "  ".join(f"{k} {v:.2f} s" for k, v in med.items())
              + f"  ({len(cents)} centroids -> {n_maps} maps walked, {len(masks)} instances)")


if __name__ == "__main__":
    main()
