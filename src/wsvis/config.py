"""Config sections -> the explicit arguments each stage takes.

The workflow validates ``config/config.yaml`` against
``workflow/schemas/config.schema.json`` (types, enums, unknown keys, defaults).
This module does what a JSON schema cannot: checks that need several sections
at once, and the derivation of each rule's ``params`` from *its own* section
only, so that changing one section reruns that stage and its dependents and
nothing else. The library itself never reads a global config: the rules pass
these dicts to the ``wsvis`` command line, which passes keywords on.
"""

from __future__ import annotations

import json
from typing import Any

from wsvis.io.paths import check_name

__all__ = [
    "ConfigError",
    "check_config",
    "reader_spec",
    "ingest_params",
    "flow_params",
    "depth_params",
    "depth_enabled",
    "to_json",
    "IRN_VARIANTS",
    "cam_train_params",
    "cam_infer_params",
    "irn_train_params",
    "irn_infer_params",
    "segment_runs",
    "segment_train_params",
    "segment_predict_params",
    "BOX_METHODS",
    "stc_params",
    "run_uses_flow",
    "BASELINE_VARIANTS",
    "baseline_params",
    "pseudo_variants",
    "supervision_families",
    "without_legacy_defaults",
]

#: Box-supervised second-stage methods (CondInst; issue 6): STC-Seg, BoxInst, BoxInst + motion.
BOX_METHODS = ("stcseg", "boxinst", "boxinst_flow")
#: Methods whose training reads the flow artifacts (MaskConsist pairs; the two-stream model's flow images).
_FLOW_METHODS = ("maskconsist", "maskconsist_selftrain", "boxinst_flow")
#: segment keys that build every run's model (Mask R-CNN and CondInst alike).
SEGMENT_MODEL_KEYS = ("backbone", "weights", "device", "min_size", "max_size", "fpn_channels")

#: flowIRN Table 4: variant -> (CAMs used for IR labels and instances, flow-boundary loss on?).
IRN_VARIANTS: dict[str, tuple[str, bool]] = {
    "irn": ("cam", False),
    "irn_fcam": ("fcam", False),
    "irn_fbound": ("cam", True),
    "flowirn": ("fcam", True),
}

#: Keys added to a training's settings after runs existed, with the value that reproduces those runs.
_LEGACY_DEFAULTS: dict[str, Any] = {"scales": [1.0]}


def without_legacy_defaults(settings: dict) -> dict:
    """``settings`` without the keys of :data:`_LEGACY_DEFAULTS` that hold their legacy value.

    One rule for both stamps of a run, the rule's Snakemake ``params`` and the checkpoint folder's
    ``config.json`` (:func:`wsvis.torchutil.prepare_checkpoint_dir`): a run at the value it had before
    the key existed keeps the stamp it had, so adding the key neither reruns nor restarts it.
    Sequences compare by value (``(1.0,)`` and ``[1]`` are ``[1.0]``).
    """
    def legacy(k: str, v: Any) -> bool:
        want = _LEGACY_DEFAULTS[k]
        return list(v) == want if isinstance(v, (list, tuple)) else v == want

    return {k: v for k, v in settings.items() if not (k in _LEGACY_DEFAULTS and legacy(k, v))}


#: Pseudo-label baselines with no learning -> the weak label they use (wsvis.baselines).
BASELINE_VARIANTS: dict[str, str] = {"motion": "tags", "box": "boxes", "grabcut": "boxes"}

# Options of the dataset section that each reader takes (the rest select
# videos and splits, which the workflow handles per video).
_READER_KEYS = {
    "davis": ("root", "resolution", "classes_csv", "classes", "mask_type"),
    "ytvis": ("root", "annotations"),
    "mots": ("root", "annotations", "class_names"),
    "video": ("root", "classes"),
    "frames": ("root", "classes"),
}
_REQUIRED = {"ytvis": ("annotations",), "mots": ("annotations",)}


class ConfigError(ValueError):
    """A config value is missing or inconsistent; the message names the key."""


def to_json(value: Any) -> str:
    """Canonical JSON (sorted keys) of a params dict, as rules pass it to the CLI."""
    return json.dumps(value, sort_keys=True)


