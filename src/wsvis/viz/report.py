"""The results report: a static HTML folder that leads with the answer, then the details.

The page, in order: "Method vs baselines" (each method's J / AP50 / AP and
its difference to the best no-learning baseline of its supervision family,
table and plot: :func:`baseline_comparison`, :func:`baseline_plot`); the
full summary table; J per video (when ``metrics/per_sequence.csv`` is given);
the metric plots; "Where time goes" (per-stage cost,
when ``metrics/costs.csv`` is given); the per-video pictures.

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
import numbers
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
import pandas as pd  # noqa: E402

from wsvis.evaluate.costs import COST_COLUMNS  # noqa: E402
from wsvis.io.store import atomic_file  # noqa: E402

__all__ = ["write_report", "metric_plots", "baseline_comparison", "baseline_plot", "cost_table"]

_PLOTS = {
    # plot file -> (summary kind, metrics, title)
    "frame_metrics.png": ("frame", ["AP", "AP50", "AP75", "J", "TC"], "Frame metrics per method"),
    "video_metrics.png": ("video", ["mAP", "AP50", "AR10", "HOTA", "sMOTSA", "IDF1"], "Video metrics per method x tracker"),
    "pseudo_labels.png": ("pseudo", ["AP", "AP50", "J"], "Pseudo-label quality per variant"),
}

#: Summary kinds a method-vs-baselines row can come from -> what the kind column says.
KIND_NAMES = {"pseudo": "pseudo-labels", "frame": "predictions"}
#: Kind of a listed name that has no pseudo or frame rows in the summary.
MISSING_KIND = "not in summary"
#: Columns of :func:`baseline_comparison`.
COMPARISON_COLUMNS = ["family", "name", "kind", "baseline", "best_baseline", "J", "AP50", "AP", "dJ", "dAP50"]
_COMPARED = ("J", "AP50", "AP")
#: What the no-learning baselines are (design doc), shown under the table for names the report knows.
BASELINE_NOTES = {
    "motion": "camera-compensated optical-flow magnitude, Otsu threshold",
    "box": "the box filled",
    "grabcut": "GrabCut inside the box",
}
#: Plots are drawn for a page width of about 10 in; no text below 9 pt.
_FIG_W, _FONT_PT, _DPI = 10.0, 10, 100


def _finite(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and not math.isnan(v)


def _wide(summary: pd.DataFrame, kind: str) -> pd.DataFrame:
    part = summary[summary["kind"] == kind]
    if part.empty:
        return pd.DataFrame()
    index = ["method", "tracker"] if kind == "video" else ["method"]
    wide = part.pivot_table(index=index, columns="metric", values="value", aggfunc="first", dropna=False)
    return wide.reset_index()


def _check_families(families) -> dict[str, dict[str, list[str]]]:
    if families is None:
        return {}
    if not isinstance(families, Mapping):
        raise ValueError(f"families must map a family to {{'baselines': [...], 'methods': [...]}}, got {families!r}")
    out = {}
    for family, spec in families.items():
        spec = {} if spec is None else spec
        if not isinstance(spec, Mapping) or set(spec) - {"baselines", "methods"}:
            raise ValueError(f"family {family!r}: expected {{'baselines': [...], 'methods': [...]}}, got {spec!r}")
        lists = {}
        for role in ("baselines", "methods"):
            names = spec.get(role) or []
            if isinstance(names, str) or not all(isinstance(n, str) for n in names):
                raise ValueError(f"family {family!r}: {role} must be a list of names, got {names!r}")
            lists[role] = list(names)
        both = sorted(set(lists["baselines"]) & set(lists["methods"]))
        if both:
            raise ValueError(f"family {family!r}: {both} listed both as baseline and as method")
        out[str(family)] = lists
    return out


def baseline_comparison(summary: pd.DataFrame, families: Mapping | None) -> pd.DataFrame:
    """Each method against the best no-learning baseline of its supervision family.

    Args:
        summary: ``metrics/summary.csv`` (long format: kind, method, tracker,
            metric, value); only ``pseudo`` and ``frame`` rows are used.
        families: ``{family: {"baselines": [names], "methods": [names]}}``
            with names as in the summary's ``method`` column, e.g. ``{"tags":
            {"baselines": ["motion"], "methods": ["flowirn", "maskconsist"]},
            "boxes": {...}}``. A family may lack either list or be empty;
            ``None`` gives an empty table.

    Returns:
        One row per (family, name, kind), families in the given order, each
        family's baselines first, then its methods, in list order, with
        columns :data:`COMPARISON_COLUMNS`:

        * ``kind``: ``"pseudo-labels"`` (summary kind ``pseudo``),
          ``"predictions"`` (kind ``frame``), one row per kind present, or
          :data:`MISSING_KIND` (one row, metrics NaN) for a name without rows;
        * ``baseline`` (bool): listed under ``baselines``; ``best_baseline``
          (bool): the family's best baseline = highest J (first listed on a
          tie; baselines without J are not candidates);
        * ``J``, ``AP50``, ``AP``: floats in [0, 1], NaN where not in the summary;
        * ``dJ``, ``dAP50``: the row's J (AP50) minus the best baseline's,
          NaN for baselines, where either value is NaN, and in a family
          with no baseline that has a J.

    Raises:
        ValueError: ``families`` is not of the form above, or a name is
            both baseline and method of a family.
    """
    fams = _check_families(families)
    part = summary[summary["kind"].isin(list(KIND_NAMES))]
    values: dict[tuple[str, str], dict[str, float]] = {}
    for (kind, method, metric), value in part.groupby(["kind", "method", "metric"])["value"].first().items():
        values.setdefault((str(kind), str(method)), {})[str(metric)] = float(value)
    rows = []
    for family, lists in fams.items():
        fam_rows = []
        for role in ("baselines", "methods"):
            for name in lists[role]:
                kinds = [k for k in KIND_NAMES if (k, name) in values] or [None]
                for kind in kinds:
                    got = values.get((kind, name), {})
                    fam_rows.append(
                        {"family": family, "name": name, "kind": KIND_NAMES.get(kind, MISSING_KIND),
                         "baseline": role == "baselines", "best_baseline": False,
                         **{m: got.get(m, math.nan) for m in _COMPARED}}
                    )
        candidates = [r for r in fam_rows if r["baseline"] and _finite(r["J"])]
        best = max(candidates, key=lambda r: r["J"]) if candidates else None  # max keeps the first on a tie
        for r in fam_rows:
            r["best_baseline"] = r is best
            compare = best is not None and not r["baseline"]
            r["dJ"] = r["J"] - best["J"] if compare else math.nan
            r["dAP50"] = r["AP50"] - best["AP50"] if compare else math.nan
        rows += fam_rows
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS).astype({"baseline": bool, "best_baseline": bool})


def _save(fig, path: Path) -> Path:
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=_DPI, format="png", bbox_inches="tight")
    plt.close(fig)
    return path


def baseline_plot(comparison: pd.DataFrame, out_png: str | os.PathLike) -> Path | None:
    """Horizontal bars of J per row of :func:`baseline_comparison`, grouped by family.

    Baselines are grey and hatched; a method's bar is green at or above its
    family's best baseline, red below it, blue where there is no baseline to
    compare with; a dashed vertical line spans each family at its best
    baseline's J. Each bar is labelled with J (and ΔJ for methods); a row
    without J says so.

    Args:
        comparison: :func:`baseline_comparison`'s table.
        out_png: PNG path (written atomically).

    Returns:
        ``out_png``, or None (nothing written) when no row has a J.
    """
    if comparison.empty or not comparison["J"].map(_finite).any():
        return None
    labels, bold, bars, spans = [], [], [], []  # bars: (slot, J, dJ, baseline, best J); spans: (first, last, best)
    for family, rows in comparison.groupby("family", sort=False):
        bold.append(len(labels))
        labels.append(family)
        first = len(labels)
        best = rows[rows["best_baseline"]]
        best = next(best.itertuples()) if len(best) else None
        for r in rows.itertuples():
            tag = "baseline" if r.baseline else r.kind
            labels.append(f"{r.name}  ({tag})")
            bars.append((len(labels) - 1, r.J, r.dJ, r.baseline, best.J if best is not None else 0.0))
        spans.append((first, len(labels) - 1, best))
    top = max(1.0, max(j for _, j, _, _, _ in bars if _finite(j)))
    with plt.rc_context({"font.size": _FONT_PT}):
        fig, ax = plt.subplots(figsize=(_FIG_W, 0.34 * len(labels) + 1.2))
        colours = {"baseline": "#d0d0d0", "above": "#2e9e4f", "below": "#d2463c", "none": "#4a7fc1"}
        used = set()
        for slot, j, dj, baseline, best_j in bars:
            key = "baseline" if baseline else ("none" if not _finite(dj) else "above" if dj >= 0 else "below")
            used.add(key)
            if not _finite(j):
                ax.text(0.005, slot, "no J in the summary", va="center", fontsize=9, color="#666")
                continue
            ax.barh(slot, j, height=0.7, color=colours[key], edgecolor="#777" if baseline else colours[key],
                    hatch="//" if baseline else None)
            text = f"{j:.3f}" + (f"  ({dj:+.3f})" if _finite(dj) else "")
            # right of the bar and of the family's best-baseline line, so the line never crosses the text
            ax.text(max(j, best_j) + 0.008 * top, slot, text, va="center", fontsize=9)
        for first, last, best in spans:
            if best is None:
                ax.text(0.005, first - 1, "no baseline with a J in this family", va="center", fontsize=9,
                        color="#666")
                continue
            ax.vlines(best.J, first - 0.45, last + 0.45, colors="black", linestyles="--", linewidth=1.2)
            ax.text(best.J, first - 1, f"  best baseline: {best.name}, J {best.J:.3f}", va="center", fontsize=9)
        ax.set_yticks(range(len(labels)), labels)
        for k in bold:
            ax.get_yticklabels()[k].set_fontweight("bold")
        ax.set_ylim(len(labels) - 0.5, -0.5)  # first row on top
        ax.set_xlim(0, top * 1.22)  # room for the value labels right of the bars
        ax.set_xlabel("J (mask IoU with ground truth)")
        ax.set_title("Method vs baselines: J per method, dashed line = best baseline of the family")
        ax.grid(axis="x", alpha=0.3)
        names = {"baseline": "baseline (no learning)", "above": "at or above best baseline",
                 "below": "below best baseline", "none": "no baseline to compare"}
        handles = [Patch(facecolor=colours[k], edgecolor="#777", hatch="//" if k == "baseline" else None,
                         label=names[k])
                   for k in names if k in used]
        fig.tight_layout()
        # below the figure (savefig's tight box grows to hold it), so it never covers a bar
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=len(handles), fontsize=9,
                   frameon=False)
        return _save(fig, Path(out_png))


def _panel_plot(wide: pd.DataFrame, metrics: list[str], label_cols: list[str], title: str, out_png: Path) -> Path:
    """Small multiples: one panel per metric, a horizontal bar per row of ``wide`` (coloured by method)."""
    labels = [" / ".join(str(v) for v in row if _label_part(v)) for row in wide[label_cols].itertuples(index=False)]
    methods = list(dict.fromkeys(str(m) for m in wide["method"]))
    palette = plt.get_cmap("tab10")
    colours = [palette(methods.index(str(m)) % 10) for m in wide["method"]]
    n = len(labels)
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    panel_h = 0.3 * n + 0.9
    with plt.rc_context({"font.size": _FONT_PT}):
        fig, axes = plt.subplots(nrows, ncols, figsize=(_FIG_W, nrows * panel_h + 0.6), sharey=True, squeeze=False)
        for k, ax in enumerate(axes.flat):
            if k >= len(metrics):
                ax.set_visible(False)
                continue
            metric = metrics[k]
            vals = [float(v) if _finite(v) else math.nan for v in wide[metric]]
            finite = [v for v in vals if not math.isnan(v)]
            lo = min([0.0, *finite])
            hi = max([1.0, *finite])
            ax.barh(range(n), [0.0 if math.isnan(v) else v for v in vals], height=0.7, color=colours)
            for i, v in enumerate(vals):
                text, x = ("n/a", 0.0) if math.isnan(v) else (f"{v:.2f}", max(v, 0.0))
                ax.text(x + 0.01 * (hi - lo), i, text, va="center", fontsize=9, color="#666" if math.isnan(v) else "k")
            ax.set_xlim(lo, hi + 0.25 * (hi - lo))  # room for the value labels
            ax.axvline(0, color="black", linewidth=0.8)
            ax.set_title(metric, fontsize=11)
            ax.grid(axis="x", alpha=0.3)
            ax.tick_params(labelsize=9)
        axes[0, 0].set_yticks(range(n), labels)
        axes[0, 0].set_ylim(n - 0.5, -0.5)  # first row on top (shared by every panel)
        for ax in axes[:, 0]:
            ax.tick_params(axis="y", labelleft=True, labelsize=_FONT_PT)
        fig.suptitle(title, fontsize=12)
        fig.tight_layout()
        return _save(fig, out_png)


def _label_part(v) -> bool:
    return not (v is None or (isinstance(v, float) and math.isnan(v)) or str(v) == "")


def metric_plots(summary: pd.DataFrame, out_dir: str | os.PathLike) -> list[Path]:
    """Bar charts (matplotlib) of the summary's frame, video and pseudo-label metrics.

    Each plot is small multiples at page width (10 in): one panel per metric,
    one horizontal bar per method (video: per method x tracker, labelled
    ``method / tracker``), bars coloured by method, values written beside the
    bars ("n/a" where NaN), text at least 9 pt; the height grows with the
    number of rows.

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
        label_cols = [c for c in ("method", "tracker") if c in wide]
        written.append(_panel_plot(wide, metrics, label_cols, title, out_dir / name))
    return written


