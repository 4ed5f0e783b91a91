"""The workflow end to end on one short real clip, in a temporary directory.

Checks the artifacts, then what a rerun plans: nothing when nothing changed; only flow and
its dependents when only the flow section changes; nothing for an unused backend's options.
"""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO
from tinyflow import FRAMES, VIDEOS, tiny_workflow
from wsvis.io.store import open_artifact

pytestmark = pytest.mark.workflow

BOX_RUNS = ("stcseg", "boxinst", "boxinst_flow")


def snakemake(workdir, *args, check=True):
    cmd = ["snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile",
           str(workdir / "config.yaml"), "--cores", "2", *args]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return out


def planned(workdir) -> dict[str, int]:
    """Jobs a dry run would execute, per rule."""
    out = snakemake(workdir, "-n", "--quiet", "rules").stdout
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M) if m.group(1) != "total"}


def write_config(workdir, **changes):
    config = yaml.safe_load((workdir / "base.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        config.setdefault(section, {})[key] = value
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


# Rules downstream of flow (everything but ingestion and the CAM classifier).
AFTER_FLOW = {"flow", "flow_overview", "cam", "cam_floor", "viz_cam", "ir_labels", "train_irn", "pseudo_irn",
              "pseudo_stc", "pseudo_baseline", "viz_pseudo", "costs", "pseudo_metrics", "pseudo_label_table", "train_segmenter", "predict",
              "frame_metrics", "track_video", "merge_tracks", "viz_tracks", "video_metrics", "summary", "report", "all"}
# Rules downstream of the pseudo-label inference (what changing irn.infer reruns).
AFTER_PSEUDO = {"pseudo_irn", "viz_pseudo", "costs", "pseudo_metrics", "pseudo_label_table", "train_segmenter", "predict",
                "frame_metrics", "track_video", "merge_tracks", "viz_tracks", "video_metrics", "summary", "report",
                "all"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = tmp_path_factory.mktemp("workflow")
    base = tiny_workflow(wd)
    (wd / "base.yaml").write_text(yaml.safe_dump(base))
    write_config(wd)
    snakemake(wd)
    return wd


def test_artifacts(workdir):
    res = workdir / "results" / "clip"
    manifest = pd.read_parquet(res / "manifest.parquet")
    assert len(manifest) == 2 * FRAMES and set(manifest["video"]) == set(VIDEOS)
    dog = manifest[manifest["video"] == "dog"]
    assert list(dog["frame"]) == list(range(FRAMES))
    assert all(list(tags) == ["dog"] for tags in dog["tags"])
    gt = json.loads((res / "gt.json").read_text())
    assert [c["name"] for c in gt["categories"]] == ["bird", "car", "dog"]
    assert len(gt["videos"]) == 2 and len(gt["annotations"]) == 2
    group = open_artifact(res / "flow" / "dog.zarr", "flow")
    fwd, bwd = group["gap_1/forward"], group["gap_1/backward"]
    assert fwd.shape == bwd.shape == (FRAMES - 1, 120, 214, 2) and fwd.dtype == np.float16
    assert np.isfinite(fwd[:]).all() and np.abs(fwd[:]).max() > 0.1  # a real clip moves
    assert (res / "viz" / "flow" / "dog.png").stat().st_size > 1000
    cam = open_artifact(res / "cam" / "dog.zarr", "cam")
    assert cam["cam"].shape == cam["fcam"].shape == (FRAMES, 3, 30, 54)
    assert not cam["cam"][:, :2].any()  # only the tagged class ("dog", id 3) has a CAM
    table = pd.read_csv(res / "metrics" / "pseudo_labels.csv")
    variants = ["motion", "box", "grabcut", "cam", "irn", "flowirn", "stc"]
    assert list(table["variant"]) == variants and (table["frames"] == 2 * FRAMES).all()
    assert 0 < table.set_index("variant").loc["stc", "box_IoU"] <= 1
    # Boxes resized with the frames, masks scored at the source size: the filled box covers part of each
    # object (measured J 0.38 here), GrabCut from the same box more of it.
    j = table.set_index("variant")["J"]
    assert 0.3 < j["box"] < j["grabcut"]
    for variant in variants:
        for video in VIDEOS:
            assert (res / "viz" / "pseudo" / variant / f"{video}.png").exists()
    assert (res / "models" / "flowirn" / "train_log.csv").exists()
    pred = open_artifact(res / "predictions" / "maskconsist" / "dog.zarr", "predictions")
    assert pred["masks"].shape == (FRAMES, 10, 120, 214) and pred["masks"].dtype == bool
    tracks = json.loads((res / "tracks" / "maskconsist" / "stc.json").read_text())
    assert all(len(t["segmentations"]) == FRAMES for t in tracks)
    # Tracks are results at the source frames' size (the gt's), not the processing size.
    assert {tuple(s["size"]) for t in tracks for s in t["segmentations"] if s} <= {(240, 427)}
    for run in BOX_RUNS:  # the box-supervised runs share the predictions contract and the metrics
        pred = open_artifact(res / "predictions" / run / "dog.zarr", "predictions")
        assert pred["masks"].shape == (FRAMES, 10, 120, 214) and pred["labels"].dtype == np.int32
    assert (res / "models" / "boxinst_flow" / "train_log.csv").exists()
    summary = pd.read_csv(res / "metrics" / "summary.csv")
    assert {"frame", "video", "pseudo"} <= set(summary["kind"])
    frame_methods = set(summary[summary["kind"] == "frame"]["method"])
    assert {"maskrcnn", "maskconsist", *BOX_RUNS} <= frame_methods
    assert {"maskconsist", *BOX_RUNS} <= set(summary[summary["kind"] == "video"]["method"])
    assert set(summary[summary["kind"] == "video"]["tracker"]) == {"iou", "stc"}
    # J per video: every (kind, method) of the summary's J has one value per video, whose mean is that J
    per_seq = pd.read_csv(res / "metrics" / "per_sequence.csv")
    j = summary[(summary["metric"] == "J") & summary["kind"].isin(["pseudo", "frame"])]
    j = j.set_index(["kind", "method"])["value"]
    assert all(sorted(v) == sorted(VIDEOS) for _, v in per_seq.groupby(["kind", "method"])["video"])
    assert per_seq.groupby(["kind", "method"])["value"].mean().sort_index().values == pytest.approx(
        j.sort_index().values)
    assert 'id="per-sequence-table"' in (res / "report" / "index.html").read_text()
    assert (res / "report" / "index.html").stat().st_size > 1000
    # Every rule that ran has a benchmark file, and the cost table has a stage for each (costs and
    # report run after it; 'all' has no job; depth is off).
    costs = pd.read_csv(res / "metrics" / "costs.csv")
    assert costs["stage"].iloc[-1] == "total" and costs["wall_s"].iloc[-1] > 0
    ran = {s.split(":")[0] for s in costs["stage"].iloc[:-1]}
    rules_run = set(re.findall(r"^rule (\w+):", "".join(p.read_text() for p in (REPO / "rules").glob("*.smk")), re.M))
    assert ran == rules_run - {"costs", "report", "selftrain_pseudo"}  # no self-training run here
    assert abs(costs["share"].iloc[:-1].sum() - 1) < 0.05  # shares are written to 3 decimals


def test_rerun_plans_nothing(workdir):
    assert planned(workdir) == {}


def test_flow_change_reruns_flow_and_dependents_only(workdir):
    try:
        write_config(workdir, **{"flow.dis": {"preset": "fast"}})
        assert set(planned(workdir)) == AFTER_FLOW  # not ingestion, not the CAM classifier
        write_config(workdir, **{"flow.farneback": {"levels": 5}})  # not the selected backend
        assert planned(workdir) == {}
        write_config(workdir, **{"viz.overview_width": 200})
        assert set(planned(workdir)) == {"all", "flow_overview", "viz_cam", "viz_pseudo", "viz_tracks", "costs", "report"}
        write_config(workdir, **{"irn.infer": {"exp_times": 3}})  # inference only: no IRN retraining
        assert set(planned(workdir)) == AFTER_PSEUDO
    finally:
        write_config(workdir)


def test_config_typo_fails_at_start(workdir):
    write_config(workdir, **{"flow.gapz": [1]})
    try:
        out = snakemake(workdir, "-n", check=False)
        assert out.returncode != 0 and "gapz" in out.stdout + out.stderr
    finally:
        write_config(workdir)


def test_cli_looks_at_results(workdir, tmp_path):
    flow = workdir / "results" / "clip" / "flow" / "dog.zarr"
    out = subprocess.run(["wsvis", "inspect", str(flow)], capture_output=True, text=True, check=True).stdout
    assert f"gap_1/forward: shape=({FRAMES - 1}, 120, 214, 2) dtype=float16 chunks=(1, 120, 214, 2)" in out
    png = tmp_path / "f.png"
    subprocess.run(["wsvis", "viz", "flow", str(flow), "--frame", "1", "-o", str(png)], check=True)
    assert png.stat().st_size > 1000
    bad = subprocess.run(["wsvis", "viz", "flow", str(flow), "--frame", "7", "-o", str(png)], capture_output=True, text=True)
    assert bad.returncode != 0 and "out of range" in bad.stderr


def dry_run_shipped(name, tmp_path, *args):
    """``snakemake -n`` of ``config/{name}`` with its data paths made absolute (skips without the data)."""
    config = yaml.safe_load((REPO / "config" / name).read_text())
    root = (REPO / config["dataset"]["root"]).resolve()
    if not root.exists():
        pytest.skip(f"{root} not available")
    for key in ("root", "classes_csv"):
        if config["dataset"].get(key):
            config["dataset"][key] = str((REPO / config["dataset"][key]).resolve())
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = subprocess.run(["snakemake", "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--configfile",
                          str(tmp_path / "config.yaml"), *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("name", ["config.yaml", "davis2016.yaml", "davis_composites.yaml"])
def test_shipped_configs_dry_run(name, tmp_path):
    out = dry_run_shipped(name, tmp_path, "--cores", "2", "--quiet", "rules")
    assert re.search(r"^flow\s+\d+$", out, re.M)


@pytest.mark.parametrize("cores, train_threads", [(2, 1), (8, 4)])
def test_trainings_take_half_the_cores_and_per_video_jobs_one(cores, train_threads, tmp_path):
    out = dry_run_shipped("config.yaml", tmp_path, "--cores", str(cores), "-p")
    threads = {}
    for command, n in re.findall(r"wsvis (cam train|irn train|segment train|cam infer|irn pseudo|segment predict) "
                                 r".*?--threads (\d+)", out):
        threads.setdefault(command, set()).add(int(n))
    assert all(threads[c] == {train_threads} for c in ("cam train", "irn train", "segment train")), threads
    assert all(threads[c] == {1} for c in ("cam infer", "irn pseudo", "segment predict")), threads


class _TinyDepth(torch.nn.Module):
    """A stand-in depth network file (conv + channel mean), as a user's TorchScript export."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=1)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_depth_stage_joins_when_configured(workdir):
    checkpoint = workdir / "tiny_depth.pt"
    torch.jit.script(_TinyDepth()).save(str(checkpoint))
    depth = {"backend": "torchscript", "device": "cpu", "torchscript": {"checkpoint": str(checkpoint), "input_size": 64}}
    try:
        write_config(workdir, **{"depth.backend": depth["backend"], "depth.device": "cpu",
                                 "depth.torchscript": depth["torchscript"]})
        # Flow and ingestion untouched; the STC tracker (Eq. 9 uses depth) and the STC pseudo-labels
        # (depth + flow, Table III) with their stcseg run, and what follows them.
        runs, trackers = 5, 2
        assert planned(workdir) == {
            "all": 1, "depth": 2, "pseudo_stc": 2, "viz_pseudo": 2, "pseudo_metrics": 1, "pseudo_label_table": 1,
            "train_segmenter": 1, "predict": 2, "frame_metrics": 1,
            "track_video": 2 * runs + 2 * (trackers - 1), "merge_tracks": runs + trackers - 1,
            "viz_tracks": 2 * runs + 2 * (trackers - 1), "video_metrics": runs + trackers - 1,
            "summary": 1, "costs": 1, "report": 1}
        snakemake(workdir)
        group = open_artifact(workdir / "results" / "clip" / "depth" / "dog.zarr", "depth")
        assert group["depth"].shape == (FRAMES, 120, 214) and group["depth"].dtype == np.float16
    finally:
        write_config(workdir)
    # Without depth configured the depth rule leaves the DAG; the STC tracks are redone without it.
    assert "depth" not in planned(workdir)
