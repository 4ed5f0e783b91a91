# Pseudo-label baselines with no learning (wsvis.baselines): motion (class tags), box and grabcut
# (boxes); the same artifact as every pseudo-labeler, read against every method.

BASELINE_PATTERN = "|".join(BASELINE_VARIANTS)


rule pseudo_baseline:
    input:
        table=rules.ingest_video.output.table,
        flow=baseline_flow,
    output:
        zarr=directory(PSEUDO_ZARR),
    log:
        f"{RESULTS}/logs/pseudo/{{variant}}/{{video}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pseudo_baseline/{{variant}}/{{video}}.tsv"
    wildcard_constraints:
        variant=BASELINE_PATTERN,
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        cfg=lambda wc: to_json(baseline_params(config["baselines"], wc.variant)),
        categories=CATEGORIES,
        flow=lambda wc, input: (
            f"--flow {shlex.quote(input.flow[0])}" if input.flow else ""
        ),
    shell:
        "wsvis baseline --name {wildcards.variant:q} --table {input.table:q} {params.flow} "
        "--out {output.zarr:q} --categories {params.categories:q} --params {params.cfg:q} "
        "--threads {threads} > {log:q} 2>&1"
