"""Config schema, cross-section checks, per-stage params, environment files."""

from __future__ import annotations

import copy
import re
import tomllib

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

from conftest import REPO
from wsvis.config import ConfigError, check_config, flow_params, ingest_params
from wsvis.io.paths import check_name

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.json")


# Configs layered on another (snakemake --configfile BASE OVERLAY merges them key by key).
OVERLAYS = {"davis_composites_ablations.yaml": "davis2016_ablations.yaml"}


def load(name="config.yaml"):
    return yaml.safe_load((REPO / "config" / name).read_text())


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "config").glob("*.yaml")))
def test_shipped_configs_validate(name):
    config = load(name)
    if name in OVERLAYS:
        base = load(OVERLAYS[name])
        update_config(base, config)
        config = base
        assert config["dataset"]["name"] != load(OVERLAYS[name])["dataset"]["name"]  # its own results folder
    validate(config, SCHEMA)
    check_config(config)
    assert config["flow"]["dis"]["preset"] in {"ultrafast", "fast", "medium"}  # defaults filled in


def test_typo_fails_with_key_name():
    config = load()
    config["flow"]["gapz"] = [1]
    with pytest.raises(WorkflowError, match="gapz"):
        validate(config, SCHEMA)
    config = load()
    config["flw"] = {}
    with pytest.raises(WorkflowError, match="flw"):
        validate(config, SCHEMA)


def test_wrong_type_fails():
    config = load()
    config["flow"]["gaps"] = ["one"]
    with pytest.raises(WorkflowError, match="one"):
        validate(config, SCHEMA)


def test_defaults_filled():
    config = {"dataset": {"name": "d", "format": "frames", "root": "x"}}
    validate(config, SCHEMA)
    assert config["flow"]["backend"] == "dis" and config["flow"]["gaps"] == [1]
    assert config["depth"]["backend"] == "none"


def test_unsafe_names_rejected():
    for bad in ("../x", "a/b", "..", "", ".hidden", None):
        with pytest.raises(ValueError):
            check_name(bad)
    config = load()
    config["dataset"]["name"] = "../escape"
    with pytest.raises(ConfigError, match="escape"):
        check_config(config)
    config = load()
    config["dataset"]["videos"] = ["dog", "../../etc"]
    with pytest.raises(ConfigError, match="etc"):
        check_config(config)


def test_stage_needing_depth_fails_without_backend():
    config = load()
    config["stc"] = {"use_depth": True}
    with pytest.raises(ConfigError, match="depth.backend"):
        check_config(config)
    config["depth"] = {"backend": "torchscript", "torchscript": {}}
    with pytest.raises(ConfigError, match="checkpoint"):
        check_config(config)


def test_missing_dataset_key():
    config = load()
    config["dataset"] = {"name": "x", "format": "ytvis", "root": "r"}
    with pytest.raises(ConfigError, match="dataset.annotations"):
        check_config(config)


def test_flow_params_only_selected_backend():
    flow = {"backend": "dis", "gaps": [5, 1], "dis": {"preset": "fast"}, "farneback": {"levels": 9}}
    params = flow_params(flow)
    assert params == {"backend": "dis", "gaps": [1, 5], "options": {"preset": "fast"}, "compressor": "blosc-zstd"}
    changed = copy.deepcopy(flow)
    changed["farneback"]["levels"] = 2  # an unused backend's option: same params, no rerun
    assert flow_params(changed) == params
    with pytest.raises(ConfigError, match="flow.gaps"):
        flow_params({"backend": "dis", "gaps": [0]})


def test_ingest_params_per_video():
    dataset = load()["dataset"] | {"splits": {"dog": "val"}, "videos": ["dog", "blackswan"]}
    assert ingest_params(dataset, "dog")["split"] == "val"
    assert ingest_params(dataset, "blackswan")["split"] == "train"
    assert ingest_params(dataset, "blackswan")["options"]["videos"] == ["blackswan"]


def test_conda_envs_agree_with_pyproject():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {re.split(r"[<>=!~ ]", d)[0]: d for d in deps}
    envs = list((REPO / "envs").glob("*.yaml"))
    assert envs
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d)
        for line in pip:
            name = re.split(r"[<>=!~ ]", line)[0]
            if name in pins:
                assert line.replace(" ", "") == pins[name].replace(" ", ""), f"{env.name}: {line} vs pyproject {pins[name]}"
        assert "torch==2.14.1" in pip and "torchvision==0.29.1" in pip


def test_fcam_needs_gap_one():
    config = load()
    validate(config, SCHEMA)
    config["flow"]["gaps"] = [5]
    with pytest.raises(ConfigError, match="flow.gaps must include 1"):
        check_config(config)


