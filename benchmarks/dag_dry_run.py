"""Time `snakemake -n` (DAG construction and scheduling) on a synthetic 1000-video dataset.

Builds N video folders of 2 tiny frames each (hard links of one JPEG, `frames` format, no
annotation) in a temporary directory, then times a dry run of the whole workflow from scratch
(parsing, listing the videos, building and scheduling the DAG). Prints seconds and jobs planned.

    python benchmarks/dag_dry_run.py [--videos 1000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frame = tmp / "frame.jpg"
        cv2.imwrite(str(frame), np.zeros((16, 16, 3), np.uint8))
        for v in range(args.videos):
            folder = tmp / "data" / f"video{v:05d}"
            folder.mkdir(parents=True)
            for t in range(2):
                os.link(frame, folder / f"{t:05d}.jpg")
        config = {"dataset": {"name": "synthetic", "format": "frames", "root": str(tmp / "data")}}
        (tmp / "config.yaml").write_text(yaml.safe_dump(config))
        cmd = ["snakemake", "-n", "--cores", "2", "-s", str(REPO / "Snakefile"), "-d", str(tmp),
               "--configfile", str(tmp / "config.yaml"), "--quiet", "rules"]
        start = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        total = re.search(r"^total\s+(\d+)", out.stdout, re.M)
        print(f"videos: {args.videos}")
        print(f"snakemake -n, nothing computed yet: {seconds:.2f} s, jobs planned: {total.group(1) if total else '?'}")
        print(f"per video: {1000 * seconds / args.videos:.2f} ms")


if __name__ == "__main__":
    main()
