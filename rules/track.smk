# Tracking (wsvis.track): per-frame predictions of each run -> tracks, one folder per run x tracker.

TRACK_FRAGMENT = f"{RESULTS}/tracks/{{run}}/{{tracker}}/{{video}}.json"
TRACK_MOTS = f"{RESULTS}/tracks/{{run}}/{{tracker}}/mots/{{video}}.txt"
TRACKS = f"{RESULTS}/tracks/{{run}}/{{tracker}}.json"


wildcard_constraints:
    tracker="|".join(config["track"]["trackers"]) or "none",


rule track_video:
    input:
        predictions=PRED_ZARR,
        table=rules.ingest_video.output.table,
        flow=rules.flow.output.zarr,
        # Only the STC tracker's spatio-temporal discrepancy (Eq. 9) uses depth.
        depth=lambda wc: (
            expand(DEPTH_ZARR, video=wc.video) if DEPTH and wc.tracker == "stc" else []
        ),
    output:
        json=TRACK_FRAGMENT,
        mots=TRACK_MOTS,
    log:
        f"{RESULTS}/logs/track/{{run}}/{{tracker}}/{{video}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/track_video/{{run}}/{{tracker}}/{{video}}.tsv"
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        cfg=lambda wc: to_json(config["track"][wc.tracker]),
        depth=lambda wc, input: (
            f"--depth {shlex.quote(input.depth[0])}" if input.depth else ""
        ),
    shell:
        "wsvis track video --predictions {input.predictions:q} --table {input.table:q} "
        "--flow {input.flow:q} {params.depth} --video {wildcards.video:q} --tracker {wildcards.tracker} "
        "--params {params.cfg:q} --out {output.json:q} --mots {output.mots:q} > {log:q} 2>&1"


rule merge_tracks:
    input:
        lambda wc: expand(TRACK_FRAGMENT, run=wc.run, tracker=wc.tracker, video=VIDEOS),
    output:
        json=TRACKS,
    log:
        f"{RESULTS}/logs/track/{{run}}/{{tracker}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/merge_tracks/{{run}}/{{tracker}}.tsv"
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "wsvis track merge --fragments {input:q} --out {output.json:q} > {log:q} 2>&1"
