"""``metrics/costs.csv``: where a run's time and memory go, from Snakemake's ``benchmark:`` files.

Every rule writes ``benchmarks/<rule>/.../<video>.tsv`` (per-video rules),
``benchmarks/<rule>/<variant or run>.tsv`` or ``benchmarks/<rule>.tsv``:
Snakemake's benchmark record (columns ``s`` wall seconds, ``max_rss`` MB,
``cpu_time`` seconds, ...). One row of the cost table is a stage: the rule,
refined by its variant / run / tracker where it has one (``train_irn:flowirn``,
``pseudo_baseline:grabcut``, ``predict:maskconsist``), summed over videos.
A benchmark file is the cost of the job that last made its output, so after a
partial rerun the table still describes the whole run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import pandas as pd

from wsvis.io.store import atomic_file

__all__ = ["COST_COLUMNS", "cost_table", "write_cost_table"]

#: Columns of ``metrics/costs.csv``; the last row is ``stage = total``.
COST_COLUMNS = ["stage", "jobs", "wall_s", "cpu_s", "max_rss_mb", "share"]


def _column(record: pd.DataFrame, name: str) -> pd.Series:
    """A benchmark column as floats; missing column or "NA" cells (Snakemake writes them when it
    could not measure) count as 0."""
    if name not in record.columns:
        return pd.Series([0.0])
    return pd.to_numeric(record[name], errors="coerce").fillna(0.0).astype(float)


def _stage(rel: Path, videos: set[str]) -> str:
    parts = list(rel.with_suffix("").parts)
    if len(parts) > 1 and parts[-1] in videos:
        parts = parts[:-1]
    return parts[0] + (":" + "/".join(parts[1:]) if len(parts) > 1 else "")


def cost_table(benchmark_dir: str | os.PathLike, videos: Iterable[str] = ()) -> pd.DataFrame:
    """Per-stage cost of a run.

    Args:
        benchmark_dir: ``results/{dataset}/benchmarks``.
        videos: the dataset's video names (a last path component that is a
            video is summed over, not a stage of its own).

    Returns:
        DataFrame with :data:`COST_COLUMNS`: ``stage`` str, ``jobs`` int (benchmark
        files), ``wall_s`` / ``cpu_s`` float seconds summed over jobs, ``max_rss_mb``
        float, the largest resident set of any job, ``share`` float, the stage's
        fraction of the total wall seconds; sorted by ``wall_s`` descending, then
        a ``total`` row (jobs and seconds summed, the largest RSS). Empty (only a
        zero total row) when there is no benchmark file.

    Raises:
        ValueError: a benchmark file without the ``s`` column (names the file).
    """
    root = Path(benchmark_dir)
    videos = set(videos)
    rows = []
    for path in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        record = pd.read_csv(path, sep="\t")
        if "s" not in record.columns:
            raise ValueError(f"{path}: not a Snakemake benchmark file (no 's' column)")
        rows.append(
            {
                "stage": _stage(path.relative_to(root), videos),
                "wall_s": float(record["s"].sum()),
                "cpu_s": _column(record, "cpu_time").sum(),
                "max_rss_mb": _column(record, "max_rss").max(),
            }
        )
    jobs = pd.DataFrame(rows, columns=["stage", "wall_s", "cpu_s", "max_rss_mb"])
    table = (
        jobs.groupby("stage", sort=False)
        .agg(jobs=("wall_s", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"), max_rss_mb=("max_rss_mb", "max"))
        .reset_index()
        .sort_values(["wall_s", "stage"], ascending=[False, True], kind="stable")
    )
    total_wall = float(table["wall_s"].sum())
    table["share"] = table["wall_s"] / total_wall if total_wall > 0 else 0.0
    total = {
        "stage": "total",
        "jobs": int(table["jobs"].sum()),
        "wall_s": total_wall,
        "cpu_s": float(table["cpu_s"].sum()),
        "max_rss_mb": float(table["max_rss_mb"].max()) if len(table) else 0.0,
        "share": 1.0 if total_wall > 0 else 0.0,
    }
    table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    return table[COST_COLUMNS].astype({"jobs": int})


def write_cost_table(
    benchmark_dir: str | os.PathLike, out_csv: str | os.PathLike, videos: Iterable[str] = ()
) -> pd.DataFrame:
    """Write :func:`cost_table` to ``out_csv`` atomically and return it."""
    table = cost_table(benchmark_dir, videos)
    with atomic_file(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.3f")
    return table
