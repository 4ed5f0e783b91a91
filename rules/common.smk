# Config validation and the helpers every rule file uses. Algorithms live in src/wsvis.
import json

from snakemake.utils import validate

from wsvis.config import (
    check_config,
    depth_enabled,
    depth_params,
    flow_params,
    ingest_params,
    reader_spec,
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


wildcard_constraints:
    video=NAME_PATTERN,


def log_path(stage):
    """Per-job log file of a per-video stage."""
    return f"{RESULTS}/logs/{stage}/{{video}}.log"


def gpu_request(device):
    """Resources asking the cluster for one GPU when a rule's device may use it.

    Returned empty (no 'gpu' key at all) otherwise: the Kubernetes executor treats any
    'gpu' key, even 0, as a GPU request.
    """
    return {"gpu": 1} if device in ("auto", "cuda") else {}
