# STC-Seg pseudo-labels (wsvis.stc): mini network on flow (and depth), M inside each box.


rule pseudo_stc:
    input:
        table=rules.ingest_video.output.table,
        flow=rules.flow.output.zarr,
        depth=[DEPTH_ZARR] if DEPTH else [],
    output:
        zarr=directory(PSEUDO_ZARR.replace("{variant}", "stc")),
    log:
        f"{RESULTS}/logs/pseudo/stc/{{video}}.log",
    benchmark:
        bench_path("pseudo_stc")
    priority: CHAIN_PRIORITY
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        cfg=to_json(stc_params(config["stc"])),
        categories=CATEGORIES,
        depth=lambda wc, input: (
            f"--depth {shlex.quote(input.depth[0])}" if input.depth else ""
        ),
    shell:
        "wsvis stc pseudo --table {input.table:q} --flow {input.flow:q} {params.depth} "
        "--out {output.zarr:q} --categories {params.categories:q} --params {params.cfg:q} > {log:q} 2>&1"
