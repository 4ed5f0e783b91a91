# Monocular depth (wsvis.depth). Only part of the workflow when depth.backend is not 'none'.

if DEPTH:

    rule depth:
        input:
            table=rules.ingest_video.output.table,
        output:
            zarr=directory(f"{RESULTS}/depth/{{video}}.zarr"),
        params:
            cfg=to_json(depth_params(config["depth"])),
        log:
            log_path("depth"),
        threads: 2
        resources:
            mem_mb=6000,
            runtime=240,
            **gpu_request(config["depth"]["device"]),
        shell:
            "wsvis depth --table {input.table:q} --out {output.zarr:q} --params {params.cfg:q} "
            "--threads {threads} > {log:q} 2>&1"