def test_irn_variant_params():
    from wsvis.config import irn_infer_params, irn_train_params

    config = load()
    validate(config, SCHEMA)
    irn = config["irn"]
    assert irn_train_params(irn, "irn")["source"] == "cam" and "lam" not in irn_train_params(irn, "irn")
    assert irn_train_params(irn, "flowirn")["flow_boundary"] and irn_train_params(irn, "flowirn")["lam"] == 2.0
    assert irn_infer_params(irn, "irn_fcam")["source"] == "fcam"
    # The motion filter reads flow: f-CAM variants only, so the cam variants stay flow-free.
    irn["infer"]["motion_filter"] = 0.5
    assert irn_infer_params(irn, "flowirn")["motion_filter"] == 0.5
    assert "motion_filter" not in irn_infer_params(irn, "irn") and "motion_filter_flow" not in irn_infer_params(irn, "irn")
    with pytest.raises(ConfigError, match="unknown variant"):
        irn_train_params(irn, "irnx")


def test_box_runs_params_and_options():
    from wsvis.config import segment_runs, segment_train_params, without_legacy_defaults

    config = load()
    config["segment"]["runs"].append({"name": "bf_max", "method": "boxinst_flow",
                                      "options": {"detection_fusion": "max", "train": {"iterations": 5}}})
    validate(config, SCHEMA)
    check_config(config)
    runs = segment_runs(config["segment"], config["irn"]["variants"])
    assert runs["stcseg"]["pseudo"] == "stc" and runs["boxinst_flow"]["pseudo"] is None
    seg = config["segment"]
    stc = segment_train_params(seg, runs["stcseg"])
    assert stc["method"] == "stcseg" and stc["condinst"]["boundary"] == "dice" and "flow_pairwise" not in stc["condinst"]
    assert stc["condinst"]["head_convs"] == 2  # the demo's CPU towers (schema default: the papers' 4)
    flow = segment_train_params(seg, runs["boxinst_flow"])
    # The demo ramps the pairwise loss up over its whole schedule (a short ramp collapses the masks).
    assert flow["condinst"]["pairwise_warmup"] == flow["train"]["iterations"] == 120
    assert flow["condinst"]["detection_fusion"] == "sum" and flow["condinst"]["flow_threshold"] == 0.6
    assert flow["condinst"]["color_threshold"] == 0.3 and flow["condinst"]["dilation"] == 2  # BoxInst's
    # MaskConsist runs override segment.maskconsist switches and segment.train keys (Table 5 rows).
    no_iom = {"name": "mc_no_iom", "method": "maskconsist", "options": {"iom_nms": False, "train": {"iterations": 9}}}
    params = segment_train_params(seg, no_iom)
    assert params["maskconsist"]["iom_nms"] is False and params["maskconsist"]["intra"] is True
    assert params["train"]["iterations"] == 9 and seg["train"]["iterations"] != 9
    assert segment_train_params(seg, {"name": "m", "method": "maskrcnn"})["train"] == seg["train"]
    assert "scales" not in flow["train"]  # one size (the default): the params that trained before the key
    assert without_legacy_defaults({"scales": [1], "iterations": 3}) == {"iterations": 3}
    assert without_legacy_defaults({"scales": (1.0, 1.0)}) == {"scales": (1.0, 1.0)}
    multi = segment_train_params(seg, {**runs["boxinst_flow"], "options": {"train": {"scales": [0.8, 1.0]}}})
    assert multi["train"]["scales"] == [0.8, 1.0]
    ablation = segment_train_params(seg, runs["bf_max"])
    assert ablation["condinst"]["detection_fusion"] == "max" and ablation["train"]["iterations"] == 5
    # The Mask R-CNN schedule is not part of a box run's params: editing it retrains no CondInst.
    before = segment_train_params(seg, runs["boxinst_flow"])
    seg["train"]["iterations"] = 7
    assert segment_train_params(seg, runs["boxinst_flow"]) == before


def test_davis_configs_train_stcseg_with_dice_and_two_conv_towers():
    from wsvis.config import pseudo_variants, segment_runs, segment_train_params

    config = load("davis2016_ablations.yaml")
    validate(config, SCHEMA)
    runs = segment_runs(config["segment"], pseudo_variants(config))
    params = {name: segment_train_params(config["segment"], runs[name])["condinst"]
              for name in ("stcseg", "stcseg_bd", "stcseg_bce", "boxinst_flow")}
    assert [params[n]["boundary"] for n in ("stcseg", "stcseg_bd", "stcseg_bce")] == ["dice", "bd", "bce"]
    assert [params[n]["head_convs"] for n in params] == [2, 2, 2, 4]
    assert segment_train_params(config["segment"], runs["stcseg_bd"])["train"]["iterations"] == 1000
    merges = {n: segment_train_params(config["segment"], runs[n])["maskconsist"]["merge"] for n in ("maskconsist", "maskconsist_union")}
    assert merges == {"maskconsist": "majority", "maskconsist_union": "union"}