def reader_spec(dataset: dict, videos: list[str] | None = None) -> tuple[str, dict]:
    """Return ``(format, keyword options)`` for :func:`wsvis.io.datasets.make_reader`.

    Args:
        dataset: the ``dataset`` config section.
        videos: restrict the reader to these videos (default: the section's
            ``videos`` key).

    Raises:
        ConfigError: unknown ``dataset.format`` or a missing key the format needs.
    """
    fmt = dataset.get("format")
    if fmt not in _READER_KEYS:
        raise ConfigError(f"dataset.format: {fmt!r} is not one of {sorted(_READER_KEYS)}")
    for key in ("root", *_REQUIRED.get(fmt, ())):
        if not dataset.get(key):
            raise ConfigError(f"dataset.{key} is required for dataset.format {fmt!r}")
    options = {k: dataset[k] for k in _READER_KEYS[fmt] if dataset.get(k) is not None}
    chosen = videos if videos is not None else dataset.get("videos")
    if chosen:
        options["videos"] = list(chosen)
    return fmt, options


def ingest_params(dataset: dict, video: str) -> dict:
    """Params of the per-video ingest job: reader options and this video's split.

    The video subset (``dataset.videos``) and other videos' splits are left
    out, so adding a video or moving another one to the test split does not
    re-ingest this one.
    """
    fmt, options = reader_spec(dataset, videos=[check_name(video, "video")])
    split = dataset.get("splits", {}).get(video, dataset.get("default_split", "train"))
    return {"format": fmt, "options": options, "split": split, "process_size": dataset.get("process_size")}


def flow_params(flow: dict) -> dict:
    """Params of the flow job: backend, gaps, the chosen backend's options, compressor.

    Options of backends that are not selected are left out, so editing them
    reruns nothing.

    Raises:
        ConfigError: a gap that is not a positive integer (key ``flow.gaps``).
    """
    gaps = flow.get("gaps", [1])
    if not gaps or any(not isinstance(g, int) or isinstance(g, bool) or g < 1 for g in gaps):
        raise ConfigError(f"flow.gaps must be a non-empty list of positive integers, got {gaps!r}")
    backend = flow["backend"]
    family = "raft" if backend.startswith("raft") else backend
    options = dict(flow.get(family, {}))
    if family == "raft":
        options["device"] = flow.get("device", "auto")
    return {
        "backend": backend,
        "gaps": sorted(set(gaps)),
        "options": options,
        "compressor": flow.get("compressor", "blosc-zstd"),
    }


def depth_enabled(depth: dict) -> bool:
    """True when a depth backend is configured (``depth.backend`` is not ``none``)."""
    return depth.get("backend", "none") != "none"


def depth_params(depth: dict) -> dict:
    """Params of the depth job: backend and its options (with ``device``).

    Raises:
        ConfigError: no backend configured, or ``depth.<backend>.checkpoint`` missing.
    """
    backend = depth.get("backend", "none")
    if backend == "none":
        raise ConfigError("depth.backend is 'none': no depth stage is configured")
    options = dict(depth.get(backend, {}))
    if not options.get("checkpoint"):
        raise ConfigError(
            f"depth.{backend}.checkpoint is required: the path of a depth network file you have "
            "(e.g. a MiDaS-small TorchScript export); weights cannot be fetched offline"
        )
    options["device"] = depth.get("device", "auto")
    return {"backend": backend, "options": options, "compressor": depth.get("compressor", "blosc-zstd")}


