# Dataset ingestion (wsvis.io): per-video frame tables, then manifest.parquet + gt.json.


rule ingest_video:
    input:
        lambda wc: READER.sources(wc.video),
    output:
        table=f"{RESULTS}/ingest/{{video}}.parquet",
        gt=f"{RESULTS}/ingest/{{video}}.gt.json",
    log:
        log_path("ingest"),
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        cfg=lambda wc: to_json(ingest_params(config["dataset"], wc.video)),
        frames_dir=f"{RESULTS}/frames/{{video}}",
    shell:
        "wsvis ingest --params {params.cfg:q} --video {wildcards.video:q} "
        "--table {output.table:q} --gt {output.gt:q} --frames-dir {params.frames_dir:q} "
        "> {log:q} 2>&1"


rule manifest:
    input:
        tables=expand(rules.ingest_video.output.table, video=VIDEOS),
        gts=expand(rules.ingest_video.output.gt, video=VIDEOS),
    output:
        manifest=f"{RESULTS}/manifest.parquet",
        gt=f"{RESULTS}/gt.json",
    log:
        f"{RESULTS}/logs/manifest.log",
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        categories=to_json(READER.categories()),
    shell:
        "wsvis manifest --categories {params.categories:q} --tables {input.tables:q} "
        "--gts {input.gts:q} --manifest {output.manifest:q} --gt {output.gt:q} > {log:q} 2>&1"
