# Dataset ingestion (wsvis.io): per-video frame tables, then manifest.parquet + gt.json.

# Path patterns used with expand() (rules.X.output carries storage flags that expand() rejects).
INGEST_TABLE = f"{RESULTS}/ingest/{{video}}.parquet"
INGEST_GT = f"{RESULTS}/ingest/{{video}}.gt.json"


rule ingest_video:
    input:
        # local(): the dataset stays on the filesystem under remote default storage (Kubernetes):
        # later stages read frames by the manifest's paths, so every pod must see the same folder.
        lambda wc: [local(path) for path in READER.sources(wc.video)],
    output:
        table=INGEST_TABLE,
        gt=INGEST_GT,
    log:
        log_path("ingest"),
    benchmark:
        bench_path("ingest_video")
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
        tables=expand(INGEST_TABLE, video=VIDEOS),
        gts=expand(INGEST_GT, video=VIDEOS),
    output:
        manifest=f"{RESULTS}/manifest.parquet",
        gt=f"{RESULTS}/gt.json",
    log:
        f"{RESULTS}/logs/manifest.log",
    benchmark:
        f"{RESULTS}/benchmarks/manifest.tsv"
    priority: CHAIN_PRIORITY
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
