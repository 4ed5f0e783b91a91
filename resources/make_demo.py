"""Rebuild resources/demo from ../shared/data/davis2016 (run from the repo root).

Takes the first 36 frames of three DAVIS 2016 sequences, resizes frames to
427x240 (INTER_AREA, JPEG quality 90) and masks with nearest neighbour, and
writes them in the DAVIS-2017 layout (no resolution folder) with labels.csv.
Kept so the shipped subset is reproducible; the workflow never runs it.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SRC = REPO.parent / "shared" / "data" / "davis2016"
OUT = REPO / "resources" / "demo"
VIDEOS = ("blackswan", "car-roundabout", "dog")
FRAMES = 36
SIZE = (427, 240)  # (W, H)


def main() -> None:
    labels = {r["video"]: r for r in csv.DictReader(open(SRC / "labels.csv"))}
    for sub in ("JPEGImages", "Annotations"):
        shutil.rmtree(OUT / sub, ignore_errors=True)
    with open(OUT / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["video", "class", "objects_in_mask"])
        for video in VIDEOS:
            writer.writerow([video, labels[video]["class"], labels[video]["objects_in_mask"]])
            (OUT / "JPEGImages" / video).mkdir(parents=True)
            (OUT / "Annotations" / video).mkdir(parents=True)
            for i in range(FRAMES):
                img = cv2.imread(str(SRC / "JPEGImages" / "480p" / video / f"{i:05d}.jpg"))
                img = cv2.resize(img, SIZE, interpolation=cv2.INTER_AREA)
                cv2.imwrite(str(OUT / "JPEGImages" / video / f"{i:05d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
                mask = Image.open(SRC / "Annotations" / "480p" / video / f"{i:05d}.png").convert("L")
                mask.resize(SIZE, Image.NEAREST).save(OUT / "Annotations" / video / f"{i:05d}.png")


if __name__ == "__main__":
    main()
