# Metrics (wsvis.evaluate): pseudo-label quality per variant, joined into one table.

PSEUDO_METRICS = f"{RESULTS}/metrics/pseudo/{{variant}}.json"


rule pseudo_metrics:
    input:
        gt=rules.manifest.output.gt,
        pseudo=lambda wc: expand(PSEUDO_ZARR, variant=wc.variant, video=VIDEOS),
    output:
        json=PSEUDO_METRICS,
    log:
        f"{RESULTS}/logs/pseudo_metrics/{{variant}}.log",
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
        "--variant {wildcards.variant} --out {output.json:q} > {log:q} 2>&1"


rule pseudo_label_table:
    input:
        expand(PSEUDO_METRICS, variant=PSEUDO_VARIANTS),
    output:
        csv=f"{RESULTS}/metrics/pseudo_labels.csv",
    log:
        f"{RESULTS}/logs/pseudo_label_table.log",
    conda:
        "../envs/wsvis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "wsvis evaluate table --rows {input:q} --out {output.csv:q} > {log:q} 2>&1"
