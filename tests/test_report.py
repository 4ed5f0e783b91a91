"""The HTML report: the method-vs-baselines table and costs as numbers, the plots' size, and the page
as headless Chromium renders it (not the HTML source)."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from wsvis.cli import main
from wsvis.viz.report import (COMPARISON_COLUMNS, baseline_comparison, baseline_plot, cost_table, metric_plots,
                               write_report)
from wsvis.viz.sheet import write_png

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=5000"]


def summary_rows():
    rows = []
    for method, ap50 in (("maskrcnn", 0.4), ("maskconsist", 0.5)):
        rows += [{"kind": "frame", "method": method, "tracker": None, "metric": m, "value": v}
                 for m, v in (("AP50", ap50), ("J", 0.6), ("TC", 0.7))]
        rows += [{"kind": "video", "method": method, "tracker": t, "metric": "HOTA", "value": 0.3} for t in ("iou", "stc")]
    rows += [{"kind": "pseudo", "method": "flowirn", "tracker": None, "metric": "J", "value": 0.2}]
    rows += [{"kind": "pseudo", "method": "motion", "tracker": None, "metric": m, "value": v}
             for m, v in (("J", 0.3), ("AP50", 0.45), ("AP", 0.2))]
    return pd.DataFrame(rows)


def long_rows(kind: str, method: str, tracker: str = "", **metrics) -> list[dict]:
    return [{"kind": kind, "method": method, "tracker": tracker, "metric": m, "value": v} for m, v in metrics.items()]


FAMILIES = {
    "tags": {"baselines": ["motion"], "methods": ["flowirn", "maskconsist", "ghost"]},
    "boxes": {"baselines": ["box", "grabcut", "nojay"], "methods": ["stc"]},
    "other": {"methods": ["boxinst"]},
}


def hand_summary() -> pd.DataFrame:
    rows = (long_rows("pseudo", "motion", J=0.4, AP50=0.3, AP=0.1)
            + long_rows("pseudo", "flowirn", J=0.5, AP=0.2)  # no AP50: its dAP50 is NaN
            + long_rows("frame", "maskconsist", J=0.7, AP50=0.55, AP=0.3, TC=0.9)
            + long_rows("video", "maskconsist", "iou", J=0.95, AP50=0.99)  # video rows are not compared
            + long_rows("pseudo", "box", J=0.5, AP50=0.45, AP=0.2)
            + long_rows("pseudo", "grabcut", J=0.6, AP50=0.4, AP=0.25)
            + long_rows("pseudo", "nojay", AP50=0.9)  # a baseline without J is never the best
            + long_rows("pseudo", "stc", J=0.55, AP50=0.5, AP=0.3)
            + long_rows("frame", "stc", J=0.65, AP50=0.35)  # a segmenter run named like a variant: its own row
            + long_rows("frame", "boxinst", J=0.45, AP50=0.4, AP=0.2))
    return pd.DataFrame(rows)


def test_baseline_comparison_hand_computed():
    table = baseline_comparison(hand_summary(), FAMILIES)
    assert list(table.columns) == COMPARISON_COLUMNS
    got = [(r.family, r.name, r.kind, r.baseline, r.best_baseline) for r in table.itertuples()]
    assert got == [
        ("tags", "motion", "pseudo-labels", True, True),
        ("tags", "flowirn", "pseudo-labels", False, False),
        ("tags", "maskconsist", "predictions", False, False),
        ("tags", "ghost", "not in summary", False, False),
        ("boxes", "box", "pseudo-labels", True, False),
        ("boxes", "grabcut", "pseudo-labels", True, True),  # best = highest J (0.6), not highest AP50 (box, nojay)
        ("boxes", "nojay", "pseudo-labels", True, False),
        ("boxes", "stc", "pseudo-labels", False, False),
        ("boxes", "stc", "predictions", False, False),
        ("other", "boxinst", "predictions", False, False),
    ]
    nan = math.nan
    # dJ, dAP50 by hand: tags vs motion (J 0.4, AP50 0.3), boxes vs grabcut (J 0.6, AP50 0.4), other: no baseline
    expected = [(nan, nan), (0.1, nan), (0.3, 0.25), (nan, nan), (nan, nan), (nan, nan), (nan, nan),
                (-0.05, 0.1), (0.05, -0.05), (nan, nan)]
    for r, (dj, dap50) in zip(table.itertuples(), expected):
        assert (r.dJ, r.dAP50) == pytest.approx((dj, dap50), nan_ok=True), r.name
    assert table.loc[3, ["J", "AP50", "AP"]].isna().all()  # "ghost" has no rows
    assert math.isnan(table.loc[1, "AP50"]) and table.loc[1, "AP"] == 0.2
    assert table.loc[2, "J"] == 0.7  # the frame J, not the video row's 0.95


def test_baseline_comparison_empty_and_malformed():
    empty = baseline_comparison(hand_summary(), None)
    assert empty.empty and list(empty.columns) == COMPARISON_COLUMNS
    assert baseline_comparison(hand_summary(), {"tags": {}, "boxes": None}).empty
    with pytest.raises(ValueError, match="both as baseline and as method"):
        baseline_comparison(hand_summary(), {"tags": {"baselines": ["motion"], "methods": ["motion"]}})
    with pytest.raises(ValueError, match="expected"):
        baseline_comparison(hand_summary(), {"tags": {"baseline": ["motion"]}})
    with pytest.raises(ValueError, match="list of names"):
        baseline_comparison(hand_summary(), {"tags": {"baselines": "motion"}})


def test_cost_table_sorted_total_last(tmp_path):
    path = tmp_path / "costs.csv"
    pd.DataFrame({"rule": ["flow", "total", "train", "report"], "jobs": [4, 7, 1, 2],
                  "wall_s": [30.0, 100.0, 60.0, 10.0], "cpu_s": [50.0, 150.0, 90.0, 10.0],
                  "max_rss_mb": [500, 900, 900, 100], "share": [0.3, 1.0, 0.6, 0.1]}).to_csv(path, index=False)
    table = cost_table(path)
    assert table["stage"].tolist() == ["train", "flow", "report", "total"]  # "rule" is read as "stage"
    assert table["wall_s"].tolist() == [60.0, 30.0, 10.0, 100.0]
    assert table["share"].tolist() == [0.6, 0.3, 0.1, 1.0]
    # as wsvis.evaluate.costs writes it: a "stage" column, stages named rule:variant
    pd.DataFrame({"stage": ["predict:maskconsist", "train_irn:flowirn", "total"], "jobs": [3, 1, 4],
                  "wall_s": [5.0, 20.0, 25.0], "cpu_s": [5.0, 30.0, 35.0], "max_rss_mb": [100.0, 200.0, 200.0],
                  "share": [0.2, 0.8, 1.0]}).to_csv(path, index=False)
    assert cost_table(path)["stage"].tolist() == ["train_irn:flowirn", "predict:maskconsist", "total"]
    pd.DataFrame({"rule": ["total"], "wall_s": [1.0]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="missing"):
        cost_table(path)


def realistic_video_summary(runs: int, trackers: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for m in ("maskrcnn", "maskconsist", "stcseg", "boxinst", "boxinst_flow")[:runs]:
        for t in ("iou", "unovost", "bigreedy")[:trackers]:
            rows += long_rows("video", m, t, **{k: float(rng.uniform(-0.2, 0.9)) for k in
                                                 ("mAP", "AP50", "AR10", "HOTA", "sMOTSA", "IDF1")})
    return pd.DataFrame(rows)


def test_video_plot_page_width_and_grows_with_rows(tmp_path):
    """5 runs x 3 trackers x 6 metrics: one panel per metric, ~10 in at 100 dpi wide, taller with more rows."""
    big = metric_plots(realistic_video_summary(5, 3), tmp_path / "big")
    small = metric_plots(realistic_video_summary(1, 3), tmp_path / "small")
    assert [p.name for p in big] == [p.name for p in small] == ["video_metrics.png"]
    big_h, big_w = cv2.imread(str(big[0])).shape[:2]
    small_h, small_w = cv2.imread(str(small[0])).shape[:2]
    assert 900 <= big_w <= 1100 and 900 <= small_w <= 1100
    # 2 x 3 panels, each 0.3 in per row: 12 more rows add about 2 * 12 * 0.3 in = 720 px
    assert 600 < big_h - small_h < 850


def test_baseline_plot(tmp_path):
    table = baseline_comparison(hand_summary(), FAMILIES)
    png = baseline_plot(table, tmp_path / "mvb.png")
    h, w = cv2.imread(str(png)).shape[:2]
    assert 900 <= w <= 1100 and h > 400
    no_j = baseline_comparison(hand_summary(), {"tags": {"methods": ["ghost"]}})
    assert baseline_plot(no_j, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def test_cli_report_families_and_costs(tmp_path, capsys):
    summary = tmp_path / "summary.csv"
    hand_summary().to_csv(summary, index=False)
    costs = tmp_path / "costs.csv"
    pd.DataFrame({"stage": ["flow", "total"], "jobs": [1, 1], "wall_s": [2.0, 2.0], "cpu_s": [1.0, 1.0],
                  "max_rss_mb": [10, 10], "share": [1.0, 1.0]}).to_csv(costs, index=False)
    args = ["report", "--summary", str(summary), "--dataset", "demo", "--out-dir", str(tmp_path / "r")]
    assert main([*args, "--families", json.dumps(FAMILIES), "--costs", str(costs)]) == 0
    page = (tmp_path / "r" / "index.html").read_text()
    assert page.index('id="baseline-table"') < page.index('id="summary"') < page.index('id="cost-table"')
    assert 'id="per-sequence-table"' not in page
    per_seq = tmp_path / "per_sequence.csv"
    pd.DataFrame({"kind": ["pseudo", "frame", "frame"], "method": ["stc", "stcseg", "stcseg"],
                  "video": ["cows", "cows", "00001"], "metric": "J", "value": [0.6, 0.75, 0.25]}).to_csv(per_seq,
                                                                                           index=False)
    assert main([*args, "--per-sequence", str(per_seq)]) == 0
    page = (tmp_path / "r" / "index.html").read_text()
    assert page.index('id="summary"') < page.index('id="per-sequence-table"')
    table = re.search(r'<table class="per-sequence-table"[^>]*>(.*?)</table>', page, re.S).group(1)
    # videos sorted as names ("00001" stays a name), one row per (kind, method), then the mean
    assert re.findall(r"<th>([^<]*)</th>", table) == ["kind", "method", "00001", "cows", "mean"]
    rows = [re.findall(r"<td[^>]*>([^<]*)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]]
    assert rows == [["pseudo-labels", "stc", "", "0.600", "0.600"], ["predictions", "stcseg", "0.250", "0.750", "0.500"]]
    assert main([*args, "--families", "{tags: motion}"]) == 1
    assert "--families is not JSON" in capsys.readouterr().err


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_renders_table_and_plots(tmp_path):
    summary = tmp_path / "summary.csv"
    summary_rows().to_csv(summary, index=False)
    picture = tmp_path / "viz" / "flow" / "dog.png"
    picture.parent.mkdir(parents=True)
    write_png(picture, np.full((20, 30, 3), 200, np.uint8))
    costs = tmp_path / "costs.csv"
    pd.DataFrame({"rule": ["flow", "train", "total"], "jobs": [2, 1, 3], "wall_s": [10.0, 30.0, 40.0],
                  "cpu_s": [12.0, 50.0, 62.0], "max_rss_mb": [300, 900, 900], "share": [0.25, 0.75, 1.0]}
                 ).to_csv(costs, index=False)
    families = {"tags": {"baselines": ["motion"], "methods": ["flowirn", "maskrcnn", "maskconsist"]}}
    page = write_report(tmp_path / "report", summary_csv=summary, pictures={"optical flow": [str(picture)]},
                        dataset="demo", families=families, costs_csv=costs)
    profile = tmp_path / "chromium-profile"
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    # The page leads with the answer: the first section and the first table are method vs baselines.
    assert re.findall(r"<h2[^>]*>(.*?)</h2>", dom) == ["Method vs baselines", "Summary", "Plots",
                                                        "Where time goes (per-stage cost)", "Per-video pictures"]
    first = re.search(r"<table([^>]*)>(.*?)</table>", dom, re.S)
    assert 'class="baseline-table"' in first.group(1)
    rows = re.findall(r'<tr class="([^"]*)" data-family="tags" data-name="(\w+)" data-kind="([^"]+)">(.*?)</tr>',
                      first.group(2), re.S)
    assert [(name, kind) for _, name, kind, _ in rows] == [
        ("motion", "pseudo-labels"), ("flowirn", "pseudo-labels"), ("maskrcnn", "predictions"),
        ("maskconsist", "predictions")]
    assert "baseline" in rows[0][0].split() and "best" in rows[0][3]
    # vs motion (J 0.3, AP50 0.45): flowirn J 0.2 -> -0.100 below, no AP50; maskconsist +0.300 J, +0.050 AP50
    assert re.search(r'class="delta below">\u22120\.100<', rows[1][3])
    assert re.findall(r'class="delta (\w+)">([^<]*)<', rows[3][3]) == [("above", "+0.300"), ("above", "+0.050")]
    costs_table = re.search(r'<table class="cost-table"[^>]*>(.*?)</table>', dom, re.S).group(1)
    assert re.findall(r'<td class="name">(\w+)</td>', costs_table) == ["train", "flow", "total"]
    # The summary tables exist only if the page's script ran and built them from the embedded data.
    tables = re.findall(r'<table class="summary-table" data-kind="(\w+)">(.*?)</table>', dom, re.S)
    assert {kind for kind, _ in tables} == {"frame", "video", "pseudo"}
    frame_table = dict(tables)["frame"]
    assert frame_table.count("<tr>") == 3 and "0.500" in frame_table  # header + two methods
    plots = re.search(r'id="plot-status">(\d+) of (\d+) plots rendered<', dom)
    assert plots and int(plots.group(1)) == int(plots.group(2)) == 4  # method vs baselines + frame, video, pseudo
    shot = REPO / "results" / "report_screenshot.png"
    shot.parent.mkdir(exist_ok=True)
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                    "--window-size=1280,1600", page.as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000
