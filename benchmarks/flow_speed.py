"""Speed of the flow stage on DAVIS 480p: DIS alone vs the stage with its Zarr write, and stored size.

For each video (first ``--frames`` frames), ``--repeat`` rounds of, in turn:

* DIS alone: forward and backward DIS flow of every consecutive pair on
  frames decoded beforehand (the flow computation the stage does);
* stage, inline: :func:`wsvis.flow.compute_video_flow` with gaps [1] and
  ``overlap=False`` (decoding, both flows, float16 cast and compressed Zarr
  write one after the other in one thread, atomic rename): the stage
  before the overlap;
* stage, background ("bg"): the same with ``overlap=True``, the default
  (next frame decoded, finished fields cast and written in background
  threads while DIS computes).

Prints the best (minimum) wall time of each in seconds, the time ratios
stage / DIS alone (the target of the background writer: <= 1.10), frames/s
of DIS alone, the best CPU time (all threads) of the background-write stage
over DIS alone's wall time (what the writer thread costs in cores), and
stored bytes per flow field vs raw float32 (H * W * 2 * 4 bytes). ``--threads`` (default 1, what ``rules/flow.smk``
gives the job) is applied to OpenCV and torch for all three, so DIS runs
with the same thread count on both sides of the ratio; the background
threads come on top of it in the stage.

    python benchmarks/flow_speed.py [--davis DIR] [--videos blackswan dog] [--frames 40] [--repeat 3]
                                    [--threads 1] [--compressor blosc-zstd]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from wsvis.flow import compute_video_flow, make_flow_backend, read_flow  # noqa: E402
from wsvis.io.images import read_image  # noqa: E402
from wsvis.io.store import COMPRESSORS, DEFAULT_COMPRESSOR  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis", type=Path, default=REPO.parent / "shared" / "data" / "davis2016")
    parser.add_argument("--videos", nargs="+", default=["blackswan", "dog"])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--preset", default="medium", choices=["ultrafast", "fast", "medium"])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch / OpenCV threads, both sides (default 1: the flow rule's threads)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per video; the best time of each is kept")
    parser.add_argument("--compressor", default=DEFAULT_COMPRESSOR, choices=sorted(COMPRESSORS),
                        help=f"a key of wsvis.io.store.COMPRESSORS (default {DEFAULT_COMPRESSOR}, as in config)")
    args = parser.parse_args()

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    dis = make_flow_backend("dis", preset=args.preset)

    print(f"DIS preset {args.preset}, {args.threads} OpenCV/torch threads, gaps [1], forward + backward per pair, "
          f"compressor {args.compressor}, best of {args.repeat}")
    print(f"{'video':<12} {'frames':>6} {'size':>9} {'DIS fr/s':>8} {'DIS s':>6} {'inline s':>8} {'bg s':>6} "
          f"{'ratio inline':>12} {'ratio bg':>8} {'bg CPU/DIS':>10} {'B/field':>9} {'f32/stored':>10}")
    for video in args.videos:
        paths = sorted((args.davis / "JPEGImages" / "480p" / video).glob("*.jpg"))[: args.frames]
        if len(paths) < 2:
            sys.exit(f"{video}: fewer than 2 frames under {args.davis}")
        frames = [read_image(p) for p in paths]
        h, w = frames[0].shape[:2]
        n = len(frames)

        best = {"dis": float("inf"), "inline": float("inf"), "bg": float("inf"), "bg_cpu": float("inf")}
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"{video}.zarr"
            for _ in range(args.repeat):
                # interleaved, so that a slow spell of a shared machine hits all three alike
                start = time.perf_counter()
                for t in range(n - 1):
                    dis(frames[t], frames[t + 1])
                    dis(frames[t + 1], frames[t])
                best["dis"] = min(best["dis"], time.perf_counter() - start)
                for mode, overlap in (("inline", False), ("bg", True)):
                    start, cpu = time.perf_counter(), time.process_time()
                    compute_video_flow(paths, out, backend="dis", gaps=[1], backend_options={"preset": args.preset},
                                       progress=False, overlap=overlap, compressor=args.compressor)
                    best[mode] = min(best[mode], time.perf_counter() - start)
                    if mode == "bg":
                        best["bg_cpu"] = min(best["bg_cpu"], time.process_time() - cpu)
            fwd, bwd = read_flow(out, 1, "forward"), read_flow(out, 1, "backward")
            per_field = (fwd.nbytes_stored() + bwd.nbytes_stored()) / (2 * (n - 1))
        raw = h * w * 2 * 4
        print(f"{video:<12} {n:>6} {f'{w}x{h}':>9} {n / best['dis']:8.2f} {best['dis']:6.2f} {best['inline']:8.2f} "
              f"{best['bg']:6.2f} {best['inline'] / best['dis']:12.2f} {best['bg'] / best['dis']:8.2f} "
              f"{best['bg_cpu'] / best['dis']:10.2f} "
              f"{per_field:9,.0f} {raw / per_field:10.2f}")


if __name__ == "__main__":
    main()
