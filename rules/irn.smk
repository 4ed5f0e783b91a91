# IR labels, IRN / flowIRN training and instance pseudo-labels (wsvis.irn), one folder per variant.

IR_LABELS = f"{RESULTS}/irn/labels/{{source}}/{{video}}.zarr"
IRN_DIR = f"{RESULTS}/models/{{variant}}"
IRN_VARIANT_PATTERN = "|".join(IRN_VARIANTS)


wildcard_constraints:
    source="cam|fcam",


rule ir_labels:
    input:
        table=rules.ingest_video.output.table,
        cam=rules.cam.output.zarr,
        flow=ir_label_flow,
    output:
        zarr=directory(IR_LABELS),
    log:
        f"{RESULTS}/logs/ir_labels/{{source}}/{{video}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ir_labels/{{source}}/{{video}}.tsv"
    priority: CHAIN_PRIORITY
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        cfg=lambda wc: to_json(ir_label_params(wc.source)),
        flow=lambda wc, input: (
            f"--flow {shlex.quote(input.flow[0])}" if input.flow else ""
        ),
    shell:
        "wsvis irn labels --table {input.table:q} --cam {input.cam:q} --source {wildcards.source:q} "
        "{params.flow} --out {output.zarr:q} --params {params.cfg:q} > {log:q} 2>&1"


rule train_irn:
    input:
        tables=expand(INGEST_TABLE, video=TRAIN_VIDEOS),
        labels=lambda wc: expand(
            IR_LABELS, source=irn_source(wc.variant), video=TRAIN_VIDEOS
        ),
        flows=lambda wc: (
            expand(FLOW_ZARR, video=TRAIN_VIDEOS)
            if irn_flow_boundary(wc.variant)
            else []
        ),
    output:
        model=f"{IRN_DIR}/model.pt",
        train_log=f"{IRN_DIR}/train_log.csv",
    log:
        f"{RESULTS}/logs/train_irn/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_irn/{{variant}}.tsv"
    wildcard_constraints:
        variant=IRN_VARIANT_PATTERN,
    priority: CHAIN_PRIORITY
    conda:
        "../envs/wsvis.yaml"
    threads: training_threads()
    resources:
        **gpu_request(config["irn"]["device"]),
        mem_mb=8000,
        runtime=720,
    params:
        cfg=lambda wc: to_json(irn_train_params(config["irn"], wc.variant)),
        out_dir=lambda wc, output: os.path.dirname(output.model),
    shell:
        "wsvis irn train --tables {input.tables:q} --labels {input.labels:q} --flows {input.flows:q} "
        "--out-dir {params.out_dir:q} --params {params.cfg:q} --threads {threads} > {log:q} 2>&1"


# The rule's variant constraint already excludes 'cam' and 'stc'; under remote default storage
# (Kubernetes profile) Snakemake 9 does not apply it to the storage-wrapped output, hence these.
ruleorder: cam_floor > pseudo_irn
ruleorder: pseudo_stc > pseudo_irn
ruleorder: pseudo_baseline > pseudo_irn
ruleorder: cam_floor > pseudo_baseline
ruleorder: pseudo_stc > pseudo_baseline


rule pseudo_irn:
    input:
        table=rules.ingest_video.output.table,
        cam=rules.cam.output.zarr,
        model=rules.train_irn.output.model,
        flow=lambda wc: irn_pseudo_flow(wc.variant, wc.video),
    output:
        zarr=directory(PSEUDO_ZARR),
    log:
        f"{RESULTS}/logs/pseudo/{{variant}}/{{video}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pseudo_irn/{{variant}}/{{video}}.tsv"
    wildcard_constraints:
        variant=IRN_VARIANT_PATTERN,
    priority: CHAIN_PRIORITY
    conda:
        "../envs/wsvis.yaml"
    # Per-video inference: one thread per job, so videos share the cores side by side.
    threads: 1
    resources:
        **gpu_request(config["irn"]["device"]),
        mem_mb=6000,
        runtime=120,
    params:
        cfg=lambda wc: to_json(irn_infer_params(config["irn"], wc.variant)),
        flow=lambda wc, input: (
            f"--flow {shlex.quote(input.flow[0])}" if input.flow else ""
        ),
    shell:
        "wsvis irn pseudo --table {input.table:q} --cam {input.cam:q} --model {input.model:q} "
        "--variant {wildcards.variant:q} {params.flow} --out {output.zarr:q} --params {params.cfg:q} "
        "--threads {threads} > {log:q} 2>&1"


rule viz_pseudo:
    input:
        table=rules.ingest_video.output.table,
        pseudo=PSEUDO_ZARR,
    output:
        png=PSEUDO_VIZ,
    log:
        f"{RESULTS}/logs/viz_pseudo/{{variant}}/{{video}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/viz_pseudo/{{variant}}/{{video}}.tsv"
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        cfg=to_json(config["viz"]),
    shell:
        "wsvis viz pseudo --table {input.table:q} --pseudo {input.pseudo:q} -o {output.png:q} "
        "--params {params.cfg:q} > {log:q} 2>&1"
