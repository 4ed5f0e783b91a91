# Optical flow (wsvis.flow): forward/backward flow per frame gap, and an overview picture per video.

FLOW = flow_params(config["flow"])
FLOW_ZARR = f"{RESULTS}/flow/{{video}}.zarr"
FLOW_OVERVIEW = f"{RESULTS}/viz/flow/{{video}}.png"


rule flow:
    input:
        table=rules.ingest_video.output.table,
    output:
        zarr=directory(FLOW_ZARR),
    log:
        log_path("flow"),
    benchmark:
        bench_path("flow")
    priority: CHAIN_PRIORITY
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        **gpu_request(FLOW["options"].get("device")),
        mem_mb=4000,
        runtime=120,
    params:
        cfg=to_json(FLOW),
    shell:
        "wsvis flow --table {input.table:q} --out {output.zarr:q} --params {params.cfg:q} "
        "--threads {threads} > {log:q} 2>&1"


rule flow_overview:
    input:
        table=rules.ingest_video.output.table,
        flow=rules.flow.output.zarr,
    output:
        png=FLOW_OVERVIEW,
    log:
        log_path("flow_overview"),
    benchmark:
        bench_path("flow_overview")
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        cfg=to_json(config["viz"]),
    shell:
        "wsvis viz overview --table {input.table:q} --flow {input.flow:q} -o {output.png:q} "
        "--params {params.cfg:q} > {log:q} 2>&1"
