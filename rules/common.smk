# Config validation and the helpers every rule file uses. Algorithms live in src/wsvis.
import json
import os
import shlex

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from wsvis.config import (
    BASELINE_VARIANTS,
    IRN_VARIANTS,
    baseline_params,
    cam_infer_params,
    cam_train_params,
    check_config,
    depth_enabled,
    depth_params,
    flow_params,
    ingest_params,
    irn_infer_params,
    pseudo_variants,
    irn_train_params,
    reader_spec,
    segment_predict_params,
    segment_runs,
    segment_train_params,
    run_uses_flow,
    stc_params,
    supervision_families,
    to_json,
)
from wsvis.io.datasets import make_reader
from wsvis.io.paths import NAME_PATTERN

validate(config, "../workflow/schemas/config.schema.json")
check_config(config)

RESULTS = f"{config['results']}/{config['dataset']['name']}"
_format, _options = reader_spec(config["dataset"])
READER = make_reader(_format, **_options)
VIDEOS = READER.list_videos()
DEPTH = depth_enabled(config["depth"])
TRAIN_VIDEOS = [
    v for v in VIDEOS if ingest_params(config["dataset"], v)["split"] == "train"
]
# Pseudo-label variants: the baselines with no learning, the CAM floor, the configured IRN variants
# (flowIRN Table 4) and STC-Seg's.
PSEUDO_VARIANTS = [
    *config["baselines"]["variants"],
    "cam",
    *config["irn"]["variants"],
    "stc",
]


wildcard_constraints:
    video=NAME_PATTERN,
    variant="|".join(["cam", "stc", *IRN_VARIANTS, *BASELINE_VARIANTS]),


# Rules on the paths to the trainings: the class-tag chain (manifest, flow, CAM, IR labels, IRN, its
# pseudo-labels), the longest, and the STC pseudo-labels that the stcseg training waits for (davis2016:
# at priority 0 they ran last, the 12-minute stcseg training started at 50 min). Started first, so
# per-video jobs fill the cores after them (a rule's priority does not pass to the jobs it needs, so
# the chains list them all).
CHAIN_PRIORITY = 1


def training_threads():
    """Threads of a training job: half the cores given to Snakemake (--cores N), so two trainings
    (the class-tag and box branches) run side by side while per-video jobs take 1 thread each; 2
    where Snakemake counts one core or none (a cluster run without --cores; a local --cores 1
    scales it back to 1)."""
    try:
        cores = int(workflow.cores)
    except (WorkflowError, TypeError):
        cores = 1
    return 2 if cores < 2 else cores // 2


def log_path(stage):
    """Per-job log file of a per-video stage."""
    return f"{RESULTS}/logs/{stage}/{{video}}.log"


def bench_path(stage):
    """Per-job benchmark file (wall seconds, max RSS) of a per-video stage; metrics/costs.csv gathers them."""
    return f"{RESULTS}/benchmarks/{stage}/{{video}}.tsv"


def gpu_request(device):
    """Resources asking the cluster for one GPU when a rule's device may use it.

    Returned empty (no 'gpu' key at all) otherwise: the Kubernetes executor treats any
    'gpu' key, even 0, as a GPU request.
    """
    return {"gpu": 1} if device in ("auto", "cuda") else {}


def irn_source(variant):
    """CAMs ('cam' or 'fcam') an IRN variant learns from."""
    return IRN_VARIANTS[variant][0]


def irn_flow_boundary(variant):
    """Whether an IRN variant trains with the flow-boundary loss (flowIRN Eq. 3)."""
    return IRN_VARIANTS[variant][1]


def run_pseudo(run):
    """Pseudo-label artifacts a run trains on: an IRN variant's (or the CAM floor's, or STC's for
    stcseg), none for BoxInst runs, or, for self-training, those made from the first round's predictions.
    """
    spec = RUN_SPECS[run]
    if spec["method"] == "maskconsist_selftrain":
        return expand(SELFTRAIN_PSEUDO, run=spec["from"], video=TRAIN_VIDEOS)
    if spec["pseudo"] is None:  # boxinst, boxinst_flow: boxes only
        return []
    return expand(PSEUDO_ZARR, variant=spec["pseudo"], video=TRAIN_VIDEOS)


def report_pictures():
    """SECTION=PNG arguments of the report: every per-video picture the workflow draws."""
    sections = {
        "optical flow": expand(FLOW_OVERVIEW, video=VIDEOS),
        "CAM and f-CAM": expand(CAM_VIZ, video=VIDEOS),
        "pseudo-labels": expand(PSEUDO_VIZ, variant=PSEUDO_VARIANTS, video=VIDEOS),
        "tracks": expand(
            TRACK_VIZ, run=RUNS, tracker=config["track"]["trackers"], video=VIDEOS
        ),
    }
    return [
        f"{section}={path}" for section, paths in sections.items() for path in paths
    ]


def run_flows(run, stage, video=None):
    """Flow artifacts a run's training (all training videos) or prediction (one video) reads."""
    if not run_uses_flow(RUN_SPECS[run], stage, config["segment"]):
        return []
    return expand(FLOW_ZARR, video=video if video is not None else TRAIN_VIDEOS)


def irn_pseudo_flow(variant, video):
    """The flow artifact a variant's pseudo-labels read: only with irn.infer.motion_filter or
    irn.infer.motion_instances."""
    infer = irn_infer_params(config["irn"], variant)
    if infer.get("motion_filter") is None and infer.get("motion_instances") is None:
        return []
    return expand(FLOW_ZARR, video=video)


def ir_label_params(source):
    """The ir_labels section as the labels of one CAM source use it: motion_background (and its
    margin) only for the fcam labels, so the cam labels of the irn variant stay flow-free and
    do not rerun when those keys change."""
    cfg = dict(config["ir_labels"])
    if source != "fcam":
        cfg.pop("motion_background", None)
        cfg.pop("motion_margin", None)
    return cfg


def ir_label_flow(wc):
    """The flow artifact the fcam IR labels read with ir_labels.motion_background (else none)."""
    if wc.source == "fcam" and config["ir_labels"].get("motion_background", False):
        return [FLOW_ZARR.format(video=wc.video)]
    return []


def baseline_flow(wc):
    """The flow artifact the motion baseline reads (none for box, grabcut).

    Raises KeyError for a variant that is not a baseline: under remote default storage (Kubernetes
    profile) Snakemake 9 does not apply the wildcard constraint, and a failing input function is
    how this rule drops out for pseudo/irn/... (as train_irn does for pseudo/cam/...).
    """
    if wc.variant not in BASELINE_VARIANTS:
        raise KeyError(f"{wc.variant!r} is not a baseline")
    return [FLOW_ZARR.format(video=wc.video)] if wc.variant == "motion" else []
