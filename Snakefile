# wsvis: weakly supervised video instance segmentation and tracking.
# Wiring only: config, validation and helpers in rules/common.smk, one .smk per stage family.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/ingest.smk"
include: "rules/flow.smk"
include: "rules/depth.smk"
include: "rules/cam.smk"
include: "rules/irn.smk"
include: "rules/stc.smk"
include: "rules/baselines.smk"
include: "rules/segment.smk"
include: "rules/track.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        rules.manifest.output,
        expand(FLOW_ZARR, video=VIDEOS),
        expand(FLOW_OVERVIEW, video=VIDEOS),
        expand(DEPTH_ZARR, video=VIDEOS) if DEPTH else [],
        rules.pseudo_label_table.output.csv,
        rules.summary.output.csv,
        rules.report.output.html,
        expand(CAM_VIZ, video=VIDEOS),
        expand(PSEUDO_VIZ, variant=PSEUDO_VARIANTS, video=VIDEOS),