def cost_table(costs_csv: str | os.PathLike) -> pd.DataFrame:
    """``metrics/costs.csv`` sorted by wall seconds, most expensive stage first, the ``total`` row last.

    Args:
        costs_csv: CSV with columns :data:`wsvis.evaluate.costs.COST_COLUMNS`
            (``stage``, ``jobs``, ``wall_s``/``cpu_s`` seconds summed over the
            stage's jobs, ``max_rss_mb`` MB, ``share`` the fraction of the total
            wall seconds) and a row ``stage = total``; a first column named
            ``rule`` is read as ``stage``.

    Returns:
        The table with those columns, re-ordered (index reset).

    Raises:
        ValueError: a column is missing.
    """
    costs = pd.read_csv(costs_csv).rename(columns={"rule": "stage"})
    missing = [c for c in COST_COLUMNS if c not in costs.columns]
    if missing:
        raise ValueError(f"{costs_csv}: columns {missing} missing (expected {COST_COLUMNS})")
    is_total = costs["stage"].astype(str) == "total"
    ordered = costs[~is_total].sort_values("wall_s", ascending=False, kind="stable")
    return pd.concat([ordered, costs[is_total]], ignore_index=True)[COST_COLUMNS]


def _fmt(v, digits: int = 3) -> str:
    return f"{float(v):.{digits}f}" if _finite(v) else ""