def check_config(config: dict) -> None:
    """Checks across sections, run when the workflow starts (after schema validation).

    * dataset and video names are plain path components;
    * every dataset option the chosen format needs is present;
    * a section that asks for depth (``use_depth: true``; later stages such as
      STC pseudo-labels and the STC tracker) requires a configured depth
      backend — nothing fakes depth;
    * flow gaps are positive integers, and include 1 when CAMs are configured;
    * IRN variants are known names.

    Raises:
        ConfigError: naming the offending key.
    """
    dataset = config.get("dataset", {})
    try:
        check_name(dataset.get("name"), "dataset")
        for video in dataset.get("videos") or ():
            check_name(video, "video")
        for video in dataset.get("splits") or {}:
            check_name(video, "video")
    except ValueError as exc:
        raise ConfigError(f"dataset: {exc}") from exc
    reader_spec(dataset)
    flow = flow_params(config.get("flow", {"backend": "dis"}))
    if "cam" in config and 1 not in flow["gaps"]:
        raise ConfigError("flow.gaps must include 1: f-CAMs (cam.fcam, flowIRN Eq. 2) use the flow t -> t+1")
    for variant in config.get("irn", {}).get("variants", ()):
        _variant(variant)
    if "segment" in config:
        runs = segment_runs(config["segment"], pseudo_variants(config))
        for run in runs.values():
            if run["method"] in BOX_METHODS:
                if 1 not in flow["gaps"]:
                    raise ConfigError(
                        f"segment.runs: {run['name']!r} ({run['method']}) needs flow.gaps to include 1 "
                        "(STC pseudo-labels / flow images use the flow t -> t+1)"
                    )
                continue
            if run["method"] != "maskrcnn" and config["segment"]["maskconsist"]["delta"] not in flow["gaps"]:
                raise ConfigError(
                    f"segment.runs: {run['name']!r} uses MaskConsist with segment.maskconsist.delta = "
                    f"{config['segment']['maskconsist']['delta']}, which flow.gaps {flow['gaps']} does not include"
                )
    for tracker in config.get("track", {}).get("trackers", ()):
        from wsvis.track import make_tracker

        try:
            make_tracker(tracker, **config["track"].get(tracker, {}))
        except ValueError as exc:
            raise ConfigError(f"track.{tracker}: {exc}") from exc
    depth = config.get("depth", {})
    if depth_enabled(depth):
        depth_params(depth)
    else:
        for section, values in config.items():
            if isinstance(values, dict) and values.get("use_depth"):
                raise ConfigError(
                    f"{section}.use_depth is true but depth.backend is 'none': set depth.backend "
                    f"(e.g. 'torchscript') and depth.<backend>.checkpoint, or set {section}.use_depth: false"
                )


def cam_train_params(cam: dict) -> dict:
    """Params of CAM classifier training: backbone, weights, device, schedule (not inference keys)."""
    return {k: cam[k] for k in ("backbone", "weights", "device", "train")}


def cam_infer_params(cam: dict) -> dict:
    """Params of per-video CAM / f-CAM inference: scales, f-CAM settings, device."""
    return {k: cam[k] for k in ("scales", "fcam", "device")}


def _variant(variant: str) -> tuple[str, bool]:
    if variant not in IRN_VARIANTS:
        raise ConfigError(f"irn.variants: unknown variant {variant!r}; choose from {sorted(IRN_VARIANTS)}")
    return IRN_VARIANTS[variant]


def irn_train_params(irn: dict, variant: str) -> dict:
    """Params of IRN training for one variant: the CAM source, whether the flow-boundary
    loss is on (with its lambda only then), backbone, weights, device and schedule."""
    source, flow_boundary = _variant(variant)
    params = {k: irn[k] for k in ("backbone", "weights", "device", "train")}
    params.update(source=source, flow_boundary=flow_boundary)
    if flow_boundary:
        params["lam"] = irn["flow_boundary_lambda"]
    return params


def irn_infer_params(irn: dict, variant: str) -> dict:
    """Params of per-video instance pseudo-label inference for one variant: the motion filter
    (and its flow floor) and the motion instances only for the f-CAM variants, so the cam variants stay flow-free and do
    not rerun when those keys change."""
    source, _ = _variant(variant)
    infer = dict(irn["infer"])
    if source != "fcam":
        infer.pop("motion_filter", None)
        infer.pop("motion_filter_flow", None)
        infer.pop("motion_instances", None)
        infer.pop("motion_instances_ratio", None)
    return {"source": source, "device": irn["device"], **infer}


