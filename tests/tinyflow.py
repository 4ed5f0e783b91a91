"""The tiny workflow shared by the workflow test and the cluster tests.

Two real demo clips cut to a few frames, every stage on, schedules cut to a few iterations on
tiny crops: the workflow's wiring is under test there, not the models.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "resources" / "demo"
VIDEOS = ("blackswan", "dog")
FRAMES = 5
# Box-supervised runs (stcseg, boxinst, boxinst_flow): two iterations of one frame, a narrow mask branch.
TINY_CONDINST = {"mask_channels": 4, "branch_channels": 16,
                 "train": {"iterations": 2, "batch_size": 1, "warmup_iters": 1, "checkpoint_every": 1}}


def tiny_training(section: dict) -> None:
    """A few iterations on tiny crops, with the shipped backbone weights by absolute path."""
    section["weights"] = str(REPO / section["weights"])
    section["train"].update(epochs=1, batch_size=2, crop_size=64, resize_long=[64, 96], checkpoint_every=2)


def tiny_workflow(workdir: Path, videos: tuple[str, ...] = VIDEOS, frames: int = FRAMES,
                  every_method: bool = True) -> dict:
    """Copy ``frames`` frames of each demo video to ``workdir/clip``; return the tiny config.

    The config is config/config.yaml with dataset ``clip`` at that folder and every schedule
    cut down (the caller writes it where Snakemake reads it). ``every_method``: a run of each
    second-stage method (maskrcnn and boxinst too); False keeps the demo's runs, which use every
    rule (the cluster tests, which test the rules, not the methods).
    """
    data = workdir / "clip"
    for video in videos:
        for sub, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
            (data / sub / video).mkdir(parents=True, exist_ok=True)
            for t in range(frames):
                shutil.copy(DEMO / sub / video / f"{t:05d}.{ext}", data / sub / video)
    shutil.copy(DEMO / "labels.csv", data / "labels.csv")
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    # Processed at half the clips' 427x240 (214x120), scored at 427x240: the processing size is on.
    base["dataset"].update(name="clip", root=str(data), classes_csv=str(data / "labels.csv"), process_size=214)
    base["viz"]["overview_frames"] = 2
    tiny_training(base["cam"])
    base["cam"]["scales"] = [1.0]
    tiny_training(base["irn"])
    base["irn"]["train"]["radius"] = 5
    base["irn"]["variants"] = ["irn", "flowirn"]
    base["irn"]["infer"] = {"exp_times": 4}
    base["flow"]["gaps"] = [1, 2]
    base["segment"]["weights"] = str(REPO / base["segment"]["weights"])
    base["segment"].update(min_size=64, max_size=112, maskconsist={"delta": 2})
    base["segment"]["train"].update(iterations=2, batch_size=1, checkpoint_every=1)
    base["segment"]["condinst"] = TINY_CONDINST
    if every_method:  # whatever subset the demo runs
        base["segment"]["runs"] = [
            {"name": "maskrcnn", "method": "maskrcnn", "pseudo": "flowirn"},
            {"name": "maskconsist", "method": "maskconsist", "pseudo": "flowirn"},
            {"name": "stcseg", "method": "stcseg"},
            {"name": "boxinst", "method": "boxinst"},
            {"name": "boxinst_flow", "method": "boxinst_flow"},
        ]
    base["track"]["trackers"] = ["iou", "stc"]
    return base