def _delta_cell(v, has_baseline: bool) -> str:
    if not has_baseline:
        return '<td class="delta none" title="no baseline with a J in this family">no baseline</td>'
    if not _finite(v):
        return '<td class="delta"></td>'
    cls = "above" if v > 0 else "below" if v < 0 else "equal"
    text = f"{v:+.3f}".replace("-", "\u2212")
    return f'<td class="delta {cls}">{text}</td>'


def _comparison_html(comparison: pd.DataFrame, plot: Path | None, families_given: bool) -> str:
    if not families_given:
        return ('<p class="note" id="baseline-note">No method families given, so methods are not compared with '
                'the baselines here: pass <code>families</code> (<code>wsvis report --families JSON</code>), '
                'e.g. <code>{"tags": {"baselines": ["motion"], "methods": ["flowirn", "maskconsist"]}}</code>.</p>')
    if comparison.empty:
        return '<p class="note" id="baseline-note">The families given list no method or baseline.</p>'
    head = "".join(f"<th>{h}</th>" for h in ("family", "name", "kind", "J", "AP50", "AP",
                                              "\u0394J vs best baseline", "\u0394AP50 vs best baseline"))
    body = []
    for family, rows in comparison.groupby("family", sort=False):
        has_baseline = bool(rows["best_baseline"].any())
        for k, r in enumerate(rows.itertuples()):
            badges = ""
            if r.baseline:
                badges += ' <span class="badge">baseline</span>'
            if r.best_baseline:
                badges += ' <span class="badge best">best</span>'
            cells = (f'<td class="family" rowspan="{len(rows)}">{html.escape(family)}</td>' if k == 0 else "")
            cells += f'<td class="name">{html.escape(r.name)}{badges}</td><td class="kind">{html.escape(r.kind)}</td>'
            cells += "".join(f"<td>{_fmt(getattr(r, m))}</td>" for m in _COMPARED)
            if r.baseline:
                cells += '<td class="delta"></td><td class="delta"></td>'
            else:
                cells += _delta_cell(r.dJ, has_baseline) + _delta_cell(r.dAP50, has_baseline)
            classes = " ".join(["baseline"] * r.baseline + ["first"] * (k == 0))
            body.append(f'<tr class="{classes}" data-family="{html.escape(family)}" data-name="{html.escape(r.name)}" '
                        f'data-kind="{html.escape(r.kind)}">{cells}</tr>')
    known = [f"<b>{html.escape(n)}</b>: {BASELINE_NOTES[n]}" for n in
             dict.fromkeys(comparison.loc[comparison["baseline"], "name"]) if n in BASELINE_NOTES]
    caption = (
        "One row per method and per baseline, grouped by supervision family. Baselines (grey rows) learn nothing"
        + (f" ({'; '.join(known)})" if known else "")
        + ". \u0394 = the row's value minus that of its family's <b>best baseline</b>, the baseline with the "
        "highest J (marked <i>best</i>); <span class='above'>green: above</span>, "
        "<span class='below'>red: below</span>. Kind: <i>pseudo-labels</i> are a pseudo-label variant scored "
        "against ground truth, <i>predictions</i> a trained segmenter's per-frame masks. Empty cell: metric "
        "not in the summary."
    )
    table = (f'<table class="baseline-table" id="baseline-table"><caption>{caption}</caption>'
             f"<tr>{head}</tr>{''.join(body)}</table>")
    img = f'<img class="plot" src="plots/{plot.name}" alt="method vs baselines">' if plot else ""
    return table + img


