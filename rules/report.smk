# Pictures of tracks and the static HTML report (wsvis.viz): open results/<dataset>/report/index.html.

TRACK_VIZ = f"{RESULTS}/viz/tracks/{{run}}/{{tracker}}/{{video}}.png"


rule viz_tracks:
    input:
        table=rules.ingest_video.output.table,
        tracks=TRACK_FRAGMENT,
        gt=rules.manifest.output.gt,
    output:
        png=TRACK_VIZ,
    log:
        f"{RESULTS}/logs/viz_tracks/{{run}}/{{tracker}}/{{video}}.log",
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        cfg=to_json(config["viz"]),
    shell:
        "wsvis viz tracks --table {input.table:q} --tracks {input.tracks:q} --gt {input.gt:q} "
        "--title {wildcards.run}/{wildcards.tracker} -o {output.png:q} --params {params.cfg:q} "
        "> {log:q} 2>&1"


def report_pictures():
    """SECTION=PNG arguments of the report: every per-video picture the workflow draws."""
    sections = {
        "optical flow": expand(FLOW_OVERVIEW, video=VIDEOS),
        "CAM and f-CAM": expand(CAM_VIZ, video=VIDEOS),
        "pseudo-labels": expand(PSEUDO_VIZ, variant=PSEUDO_VARIANTS, video=VIDEOS),
        "tracks": expand(
            TRACK_VIZ, run=RUNS, tracker=config["track"]["trackers"], video=VIDEOS
        ),
    }
    return [
        f"{section}={path}" for section, paths in sections.items() for path in paths
    ]


rule report:
    input:
        summary=rules.summary.output.csv,
        pictures=[p.split("=", 1)[1] for p in report_pictures()],
    output:
        html=f"{RESULTS}/report/index.html",
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        pictures=report_pictures(),
        out_dir=f"{RESULTS}/report",
        dataset=config["dataset"]["name"],
    shell:
        "wsvis report --summary {input.summary:q} --pictures {params.pictures:q} "
        "--dataset {params.dataset:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
