"""Speed of the CAM classifier on the demo data: training per epoch / iteration, inference per frame.

* training: :func:`wsvis.cam.train_cam` with MobileNetV2 and the shipped
  ImageNet weights, ``--crop`` 256, ``--batch`` 8, IRN augmentation, on every
  frame of ``resources/demo`` (3 DAVIS clips x 36 frames, 427x240): seconds
  per epoch (wall time of the call, model building and writing included) and
  per iteration (mean of ``train_log.csv`` seconds, data loading included);
* inference: :func:`wsvis.cam.make_cams` per frame (scales 1.0, 0.5, 1.5, 2.0,
  each with its flip) at 427x240 and at 854x480 (the frame upscaled 2x), one
  tagged class, after one warm-up frame.

The frame table comes from ``results/demo/ingest/*.parquet`` when the ingest
stage has run, else from the DAVIS reader on ``resources/demo``.

    python benchmarks/cam_training.py [--epochs 1] [--crop 256] [--batch 8] [--threads 2] [--frames 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import cv2  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from wsvis.cam import load_cam_model, make_cams, train_cam  # noqa: E402
from wsvis.io.images import read_image  # noqa: E402


def frame_table() -> tuple[pd.DataFrame, list[str]]:
    """All demo frames (split train) and the class list; image paths relative to the repository."""
    ingest = sorted((REPO / "results" / "demo" / "ingest").glob("*.parquet"))
    if ingest:
        from wsvis.io.manifest import read_video_table

        df = pd.concat([read_video_table(p) for p in ingest], ignore_index=True)
    else:
        from wsvis.io.datasets import make_reader
        from wsvis.io.manifest import video_table

        reader = make_reader("davis", root="resources/demo", classes_csv="resources/demo/labels.csv")
        categories = sorted(pd.read_csv("resources/demo/labels.csv")["class"].unique())
        df = pd.concat(
            [video_table(reader.read_video(v), categories, "train") for v in reader.list_videos()], ignore_index=True
        )
    categories = sorted({t for tags in df["tags"] for t in tags})
    return df, categories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--threads", type=int, default=2, help="torch / OpenCV threads")
    parser.add_argument("--frames", type=int, default=5, help="frames timed for inference per size")
    parser.add_argument("--weights", default=str(REPO / "resources" / "weights" / "mobilenet_v2_features_imagenet.pt"))
    args = parser.parse_args()

    import os

    os.chdir(REPO)  # manifest image paths are relative to the repository
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    df, categories = frame_table()
    n = int((df["split"] == "train").sum())
    iters = max(1, n // args.batch)
    print(f"{n} frames, classes {categories}, mobilenet_v2, crop {args.crop}, batch {args.batch}, "
          f"{iters} iterations/epoch, {args.threads} threads")

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        model_path = train_cam(df, categories, tmp, backbone="mobilenet_v2", weights=args.weights,
                               epochs=args.epochs, batch_size=args.batch, lr=args.lr, crop_size=args.crop,
                               resize_long=(320, 640), seed=0, device="cpu", checkpoint_every=10**9,
                               progress=False)
        total = time.perf_counter() - start
        log = pd.read_csv(Path(tmp) / "train_log.csv")
        print(f"training: {total / args.epochs:.1f} s/epoch, {log['seconds'].mean():.2f} s/iteration "
              f"(loss {log['loss'].iloc[0]:.3f} -> {log['loss'].iloc[-1]:.3f})")
        model = load_cam_model(model_path, "cpu")

    images = [read_image(p) for p in df["image"].iloc[:: max(1, len(df) // args.frames)][: args.frames]]
    for scale in (1, 2):
        frames = [cv2.resize(im, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR) for im in images]
        make_cams(model, frames[0], [0])  # warm-up
        start = time.perf_counter()
        for im in frames:
            make_cams(model, im, [0])
        per = (time.perf_counter() - start) / len(frames)
        h, w = frames[0].shape[:2]
        print(f"inference {w}x{h}: {per:.2f} s/frame (4 scales + flips)")


if __name__ == "__main__":
    main()
