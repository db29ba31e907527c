"""``report.html`` of a sweep: one self-contained page (figures embedded as PNG data, no scripts,
no server) with the summary and rates tables, the failed and missing runs, the figures not drawn
for this sweep's shape, the sweep's command and provenance. The page depends on its inputs only
(no write time), so an unchanged sweep gives the same bytes.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from ..runs import store

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.8em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
th { background: #f2f2f2; } td.l, th.l { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; } code { background: #f6f6f6; padding: 0 3px; }
.bad { color: #b00020; } .ok { color: #1b5e20; } .note { color: #555; }
.wide { overflow-x: auto; max-width: 100%; }
"""


def _table(df: pd.DataFrame, index: bool = False) -> str:
    if df is None or df.empty:
        return "<p>(none)</p>"
    # a scrolling box: a sweep with many keys must not widen the page past the window
    return '<div class="wide">' + df.to_html(
        index=index, border=0, na_rep="", float_format=lambda v: f"{v:.6g}", escape=True) + \
        "</div>"


def split_constant(df: pd.DataFrame, keep=()) -> tuple[pd.DataFrame, dict]:
    """(the table without its configuration columns that hold one value in every row, those
    values): a key nobody swept is said once, not repeated on every row. Columns in ``keep`` and
    result columns (no dot in the name) always stay."""
    if df is None or df.empty or len(df) < 2:
        return df, {}
    fixed = {c: df[c].iloc[0] for c in df.columns
             if "." in str(c) and c not in keep and df[c].astype(str).nunique(dropna=False) == 1}
    return df.drop(columns=list(fixed)), fixed


def _fixed(values: dict) -> str:
    if not values:
        return ""
    items = ", ".join(f"<code>{html.escape(str(k))} = {html.escape(_show(v))}</code>"
                      for k, v in values.items())
    return f'<p class="note">The same in every row: {items}.</p>'


def _show(v) -> str:
    return "null" if v is None or (isinstance(v, float) and v != v) else f"{v}"


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    name = html.escape(Path(path).stem.replace("_", " "))
    return (f'<figure><img alt="{name}" src="data:image/png;base64,{data}">'
            f"<figcaption>{name} ({html.escape(Path(path).name)})</figcaption></figure>")


def _provenance(runs_dir: Path, runs: pd.DataFrame) -> dict:
    """The provenance of the sweep's completed runs: the first one's, with every distinct git
    commit and device listed."""
    records = []
    for name in runs.get("run", []):
        rec = store.read_run(runs_dir / name)
        if rec and rec.get("status") == "completed" and "provenance" in rec:
            records.append(rec["provenance"])
    if not records:
        return {}
    first = dict(records[0])
    for key in ("git_commit", "device", "host"):
        values = sorted({str(r.get(key)) for r in records})
        first[key] = ", ".join(values)
    first["git_dirty"] = any(r.get("git_dirty") for r in records)
    first.pop("command", None)
    first.pop("utc", None)
    return first


def write(sweep_dir: Path, agg, figures=()) -> Path:
    """Write ``<sweep_dir>/report.html`` from an ``tables.Aggregate`` and the figure paths."""
    sweep_dir = Path(sweep_dir)
    try:
        plan = json.loads((sweep_dir / store.PLAN_FILE).read_text())
    except (OSError, ValueError):
        plan = {}
    runs = agg.runs
    n_ok = int((runs["status"] == "completed").sum()) if not runs.empty else 0
    pngs = sorted({Path(p) for p in figures if str(p).endswith(".png")})
    notes = "".join(f'<li class="note">{html.escape(n)}</li>'
                    for n in getattr(figures, "notes", ()))
    rates, fixed = split_constant(agg.rates, keep=("data.seq_len",))
    summary = agg.summary
    if isinstance(summary.index, pd.MultiIndex):
        level = summary.index.get_level_values
        same = [n for n in summary.index.names if level(n).astype(str).nunique() == 1]
        if same and len(same) < summary.index.nlevels:
            fixed = {**{n: level(n)[0] for n in same}, **fixed}
            summary = summary.droplevel(same)
    problems = "".join(f'<li class="bad">{html.escape(p)}</li>' for p in agg.problems)
    prov = _provenance(sweep_dir, runs)
    def cell(v):
        return html.escape(json.dumps(v) if isinstance(v, dict) else str(v))
    prov_rows = "".join(f'<tr><th class="l">{html.escape(str(k))}</th>'
                        f'<td class="l">{cell(v)}</td></tr>' for k, v in prov.items())
    swept = ", ".join(f"<code>{html.escape(k)}</code>" for k in agg.swept) or "(nothing)"
    command = plan.get("command") or "(not recorded)"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>rnnlab sweep {html.escape(sweep_dir.name)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>rnnlab sweep <code>{html.escape(sweep_dir.name)}</code></h1>
<p>{n_ok} completed of {len(runs)} run directories ({plan.get('total') or '?'} planned);
swept: {swept}. Rates in nats per step (negative: vanishing, positive: exploding).</p>
<p>Command: <code>{html.escape(command)}</code></p>
<h2>Failed, missing and unreadable runs</h2>
{f"<ul>{problems}</ul>" if problems else '<p class="ok">none</p>'}
<h2>Figures</h2>
{"".join(_img(p) for p in pngs) or "<p>(no figures)</p>"}
{f"<ul>{notes}</ul>" if notes else ""}
<h2>Summary: decay rate (rows: configuration, columns: T = data.seq_len)</h2>
{_fixed(fixed)}
{_table(summary, index=True)}
<h2>Rates: mean over seeds with a 95% Student-t interval</h2>
{_table(rates)}
<h2>Provenance</h2>
<table>{prov_rows}</table>
</body></html>
"""
    out = sweep_dir / "report.html"
    store.atomic_write(out, lambda p: p.write_text(page, encoding="utf-8"))
    return out