def test_box_run_errors_name_the_run():
    from wsvis.config import segment_runs, segment_train_params

    config = load()
    validate(config, SCHEMA)
    seg = copy.deepcopy(config["segment"])
    seg["runs"] = [{"name": "b", "method": "boxinst", "pseudo": "flowirn"}]
    with pytest.raises(ConfigError, match="'b'.*boxes only"):
        segment_runs(seg, ["flowirn"])
    seg["runs"] = [{"name": "b", "method": "boxinst", "options": {"boundary": "bce"}}]
    with pytest.raises(ConfigError, match=r"'b'.*\['boundary'\]"):
        segment_train_params(seg, segment_runs(seg, ["flowirn"])["b"])
    seg["runs"] = [{"name": "m", "method": "maskrcnn", "options": {"consist_from": 5}}]
    with pytest.raises(ConfigError, match=r"'m' \(maskrcnn\).*\['consist_from'\].*\['train'\]"):
        segment_train_params(seg, segment_runs(seg, ["flowirn"])["m"])
    seg["runs"] = [{"name": "c", "method": "maskconsist", "options": {"boundary": "bce"}}]
    with pytest.raises(ConfigError, match=r"'c' \(maskconsist\).*\['boundary'\]"):
        segment_train_params(seg, segment_runs(seg, ["flowirn"])["c"])
    config["flow"]["gaps"] = [5]
    config.pop("cam")
    config["segment"]["runs"] = [{"name": "s", "method": "stcseg"}]
    with pytest.raises(ConfigError, match="flow.gaps to include 1"):
        check_config(config)


def test_motion_filter_makes_every_prediction_read_the_flow():
    from wsvis.config import run_uses_flow

    segment = {"predict": {"motion_filter": None}}
    assert not run_uses_flow({"method": "maskrcnn"}, "predict", segment)
    assert run_uses_flow({"method": "boxinst_flow"}, "predict", segment)
    segment["predict"]["motion_filter"] = 0.5
    assert run_uses_flow({"method": "maskrcnn"}, "predict", segment)
    assert run_uses_flow({"method": "stcseg"}, "predict", segment)
    assert not run_uses_flow({"method": "maskrcnn"}, "train", segment)  # training is the method's own
    segment["predict"] = {"motion_filter": None, "refine": "grabcut_flow"}  # the cut's motion prior
    assert run_uses_flow({"method": "maskrcnn"}, "predict", segment)
    assert not run_uses_flow({"method": "maskrcnn"}, "predict", {"predict": {"refine": "grabcut"}})


def test_run_predict_overrides_segment_predict():
    from wsvis.config import run_uses_flow, segment_predict_params, segment_runs

    config = load()
    config["segment"]["predict"]["refine"] = "grabcut"
    config["segment"]["runs"] = [
        {"name": "m", "method": "maskrcnn"},
        {"name": "s", "method": "stcseg", "predict": {"refine_resolution": "source", "motion_filter": 0.5}},
    ]
    validate(config, SCHEMA)
    seg = config["segment"]
    runs = segment_runs(seg, ["flowirn"])
    assert "predict" not in runs["m"]  # the schema fills no per-run defaults over the section's
    assert runs["s"]["predict"] == {"refine_resolution": "source", "motion_filter": 0.5}
    m, s = segment_predict_params(seg, runs["m"]), segment_predict_params(seg, runs["s"])
    assert m == segment_predict_params(seg) and m["refine_resolution"] == "process"
    assert s == {**m, "refine_resolution": "source", "motion_filter": 0.5}
    assert not run_uses_flow(runs["m"], "predict", seg) and run_uses_flow(runs["s"], "predict", seg)
    bad = copy.deepcopy(config)
    bad["segment"]["runs"][1]["predict"] = {"refine_resolution": "full"}
    with pytest.raises(WorkflowError, match="full"):
        validate(bad, SCHEMA)
    bad["segment"]["runs"][1]["predict"] = {"refine_resolutions": "source"}
    with pytest.raises(WorkflowError, match="refine_resolutions"):
        validate(bad, SCHEMA)
    with pytest.raises(ConfigError, match=r"'s'.*\['iou'\]"):
        segment_predict_params(seg, {**runs["s"], "predict": {"iou": 0.5}})
