# Multi-label classifier, CAMs and flow-amplified CAMs (wsvis.cam); the CAM floor pseudo-labels.

CAM_DIR = f"{RESULTS}/models/cam"
CAM_ZARR = f"{RESULTS}/cam/{{video}}.zarr"
CAM_VIZ = f"{RESULTS}/viz/cam/{{video}}.png"
PSEUDO_ZARR = f"{RESULTS}/pseudo/{{variant}}/{{video}}.zarr"
PSEUDO_VIZ = f"{RESULTS}/viz/pseudo/{{variant}}/{{video}}.png"
CATEGORIES = to_json(READER.categories())


rule train_cam:
    input:
        manifest=rules.manifest.output.manifest,
    output:
        model=f"{CAM_DIR}/model.pt",
        train_log=f"{CAM_DIR}/train_log.csv",
    log:
        f"{RESULTS}/logs/train_cam.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_cam.tsv"
    priority: CHAIN_PRIORITY
    conda:
        "../envs/wsvis.yaml"
    threads: training_threads()
    resources:
        **gpu_request(config["cam"]["device"]),
        mem_mb=8000,
        runtime=720,
    params:
        cfg=to_json(cam_train_params(config["cam"])),
        categories=CATEGORIES,
        out_dir=lambda wc, output: os.path.dirname(output.model),
    shell:
        "wsvis cam train --manifest {input.manifest:q} --out-dir {params.out_dir:q} --params {params.cfg:q} "
        "--categories {params.categories:q} --threads {threads} > {log:q} 2>&1"


rule cam:
    input:
        table=rules.ingest_video.output.table,
        flow=rules.flow.output.zarr,
        model=rules.train_cam.output.model,
    output:
        zarr=directory(CAM_ZARR),
    log:
        log_path("cam"),
    benchmark:
        bench_path("cam")
    priority: CHAIN_PRIORITY
    conda:
        "../envs/wsvis.yaml"
    # Per-video inference: one thread per job, so videos share the cores side by side.
    threads: 1
    resources:
        **gpu_request(config["cam"]["device"]),
        mem_mb=4000,
        runtime=120,
    params:
        cfg=to_json(cam_infer_params(config["cam"])),
    shell:
        "wsvis cam infer --table {input.table:q} --flow {input.flow:q} --model {input.model:q} "
        "--out {output.zarr:q} --params {params.cfg:q} --threads {threads} > {log:q} 2>&1"


rule cam_floor:
    input:
        cam=rules.cam.output.zarr,
    output:
        zarr=directory(PSEUDO_ZARR.replace("{variant}", "cam")),
    log:
        log_path("cam_floor"),
    benchmark:
        bench_path("cam_floor")
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        threshold=config["cam"]["floor_threshold"],
    shell:
        "wsvis cam floor --cam {input.cam:q} --out {output.zarr:q} --threshold {params.threshold:q} "
        "> {log:q} 2>&1"


rule viz_cam:
    input:
        table=rules.ingest_video.output.table,
        cam=rules.cam.output.zarr,
    output:
        png=CAM_VIZ,
    log:
        log_path("viz_cam"),
    benchmark:
        bench_path("viz_cam")
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        cfg=to_json(config["viz"]),
    shell:
        "wsvis viz cam --table {input.table:q} --cam {input.cam:q} -o {output.png:q} "
        "--params {params.cfg:q} > {log:q} 2>&1"
