# Second stage: Mask R-CNN / MaskConsist on pseudo-labels, self-training (wsvis.maskconsist), and
# box-supervised CondInst runs stcseg / boxinst / boxinst_flow (wsvis.boxsup); per-frame predictions.
# One folder per run of config segment.runs.

RUN_SPECS = segment_runs(config["segment"], pseudo_variants(config))
RUNS = list(RUN_SPECS)
RUN_PATTERN = "|".join(RUNS) or "none"
SEG_DIR = f"{RESULTS}/models/{{run}}"
PRED_ZARR = f"{RESULTS}/predictions/{{run}}/{{video}}.zarr"
SELFTRAIN_PSEUDO = f"{RESULTS}/pseudo/selftrain_{{run}}/{{video}}.zarr"


rule train_segmenter:
    input:
        tables=expand(INGEST_TABLE, video=TRAIN_VIDEOS),
        pseudo=lambda wc: run_pseudo(wc.run),
        flows=lambda wc: run_flows(wc.run, "train"),
    output:
        model=f"{SEG_DIR}/model.pt",
        train_log=f"{SEG_DIR}/train_log.csv",
    log:
        f"{RESULTS}/logs/train_segmenter/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_segmenter/{{run}}.tsv"
    # As the chain: a training ready to start goes before per-video jobs, which fill the other cores.
    # At 0 the many short jobs of finished runs kept maskconsist waiting for 26 min on davis2016.
    wildcard_constraints:
        run=RUN_PATTERN,
    priority: CHAIN_PRIORITY
    conda:
        "../envs/wsvis.yaml"
    threads: training_threads()
    resources:
        **gpu_request(config["segment"]["device"]),
        mem_mb=12000,
        runtime=2880,
    params:
        cfg=lambda wc: to_json(
            segment_train_params(config["segment"], RUN_SPECS[wc.run])
        ),
        categories=CATEGORIES,
        out_dir=lambda wc, output: os.path.dirname(output.model),
    shell:
        "wsvis segment train --tables {input.tables:q} --pseudo {input.pseudo:q} --flows {input.flows:q} "
        "--categories {params.categories:q} --out-dir {params.out_dir:q} --params {params.cfg:q} "
        "--threads {threads} > {log:q} 2>&1"


rule predict:
    input:
        table=rules.ingest_video.output.table,
        model=rules.train_segmenter.output.model,
        flow=lambda wc: run_flows(wc.run, "predict", wc.video),
    output:
        zarr=directory(PRED_ZARR),
    log:
        f"{RESULTS}/logs/predict/{{run}}/{{video}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/predict/{{run}}/{{video}}.tsv"
    wildcard_constraints:
        run=RUN_PATTERN,
    conda:
        "../envs/wsvis.yaml"
    # Per-video inference: one thread per job, so videos share the cores side by side.
    threads: 1
    resources:
        **gpu_request(config["segment"]["device"]),
        mem_mb=6000,
        runtime=120,
    params:
        cfg=lambda wc: to_json(
            segment_predict_params(config["segment"], RUN_SPECS[wc.run])
        ),
        flow=lambda wc, input: (
            f"--flow {shlex.quote(input.flow[0])}" if input.flow else ""
        ),
    shell:
        "wsvis segment predict --table {input.table:q} --model {input.model:q} --method {wildcards.run} {params.flow} "
        "--out {output.zarr:q} --params {params.cfg:q} --threads {threads} > {log:q} 2>&1"


rule selftrain_pseudo:
    input:
        predictions=PRED_ZARR,
    output:
        zarr=directory(SELFTRAIN_PSEUDO),
    log:
        f"{RESULTS}/logs/selftrain_pseudo/{{run}}/{{video}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/selftrain_pseudo/{{run}}/{{video}}.tsv"
    wildcard_constraints:
        run=RUN_PATTERN,
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        threshold=config["segment"]["selftrain_score_threshold"],
        overlap=config["segment"]["selftrain_overlap_threshold"],
    shell:
        "wsvis segment selftrain-pseudo --predictions {input.predictions:q} --run {wildcards.run} "
        "--score-threshold {params.threshold} --overlap-threshold {params.overlap} "
        "--out {output.zarr:q} > {log:q} 2>&1"
