"""Speed of the flow stage on DAVIS 480p: DIS alone vs DIS + Zarr write, and stored size.

For each video (first ``--frames`` frames):

* DIS alone: forward and backward DIS flow of every consecutive pair on
  frames decoded beforehand (the flow computation the stage does);
* stage: :func:`wsvis.flow.compute_video_flow` with gaps [1] (decoding,
  both flows, float16 conversion, compressed Zarr write, atomic rename);
* frames/s = frames / wall time, and the stage/DIS-alone ratio;
* stored bytes per flow field vs raw float32 (H * W * 2 * 4 bytes).

    python benchmarks/flow_speed.py [--davis DIR] [--videos blackswan dog] [--frames 40]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis", type=Path, default=REPO.parent / "shared" / "data" / "davis2016")
    parser.add_argument("--videos", nargs="+", default=["blackswan", "dog"])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--preset", default="medium", choices=["ultrafast", "fast", "medium"])
    parser.add_argument("--threads", type=int, default=2, help="torch / OpenCV threads")
    args = parser.parse_args()

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    dis = make_flow_backend("dis", preset=args.preset)

    print(f"DIS preset {args.preset}, {args.threads} threads, gaps [1], forward + backward per pair")
    print(f"{'video':<12} {'frames':>6} {'size':>9} {'DIS fr/s':>9} {'stage fr/s':>10} {'ratio':>6} "
          f"{'B/field':>10} {'raw f32':>10} {'f32/stored':>10}")
    for video in args.videos:
        paths = sorted((args.davis / "JPEGImages" / "480p" / video).glob("*.jpg"))[: args.frames]
        frames = [read_image(p) for p in paths]
        h, w = frames[0].shape[:2]
        n = len(frames)

        start = time.perf_counter()
        for t in range(n - 1):
            dis(frames[t], frames[t + 1])
            dis(frames[t + 1], frames[t])
        dis_fps = n / (time.perf_counter() - start)

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"{video}.zarr"
            start = time.perf_counter()
            compute_video_flow(paths, out, backend="dis", gaps=[1], backend_options={"preset": args.preset},
                               progress=False)
            stage_fps = n / (time.perf_counter() - start)
            fwd, bwd = read_flow(out, 1, "forward"), read_flow(out, 1, "backward")
            per_field = (fwd.nbytes_stored() + bwd.nbytes_stored()) / (2 * (n - 1))
        raw = h * w * 2 * 4
        print(f"{video:<12} {n:>6} {f'{w}x{h}':>9} {dis_fps:9.2f} {stage_fps:10.2f} {stage_fps / dis_fps:6.2f} "
              f"{per_field:10,.0f} {raw:10,} {raw / per_field:10.2f}")


if __name__ == "__main__":
    main()
