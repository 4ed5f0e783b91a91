"""The results report: a static HTML folder with the summary table, plots and per-video pictures.

``report/index.html`` is self-contained with its folder (plots and pictures are
copied beside it) so it can be opened from disk (``file://``) or served by any
static web server. The summary table is built in the browser from the JSON
embedded in the page, and the page records which plots loaded, so a headless
browser test checks what is rendered rather than the HTML source.
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from wsvis.io.store import atomic_file  # noqa: E402

__all__ = ["write_report", "metric_plots"]

_PLOTS = {
    # plot file -> (summary kind, metrics, title)
    "frame_metrics.png": ("frame", ["AP", "AP50", "AP75", "J", "TC"], "Frame metrics per method"),
    "video_metrics.png": ("video", ["mAP", "AP50", "AR10", "HOTA", "sMOTSA", "IDF1"], "Video metrics per method x tracker"),
    "pseudo_labels.png": ("pseudo", ["AP", "AP50", "J"], "Pseudo-label quality per variant"),
}


def _wide(summary: pd.DataFrame, kind: str) -> pd.DataFrame:
    part = summary[summary["kind"] == kind]
    if part.empty:
        return pd.DataFrame()
    index = ["method", "tracker"] if kind == "video" else ["method"]
    wide = part.pivot_table(index=index, columns="metric", values="value", aggfunc="first", dropna=False)
    return wide.reset_index()


def metric_plots(summary: pd.DataFrame, out_dir: str | os.PathLike) -> list[Path]:
    """Bar charts (matplotlib) of the summary's frame, video and pseudo-label metrics.

    Args:
        summary: ``metrics/summary.csv`` (long format: kind, method, tracker, metric, value).
        out_dir: folder for the PNGs.

    Returns:
        Paths of the plots written (a kind absent from the summary gives no plot).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (kind, metrics, title) in _PLOTS.items():
        wide = _wide(summary, kind)
        metrics = [m for m in metrics if m in wide.columns]
        if wide.empty or not metrics:
            continue
        labels = [" / ".join(str(v) for v in row) for row in wide[[c for c in ("method", "tracker") if c in wide]].values]
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(labels) * len(metrics) / 3), 4))
        width = 0.8 / len(metrics)
        for k, metric in enumerate(metrics):
            values = [0.0 if (v is None or (isinstance(v, float) and math.isnan(v))) else float(v) for v in wide[metric]]
            ax.bar([i + k * width for i in range(len(labels))], values, width, label=metric)
        ax.set_xticks([i + width * (len(metrics) - 1) / 2 for i in range(len(labels))], labels, rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.legend(fontsize=8, ncols=min(len(metrics), 6))
        fig.tight_layout()
        with atomic_file(out_dir / name) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
        plt.close(fig)
        written.append(out_dir / name)
    return written


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #bbb; padding: 2px 8px; text-align: right; }} th {{ background: #eee; }}
img {{ max-width: 100%; }} .pictures img {{ max-width: 48%; margin: 4px; vertical-align: top; }}
</style></head><body>
<h1>{title}</h1>
<p>wsvis results for dataset <b>{dataset}</b>. Metrics in [0, 1]; NaN where a metric does not apply.</p>
<h2>Summary</h2>
<div id="summary">(the summary table is built by the script below)</div>
<h2>Plots</h2>
<div id="plots">{plots}</div>
<p id="plot-status"></p>
<h2>Per-video pictures</h2>
{pictures}
<script id="summary-data" type="application/json">{data}</script>
<script>
const rows = JSON.parse(document.getElementById("summary-data").textContent);
const kinds = [...new Set(rows.map(r => r.kind))];
const holder = document.getElementById("summary");
holder.textContent = "";
for (const kind of kinds) {{
  const part = rows.filter(r => r.kind === kind);
  const metrics = [...new Set(part.map(r => r.metric))];
  const keyOf = r => r.method + " | " + (r.tracker || "");
  const keys = [...new Set(part.map(keyOf))];
  const table = document.createElement("table");
  table.className = "summary-table";
  table.dataset.kind = kind;
  const head = table.insertRow();
  for (const h of ["kind", "method", "tracker", ...metrics]) {{
    const th = document.createElement("th"); th.textContent = h; head.appendChild(th);
  }}
  for (const key of keys) {{
    const row = table.insertRow();
    const [method, tracker] = key.split(" | ");
    for (const v of [kind, method, tracker]) row.insertCell().textContent = v;
    for (const m of metrics) {{
      const hit = part.find(r => keyOf(r) === key && r.metric === m);
      row.insertCell().textContent = hit && hit.value !== null ? Number(hit.value).toFixed(3) : "";
    }}
  }}
  const h3 = document.createElement("h3"); h3.textContent = kind;
  holder.appendChild(h3); holder.appendChild(table);
}}
window.addEventListener("load", () => {{
  const plots = [...document.querySelectorAll("#plots img")];
  const ok = plots.filter(img => img.complete && img.naturalWidth > 0).length;
  document.getElementById("plot-status").textContent = ok + " of " + plots.length + " plots rendered";
}});
</script>
</body></html>
"""


def write_report(
    out_dir: str | os.PathLike,
    *,
    summary_csv: str | os.PathLike,
    pictures: dict[str, list[str]],
    dataset: str,
    title: str = "wsvis report",
) -> Path:
    """Write ``out_dir/index.html`` with the summary table, plots and pictures.

    Args:
        out_dir: report folder (``results/{dataset}/report``); plots go to
            ``plots/`` and pictures are copied to ``pictures/`` beside the page.
        summary_csv: ``metrics/summary.csv``.
        pictures: section title -> PNG paths (flow overviews, CAMs, pseudo-labels, tracks).
        dataset: dataset name for the heading.
        title: page title.

    Returns:
        The path of ``index.html`` (written atomically, after the plots and pictures).
    """
    out_dir = Path(out_dir)
    summary = pd.read_csv(summary_csv)
    plots = metric_plots(summary, out_dir / "plots")
    plot_html = "\n".join(f'<img src="plots/{p.name}" alt="{html.escape(p.stem)}">' for p in plots)
    sections = []
    for section, paths in pictures.items():
        images = []
        for path in paths:
            path = Path(path)
            rel = Path("pictures") / section.replace(" ", "_") / path.parent.name / path.name
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out_dir / rel)
            images.append(f'<img src="{html.escape(rel.as_posix())}" title="{html.escape(path.stem)}">')
        sections.append(f'<h3>{html.escape(section)}</h3><div class="pictures">{"".join(images)}</div>')
    records = json.loads(summary.to_json(orient="records"))
    page = _PAGE.format(
        title=html.escape(title),
        dataset=html.escape(dataset),
        plots=plot_html,
        pictures="\n".join(sections),
        data=json.dumps(records).replace("</", "<\\/"),
    )
    with atomic_file(out_dir / "index.html") as tmp:
        tmp.write_text(page)
    return out_dir / "index.html"
