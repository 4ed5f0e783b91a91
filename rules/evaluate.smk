# Metrics (wsvis.evaluate): pseudo-label quality per variant, joined into one table.

PSEUDO_METRICS = f"{RESULTS}/metrics/pseudo/{{variant}}.json"
FRAME_METRICS = f"{RESULTS}/metrics/frames/{{run}}.json"


rule pseudo_metrics:
    input:
        gt=rules.manifest.output.gt,
        pseudo=lambda wc: expand(PSEUDO_ZARR, variant=wc.variant, video=VIDEOS),
    output:
        json=PSEUDO_METRICS,
    log:
        f"{RESULTS}/logs/pseudo_metrics/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pseudo_metrics/{{variant}}.tsv"
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        videos=to_json(VIDEOS),
    shell:
        "wsvis evaluate pseudo --gt {input.gt:q} --pseudo {input.pseudo:q} --videos {params.videos:q} "
        "--variant {wildcards.variant:q} --out {output.json:q} > {log:q} 2>&1"


rule pseudo_label_table:
    input:
        expand(PSEUDO_METRICS, variant=PSEUDO_VARIANTS),
    output:
        csv=f"{RESULTS}/metrics/pseudo_labels.csv",
    log:
        f"{RESULTS}/logs/pseudo_label_table.log",
    benchmark:
        f"{RESULTS}/benchmarks/pseudo_label_table.tsv"
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "wsvis evaluate table --rows {input:q} --out {output.csv:q} > {log:q} 2>&1"


rule frame_metrics:
    input:
        gt=rules.manifest.output.gt,
        predictions=lambda wc: expand(PRED_ZARR, run=wc.run, video=VIDEOS),
        flows=expand(FLOW_ZARR, video=VIDEOS),
    output:
        json=FRAME_METRICS,
    log:
        f"{RESULTS}/logs/frame_metrics/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/frame_metrics/{{run}}.tsv"
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        videos=to_json(VIDEOS),
    shell:
        "wsvis evaluate frames --gt {input.gt:q} --predictions {input.predictions:q} "
        "--flows {input.flows:q} --videos {params.videos:q} --method {wildcards.run:q} "
        "--out {output.json:q} > {log:q} 2>&1"


rule video_metrics:
    input:
        gt=rules.manifest.output.gt,
        tracks=TRACKS,
        mots=lambda wc: expand(TRACK_MOTS, run=wc.run, tracker=wc.tracker, video=VIDEOS),
    output:
        json=f"{RESULTS}/metrics/video/{{run}}/{{tracker}}.json",
    log:
        f"{RESULTS}/logs/video_metrics/{{run}}/{{tracker}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/video_metrics/{{run}}/{{tracker}}.tsv"
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        mots_dir=lambda wc: f"{RESULTS}/tracks/{wc.run}/{wc.tracker}/mots",
    shell:
        "wsvis evaluate video --gt {input.gt:q} --tracks {input.tracks:q} --mots-dir {params.mots_dir:q} "
        "--method {wildcards.run:q} --tracker {wildcards.tracker:q} --out {output.json:q} > {log:q} 2>&1"


rule summary:
    input:
        frames=expand(FRAME_METRICS, run=RUNS),
        pseudo=expand(PSEUDO_METRICS, variant=PSEUDO_VARIANTS),
        video=expand(
            f"{RESULTS}/metrics/video/{{run}}/{{tracker}}.json",
            run=RUNS,
            tracker=config["track"]["trackers"],
        ),
    output:
        csv=f"{RESULTS}/metrics/summary.csv",
        per_sequence=f"{RESULTS}/metrics/per_sequence.csv",
    log:
        f"{RESULTS}/logs/summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/summary.tsv"
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "wsvis evaluate summary --frames {input.frames:q} --pseudo {input.pseudo:q} "
        "--video {input.video:q} --out {output.csv:q} --per-sequence {output.per_sequence:q} > {log:q} 2>&1"