def segment_runs(segment: dict, pseudo_variants: list[str]) -> dict[str, dict]:
    """The configured second-stage runs by name, checked.

    Raises:
        ConfigError: a name that is not a plain path component, repeated, or equal to a
            pseudo-label variant or ``cam`` (their model folders share ``models/``); a
            ``pseudo`` variant that is not configured; a self-training run whose ``from`` is
            not an earlier run.
    """
    runs: dict[str, dict] = {}
    reserved = {"cam", "stc", *IRN_VARIANTS, *BASELINE_VARIANTS}
    for run in segment.get("runs", []):
        name = run["name"]
        try:
            check_name(name, "segment.runs name")
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        if name in runs or name in reserved:
            raise ConfigError(f"segment.runs: name {name!r} is repeated or reserved ({sorted(reserved)})")
        if run["method"] in BOX_METHODS:
            wanted = "stc" if run["method"] == "stcseg" else None
            if run.get("pseudo", wanted) != wanted:
                raise ConfigError(
                    f"segment.runs: {name!r} ({run['method']}) trains on boxes"
                    + (" and the STC pseudo-labels (pseudo: stc)" if wanted else " only (no pseudo)")
                    + f", not on pseudo-labels {run.get('pseudo')!r}"
                )
            runs[name] = {**run, "pseudo": wanted}
            continue
        if run["method"] == "maskconsist_selftrain":
            if run.get("from") not in runs:
                raise ConfigError(f"segment.runs: {name!r} self-trains from {run.get('from')!r}, not an earlier run")
        elif run.get("pseudo", "flowirn") not in {"cam", *pseudo_variants}:
            raise ConfigError(
                f"segment.runs: {name!r} trains on pseudo-labels {run.get('pseudo')!r}, which irn.variants / "
                f"baselines.variants ({pseudo_variants}) do not produce"
            )
        runs[name] = {"pseudo": "flowirn", **run}
    return runs


def pseudo_variants(config: dict) -> list[str]:
    """Pseudo-label variants a run may train on, besides ``cam``: the configured IRN variants
    (``irn.variants``) and baselines (``baselines.variants``)."""
    irn = config.get("irn", {}).get("variants", list(IRN_VARIANTS))
    return [*irn, *config.get("baselines", {}).get("variants", list(BASELINE_VARIANTS))]


def baseline_params(baselines: dict, name: str) -> dict:
    """Params of one baseline's per-video job: its own options only (``baselines.<name>``), so
    editing GrabCut's options reruns neither the motion baseline nor anything downstream of it.

    Raises:
        ConfigError: an unknown baseline name (key ``baselines.variants``).
    """
    if name not in BASELINE_VARIANTS:
        raise ConfigError(f"baselines.variants: unknown baseline {name!r}; choose from {sorted(BASELINE_VARIANTS)}")
    return dict(baselines.get(name, {}))


def supervision_families(config: dict) -> dict[str, dict[str, list[str]]]:
    """Which rows of the summary are read against which baselines (the report's first table).

    Returns:
        ``{"tags": {"baselines": [...], "methods": [...]}, "boxes": {...}}``: the
        configured baselines of each weak label, and the names (``method`` in
        ``metrics/summary.csv``) of the pseudo-label variants and segmenter runs
        learned from it. Class tags: ``cam`` and the IRN variants; boxes: ``stc``.
        A Mask R-CNN / MaskConsist run belongs to the family of the pseudo-labels
        it trains on (on ``grabcut`` it is box-supervised), a self-training run to
        its ``from`` run's, CondInst runs to boxes.
    """
    families: dict[str, dict[str, list[str]]] = {
        f: {"baselines": [], "methods": []} for f in ("tags", "boxes")
    }
    baselines = config.get("baselines", {}).get("variants", list(BASELINE_VARIANTS))
    for name in baselines:
        families[BASELINE_VARIANTS[name]]["baselines"].append(name)
    families["tags"]["methods"] += ["cam", *config.get("irn", {}).get("variants", [])]
    families["boxes"]["methods"].append("stc")
    family_of = {n: f for f, d in families.items() for n in d["baselines"] + d["methods"]}
    for name, run in segment_runs(config.get("segment", {}), pseudo_variants(config)).items():
        if run["method"] in BOX_METHODS:
            family = "boxes"
        elif run["method"] == "maskconsist_selftrain":
            family = family_of[run["from"]]
        else:
            family = family_of[run["pseudo"]]
        family_of[name] = family
        families[family]["methods"].append(name)
    return families


def run_uses_flow(run: dict, stage: str = "train", segment: dict | None = None) -> bool:
    """Whether a run's ``train`` or ``predict`` job reads the flow artifacts (``segment``: the
    config section, whose ``predict.motion_filter`` or ``predict.refine: grabcut_flow``, or the run's own,
    makes its predictions read them)."""
    if stage == "predict":
        predict = _run_predict(segment.get("predict", {}) if segment else {}, run)
        return (run["method"] == "boxinst_flow" or predict.get("motion_filter") is not None
                or predict.get("refine") == "grabcut_flow")
    return run["method"] in _FLOW_METHODS


