# Config validation and the helpers every rule file uses. Algorithms live in src/wsvis.
import json
import shlex

from snakemake.utils import validate

from wsvis.config import (
    IRN_VARIANTS,
    cam_infer_params,
    cam_train_params,
    check_config,
    depth_enabled,
    depth_params,
    flow_params,
    ingest_params,
    irn_infer_params,
    irn_train_params,
    reader_spec,
    segment_predict_params,
    segment_runs,
    segment_train_params,
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
# Pseudo-label variants: the CAM floor plus the configured IRN variants (flowIRN Table 4).
PSEUDO_VARIANTS = ["cam", *config["irn"]["variants"]]


wildcard_constraints:
    video=NAME_PATTERN,
    variant="|".join(["cam", *IRN_VARIANTS]),


def log_path(stage):
    """Per-job log file of a per-video stage."""
    return f"{RESULTS}/logs/{stage}/{{video}}.log"


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