def _costs_html(costs: pd.DataFrame) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("stage", "jobs", "wall s", "CPU s", "max RSS MB", "share of wall time"))
    body = []
    for r in costs.itertuples():
        total = str(r.stage) == "total"
        share = float(r.share) if _finite(r.share) else math.nan
        bar = "" if total or math.isnan(share) else f'<span class="bar" style="width:{100 * share:.1f}px"></span>'
        cells = (f'<td class="name">{html.escape(str(r.stage))}</td><td>{int(r.jobs) if _finite(r.jobs) else ""}</td>'
                 f"<td>{_fmt(r.wall_s, 1)}</td><td>{_fmt(r.cpu_s, 1)}</td><td>{_fmt(r.max_rss_mb, 0)}</td>"
                 f'<td class="share">{bar}{"" if math.isnan(share) else f"{100 * share:.1f}%"}</td>')
        body.append(f'<tr{" class=total" if total else ""}>{cells}</tr>')
    return (
        '<h2 id="costs">Where time goes (per-stage cost)</h2>'
        '<table class="cost-table" id="cost-table"><caption>Snakemake benchmark files summed per stage (a rule, '
        "or a rule's variant / run), most wall time first; share = the stage's fraction of the total wall seconds "
        f"(summed over jobs, so parallel jobs count fully).</caption><tr>{head}</tr>{''.join(body)}</table>"
    )