def _box_train_params(segment: dict, run: dict) -> dict:
    """Params of a box-supervised run: architecture, the method's loss / fusion switches (per-run
    ``options`` override them), the CondInst schedule (``options.train`` overrides keys; ``scales``
    only when it is not the one size ``[1.0]``)."""
    ci = segment["condinst"]
    method = run["method"]
    options = dict(run.get("options") or {})
    train = without_legacy_defaults({**ci["train"], **options.pop("train", {})})
    switches = {k: ci[k] for k in ("mask_channels", "branch_channels", "head_channels", "head_convs", "mask_stride",
                                   "top_k")}
    sections = {"stcseg": ("stcseg",), "boxinst": ("boxinst",), "boxinst_flow": ("boxinst", "boxinst_flow")}[method]
    for section in sections:
        switches.update(ci[section])
    unknown = sorted(set(options) - set(switches))
    if unknown:
        raise ConfigError(
            f"segment.runs: {run['name']!r} ({method}): options {unknown} do not apply; choose from {sorted(switches)}"
        )
    switches.update(options)
    params = {k: segment[k] for k in SEGMENT_MODEL_KEYS}
    params.update(method=method, condinst=switches, train=train)
    return params


def stc_params(stc: dict) -> dict:
    """Params of the STC pseudo-label job (STC-Seg §III-B1, §IV-B): signals, φ^s, φ^t, mini network."""
    return dict(stc)


def segment_train_params(segment: dict, run: dict) -> dict:
    """Params of one second-stage training run (MaskConsist paper §3.3, §4.2; box-supervised
    runs: :func:`_box_train_params`). A run's ``options`` override ``segment.train`` keys
    (``options.train``) and, for MaskConsist runs, ``segment.maskconsist`` switches (Table 5).

    Self-training is MaskConsist trained on the first round's predictions, so its
    ``method`` here is ``maskconsist``; the MaskConsist switches are included only for
    MaskConsist runs.

    Raises:
        ConfigError: an option that does not apply to the run's method (names the run).
    """
    if run["method"] in BOX_METHODS:
        return _box_train_params(segment, run)
    method = "maskrcnn" if run["method"] == "maskrcnn" else "maskconsist"
    options = dict(run.get("options") or {})
    params = {k: segment[k] for k in SEGMENT_MODEL_KEYS}
    params.update(method=method, train={**segment["train"], **options.pop("train", {})})
    switches = {}
    if method == "maskconsist":
        mc = segment["maskconsist"]
        switches = {k: mc[k] for k in ("delta", "intra", "inter", "iom_nms", "consist_from", "candidate_score", "merge",
                                      "pairs_from")}
    allowed = sorted(set(switches) - {"delta"})  # the flow gap is the config's (flow.gaps is checked against it)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"segment.runs: {run['name']!r} ({run['method']}): options {unknown} do not apply; "
            f"choose from {allowed + ['train']}"
        )
    switches.update(options)
    if switches:
        params["maskconsist"] = switches
    return params


def _run_predict(predict: dict, run: dict | None) -> dict:
    """``segment.predict`` (``predict``) with the run's own ``predict`` keys over it.

    Raises:
        ConfigError: a run ``predict`` key that the section does not have (names the run).
    """
    own = dict((run or {}).get("predict") or {})
    unknown = sorted(set(own) - set(predict))
    if unknown:
        raise ConfigError(
            f"segment.runs: {run['name']!r}: predict keys {unknown} are not segment.predict keys ({sorted(predict)})"
        )
    return {**predict, **own}


def segment_predict_params(segment: dict, run: dict | None = None) -> dict:
    """Params of one run's per-video inference (score threshold, NMS, K, refinement, motion
    filter, device): ``segment.predict``, with the run's own ``predict`` keys over them (e.g. the
    box runs' masks cut at ``refine_resolution: source`` while the class-tag runs, whose many
    detections make that 5-6x dearer, cut at ``process``).

    Returns:
        ``{"device": ..., **predict}``: the JSON params of ``wsvis segment predict``.

    Raises:
        ConfigError: a run ``predict`` key that ``segment.predict`` does not have (names the run).
    """
    return {"device": segment["device"], **_run_predict(segment["predict"], run)}
