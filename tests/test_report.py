"""The HTML report, checked from what headless Chromium renders (not from the HTML source)."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from wsvis.viz.report import write_report
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
    return pd.DataFrame(rows)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_renders_table_and_plots(tmp_path):
    summary = tmp_path / "summary.csv"
    summary_rows().to_csv(summary, index=False)
    picture = tmp_path / "viz" / "flow" / "dog.png"
    picture.parent.mkdir(parents=True)
    write_png(picture, np.full((20, 30, 3), 200, np.uint8))
    page = write_report(tmp_path / "report", summary_csv=summary, pictures={"optical flow": [str(picture)]},
                        dataset="demo")
    profile = tmp_path / "chromium-profile"
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    # The tables exist only if the page's script ran and built them from the embedded data.
    tables = re.findall(r'<table class="summary-table" data-kind="(\w+)">(.*?)</table>', dom, re.S)
    assert {kind for kind, _ in tables} == {"frame", "video", "pseudo"}
    frame_table = dict(tables)["frame"]
    assert frame_table.count("<tr>") == 3 and "0.500" in frame_table  # header + two methods
    plots = re.search(r'id="plot-status">(\d+) of (\d+) plots rendered<', dom)
    assert plots and int(plots.group(1)) == int(plots.group(2)) == 3
    shot = REPO / "results" / "report_screenshot.png"
    shot.parent.mkdir(exist_ok=True)
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                    "--window-size=1280,1600", page.as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000
