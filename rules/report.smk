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
        "--title {wildcards.run:q}/{wildcards.tracker:q} -o {output.png:q} --params {params.cfg:q} "
        "> {log:q} 2>&1"


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
        out_dir=lambda wc, output: os.path.dirname(output.html),
        dataset=config["dataset"]["name"],
    shell:
        "wsvis report --summary {input.summary:q} --pictures {params.pictures:q} "
        "--dataset {params.dataset:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