def _per_sequence_html(per_sequence: pd.DataFrame) -> str:
    """J per video: one row per (kind, method), one column per video, then their mean (the summary's J)."""
    part = per_sequence[per_sequence["metric"] == "J"]
    if part.empty:
        return ""
    videos = sorted(part["video"].astype(str).unique())
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["kind", "method", *videos, "mean"])
    body = []
    for (kind, method), grp in part.groupby(["kind", "method"], sort=False):
        values = dict(zip(grp["video"].astype(str), grp["value"]))
        cells = "".join(f"<td>{_fmt(values.get(v, math.nan))}</td>" for v in videos)
        body.append(f'<tr><td class="kind">{html.escape(KIND_NAMES.get(kind, kind))}</td>'
                    f'<td class="name">{html.escape(str(method))}</td>{cells}<td>{_fmt(grp["value"].mean())}</td></tr>')
    return (
        '<h2 id="per-sequence">J per video</h2>'
        '<table class="per-sequence-table" id="per-sequence-table"><caption>DAVIS J (region similarity) of each '
        "video, the mean over its frames (metrics/per_sequence.csv); mean = the summary's J. A video far below "
        f"the others is where to look at the pictures.</caption><tr>{head}</tr>{''.join(body)}</table>"
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1200px; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
td, th {{ border: 1px solid #bbb; padding: 2px 8px; text-align: right; }} th {{ background: #eee; }}
td.name, td.kind, td.family {{ text-align: left; }} td.family {{ font-weight: bold; vertical-align: top; }}
caption {{ caption-side: bottom; text-align: left; font-size: 0.9em; color: #444; padding-top: 4px; max-width: 60em; }}
.baseline-table tr.first td {{ border-top: 2px solid #555; }}
.baseline-table tr.baseline td.name, .baseline-table tr.baseline td.kind,
.baseline-table tr.baseline td:not(.family) {{ background: #eee; font-style: italic; }}
.badge {{ font-size: 0.75em; font-style: normal; border: 1px solid #888; border-radius: 3px; padding: 0 3px;
  color: #444; }}
.badge.best {{ background: #333; color: #fff; border-color: #333; }}
.above {{ color: #17803a; font-weight: bold; }} .below {{ color: #c0262d; font-weight: bold; }}
td.delta.none {{ color: #888; font-style: italic; }}
.cost-table tr.total td {{ font-weight: bold; border-top: 2px solid #555; }}
.bar {{ display: inline-block; height: 0.7em; background: #4a7fc1; margin-right: 6px; }}
img {{ max-width: 100%; }} img.plot {{ display: block; margin: 0.5em 0 1.5em; }}
.pictures img {{ max-width: 48%; margin: 4px; vertical-align: top; }}
</style></head><body>
<h1>{title}</h1>
<p>wsvis results for dataset <b>{dataset}</b>. Metrics in [0, 1]; NaN where a metric does not apply.</p>
<h2 id="method-vs-baselines">Method vs baselines</h2>
{comparison}
<h2>Summary</h2>
<div id="summary">(the summary table is built by the script below)</div>
{per_sequence}
<h2>Plots</h2>
<div id="plots">{plots}</div>
<p id="plot-status"></p>
{costs}
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
  const plots = [...document.querySelectorAll("img.plot")];
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
    families: Mapping | None = None,
    costs_csv: str | os.PathLike | None = None,
    per_sequence_csv: str | os.PathLike | None = None,
) -> Path:
    """Write ``out_dir/index.html``: method vs baselines first, then the summary, plots, costs, pictures.

    Args:
        out_dir: report folder (``results/{dataset}/report``); plots go to
            ``plots/`` and pictures are copied to ``pictures/`` beside the page.
        summary_csv: ``metrics/summary.csv``.
        pictures: section title -> PNG paths (flow overviews, CAMs, pseudo-labels, tracks).
        dataset: dataset name for the heading.
        title: page title.
        families: ``{family: {"baselines": [...], "methods": [...]}}``
            (:func:`baseline_comparison`); run names are user-chosen, so the
            family of each is given, never guessed. None: the first section
            says how to pass them.
        costs_csv: ``metrics/costs.csv`` (:func:`cost_table`); None: no cost section.
        per_sequence_csv: ``metrics/per_sequence.csv``
            (:func:`wsvis.evaluate.summary.per_sequence_table`); None: no J-per-video table.

    Returns:
        The path of ``index.html`` (written atomically, after the plots and pictures).

    Raises:
        ValueError: malformed ``families`` or a costs table without the expected columns.
    """
    out_dir = Path(out_dir)
    summary = pd.read_csv(summary_csv)
    comparison = baseline_comparison(summary, families)
    costs = cost_table(costs_csv) if costs_csv is not None else None
    cmp_plot = baseline_plot(comparison, out_dir / "plots" / "method_vs_baselines.png")
    plots = metric_plots(summary, out_dir / "plots")
    plot_html = "\n".join(f'<img class="plot" src="plots/{p.name}" alt="{html.escape(p.stem)}">' for p in plots)
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
        comparison=_comparison_html(comparison, cmp_plot, families is not None),
        plots=plot_html,
        costs=_costs_html(costs) if costs is not None else "",
        per_sequence=_per_sequence_html(pd.read_csv(per_sequence_csv, dtype={"video": str, "method": str})) if per_sequence_csv is not None else "",
        pictures="\n".join(sections),
        data=json.dumps(records).replace("</", "<\\/"),
    )
    with atomic_file(out_dir / "index.html") as tmp:
        tmp.write_text(page)
    return out_dir / "index.html"
