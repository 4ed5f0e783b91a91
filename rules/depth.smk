# Monocular depth (wsvis.depth). Only part of the workflow when depth.backend is not 'none'.

DEPTH_ZARR = f"{RESULTS}/depth/{{video}}.zarr"

if DEPTH:

    rule depth:
        input:
            table=rules.ingest_video.output.table,
        output:
            zarr=directory(DEPTH_ZARR),
        log:
            log_path("depth"),
        benchmark:
            bench_path("depth")
        conda:
            "../envs/wsvis.yaml"
        threads: 1
        resources:
            **gpu_request(config["depth"]["device"]),
            mem_mb=6000,
            runtime=240,
        params:
            cfg=to_json(depth_params(config["depth"])),
        shell:
            "wsvis depth --table {input.table:q} --out {output.zarr:q} --params {params.cfg:q} "
            "--threads {threads} > {log:q} 2>&1"
