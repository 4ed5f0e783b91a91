"""metrics/costs.csv from Snakemake benchmark files (wsvis.evaluate.costs) on hand-written records."""

import pandas as pd
import pytest

from wsvis.evaluate.costs import COST_COLUMNS, cost_table

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _write(path, seconds, rss, cpu="1.0"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t{rss}\t0\t0\t0\t0\t0\t0\t{cpu}\n")


def test_stages_sum_over_videos_and_keep_variants(tmp_path):
    _write(tmp_path / "flow" / "a.tsv", 3.0, 100)
    _write(tmp_path / "flow" / "b.tsv", 1.0, 300, cpu="NA")  # Snakemake writes NA when it cannot measure
    _write(tmp_path / "train_irn" / "flowirn.tsv", 6.0, 50)
    _write(tmp_path / "report.tsv", 0.0, 10)
    t = cost_table(tmp_path, videos=["a", "b"])
    assert list(t.columns) == COST_COLUMNS
    assert t["stage"].tolist() == ["train_irn:flowirn", "flow", "report", "total"]
    flow = t.set_index("stage").loc["flow"]
    assert flow["jobs"] == 2 and flow["wall_s"] == 4.0 and flow["cpu_s"] == 1.0 and flow["max_rss_mb"] == 300
    total = t.set_index("stage").loc["total"]
    assert total["jobs"] == 4 and total["wall_s"] == 10.0 and total["max_rss_mb"] == 300 and total["share"] == 1
    assert t["share"].iloc[:2].tolist() == pytest.approx([0.6, 0.4])


def test_no_benchmarks_gives_a_zero_total(tmp_path):
    t = cost_table(tmp_path / "none")
    assert t["stage"].tolist() == ["total"] and t["wall_s"].iloc[0] == 0
    (tmp_path / "x").mkdir()
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "x" / "bad.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match="not a Snakemake benchmark"):
        cost_table(tmp_path / "x")
