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
    benchmark:
        f"{RESULTS}/benchmarks/viz_tracks/{{run}}/{{tracker}}/{{video}}.tsv"
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


# The benchmark files of every job before the report (all of them: its input is everything else the
# run makes); the report's own cost is in benchmarks/report.tsv.
rule costs:
    input:
        summary=rules.summary.output.csv,
        pseudo=rules.pseudo_label_table.output.csv,
        pictures=[p.split("=", 1)[1] for p in report_pictures()],
    output:
        csv=f"{RESULTS}/metrics/costs.csv",
    log:
        f"{RESULTS}/logs/costs.log",
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        benchmarks=f"{RESULTS}/benchmarks",
        videos=to_json(VIDEOS),
    shell:
        "wsvis evaluate costs --benchmarks {params.benchmarks:q} --videos {params.videos:q} "
        "--out {output.csv:q} > {log:q} 2>&1"


rule report:
    input:
        summary=rules.summary.output.csv,
        per_sequence=rules.summary.output.per_sequence,
        costs=rules.costs.output.csv,
        pictures=[p.split("=", 1)[1] for p in report_pictures()],
    output:
        html=f"{RESULTS}/report/index.html",
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
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
        families=to_json(supervision_families(config)),
    shell:
        "wsvis report --summary {input.summary:q} --costs {input.costs:q} --per-sequence {input.per_sequence:q} "
        "--families {params.families:q} "
        "--pictures {params.pictures:q} --dataset {params.dataset:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
