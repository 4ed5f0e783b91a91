# wsvis: weakly supervised video instance segmentation and tracking.
# Wiring only: config, validation and helpers in rules/common.smk, one .smk per stage family.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/ingest.smk"
include: "rules/flow.smk"
include: "rules/depth.smk"


rule all:
    default_target: True
    input:
        rules.manifest.output,
        expand(rules.flow.output.zarr, video=VIDEOS),
        expand(rules.flow_overview.output.png, video=VIDEOS),
        expand(f"{RESULTS}/depth/{{video}}.zarr", video=VIDEOS) if DEPTH else [],
