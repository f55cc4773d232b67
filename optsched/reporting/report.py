"""The optimality-gap report: every policy against the oracle on the same days.

For each day the oracle is solved (or read from a cache keyed on the compiled scenario's
contents, so any change to the scenario invalidates it) and every policy is rolled through
the environment and scored by the evaluator. Written: `results.csv`/`.parquet` (one row
per policy and day, every utility term), `report.md` and a self-contained `report.html`
(figures embedded as data URIs, no network). The table itself is optsched.compare's; the
per-class latency (violation rate, p95) comes from replaying every schedule job by job
(`optsched.reporting.latency`), written as `latency.csv`.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import pandas as pd

from optsched.evaluator import TERMS
from optsched.oracle.cache import DEFAULT_CACHE
from optsched.scenario.compile import Compiled
from optsched.schedule import Schedule


def build_report(scenario: str, days: list, policies: list[str], out: Path,
                 cache: Path | None = DEFAULT_CACHE, progress=None,
                 metrics: list[Path] | tuple = (), ablations: tuple[str, ...] = (),
                 ablated: str | None = None, simulate: bool = True) -> pd.DataFrame:
    """The table of optsched.compare (local-fixed always included, as the baseline of
    `captured`) written as results.csv/.parquet, report.md and report.html.
    `metrics`: training metrics.csv files whose learning curves join the report.
    `ablations`: the paper's levers removed, one at a time, from policy `ablated` (rows
    `name [lever]`, scored on the ablated scenario against the full oracle).
    `simulate`: replay every schedule job by job for the per-class latency table."""
    from optsched.api import compare_runs
    from optsched.io import atomic_write_text
    from optsched.reporting.output import write_csv, write_parquet
    from optsched.reporting.plots import read_metrics

    for path in metrics:
        read_metrics(path)                 # a bad file is refused before any work
    comp = compare_runs(scenario, ["local-fixed", *policies], days, cache=cache,
                        ablated=ablated, levers=ablations if ablated else (),
                        progress=progress)
    frame = comp.table
    first = frame["day"].iloc[0]
    day0 = comp.days[first]
    schedules = {name: run.schedule for (name, d), run in comp.runs.items()
                 if d == first and name != "oracle"}
    figures = _figures(frame, day0, comp.runs["oracle", first].schedule, schedules,
                       list(metrics))
    summary = summarize(frame)
    lat = None
    if simulate:
        from optsched.reporting.latency import class_latency, summarize_latency

        if progress:
            progress("per-job simulation of every schedule")
        per_day = class_latency(comp.runs, comp.days)
        lat = summarize_latency(per_day)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(frame, out / "results.csv")
    write_parquet(frame, out / "results.parquet")
    if lat is not None:
        write_csv(per_day, out / "latency.csv")
    else:                      # an earlier report's table would pass for this one's
        (out / "latency.csv").unlink(missing_ok=True)
    atomic_write_text(out / "report.md", _markdown(scenario, days, summary, lat))
    atomic_write_text(out / "report.html", _html(scenario, days, summary, figures, lat))
    return frame


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Per policy: medians over days (gap also with its interquartile range)."""
    g = frame.groupby("policy", sort=False)
    out = pd.DataFrame({
        "utility": g["utility"].median(),
        "gap": g["gap"].median(),
        "gap_mean": g["gap"].mean(),
        "gap_se": g["gap"].std(ddof=1) / g["gap"].count() ** 0.5,
        "captured_mean": g["captured"].mean(),
        "captured_se": g["captured"].std(ddof=1) / g["captured"].count() ** 0.5,
        "gap_q25": g["gap"].quantile(0.25), "gap_q75": g["gap"].quantile(0.75),
        "captured": g["captured"].median(),
        **{k: g[f"term_{k}"].median() for k in TERMS},
        "served": g["jobs_served"].median(), "dropped": g["jobs_dropped"].median(),
        "late": g["jobs_late"].median(), "violations": g["violations"].sum(),
        "mean_quality": g["mean_quality"].median(), "mean_steps": g["mean_steps"].median(),
        "grid_kwh": g["grid_kwh"].median(), "emissions_kg": g["emissions_kg"].median(),
        "decision_s_per_slot": g["decision_s_per_slot"].median(),
    })
    return out.sort_values("gap")


def _figures(frame: pd.DataFrame, c: Compiled, oracle_schedule: Schedule,
             schedules: dict[str, Schedule], metrics: list[Path]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from optsched.evaluator import evaluate
    from optsched.reporting import plots

    figs = {}
    fig, ax = plt.subplots(figsize=(8, 3.5))
    names = [p for p in dict.fromkeys(frame["policy"]) if p != "oracle"]
    ax.boxplot([100 * frame.loc[frame.policy == p, "gap"] for p in names])
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20)
    ax.set_xlabel("policy")
    ax.set_ylabel("gap to the oracle (%)")
    fig.tight_layout()
    figs["gap distribution per policy"] = _png(fig)
    figs["oracle dispatch, first day"] = _png(plots.dispatch_figure(
        c, evaluate(c, oracle_schedule)))
    figs["oracle steps, clock and routing, first day"] = _png(plots.decisions_figure(
        c, oracle_schedule))
    if "learned" in schedules:
        sched = schedules["learned"]
        figs["learned policy dispatch, first day"] = _png(plots.dispatch_figure(
            c, evaluate(c, sched)))
        figs["learned policy steps, clock and routing, first day"] = _png(
            plots.decisions_figure(c, sched))
    figs["state of charge per site, first day"] = _png(plots.soc_figure(
        c, {"oracle": oracle_schedule, **schedules}))
    if metrics:
        figs["learning curves (training episodes)"] = _png(plots.learning_figure(metrics))
    plt.close("all")
    return figs


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode()


COLUMNS = ["utility", "gap", "captured", "served", "dropped", "late", "mean_quality",
           "mean_steps", "energy", "demand", "grid_kwh", "emissions_kg",
           "decision_s_per_slot"]
# The HTML table's headers: words that can wrap, with units (report.md keeps the keys).
HEADERS = {"utility": "utility $", "gap": "gap", "captured": "captured",
           "served": "served jobs", "dropped": "dropped jobs", "late": "late jobs",
           "mean_quality": "mean quality", "mean_steps": "mean steps",
           "energy": "energy cost $", "demand": "demand cost $", "grid_kwh": "grid kWh",
           "emissions_kg": "emissions kg CO2", "decision_s_per_slot": "decision s per slot"}
# TERMS lists revenue first, then the costs (optsched.evaluator.utility_of).
TERMS_NOTE = (f"utility = revenue - ({' + '.join(TERMS[1:])}), $ per day; "
              "medians over days (over several days the medians of the terms need not add "
              "up to the median utility)")


def _fmt(col: str, v: float) -> str:
    if pd.isna(v):
        return "-"
    if abs(v) < 1e-6:
        return "0"
    if col in ("gap", "captured"):
        return f"{100 * v:.2f}%"
    return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"


def _terms_rows(s: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """The utility-terms table: per policy every term of TERMS then utility, $ per day."""
    return [(p, [f"{r[t]:,.2f}" for t in (*TERMS, "utility")]) for p, r in s.iterrows()]


MEAN_NOTE = ("Means over days with their standard error (std / sqrt(days)); the spread "
             "between two policies is many standard errors when they really differ.")
LATENCY_NOTE = ("Per class, from the per-job simulation of each schedule on the day's own "
                "arrivals: violation rate = (late + dropped) / arrived over all days' jobs "
                "(all jobs: over every class's); "
                "p95 latency of served jobs, mean over days (s.e.)")


def _mean_rows(s: pd.DataFrame) -> list[tuple[str, list[str]]]:
    def pct(m: float, se: float) -> str:
        if pd.isna(m):
            return "-"
        return f"{100 * m:.2f}%" + ("" if pd.isna(se) else f" ({100 * se:.2f})")

    return [(p, [pct(r.gap_mean, r.gap_se), pct(r.captured_mean, r.captured_se)])
            for p, r in s.iterrows()]


def _latency_rows(lat: pd.DataFrame) -> tuple[list[str], list[tuple[str, list[str]]]]:
    from optsched.reporting.latency import pooled_violation

    classes = list(dict.fromkeys(lat.index.get_level_values("class")))
    heads = ["all jobs violation",
             *[h for k in classes for h in (f"{k} violation", f"{k} p95 s")]]
    pooled = pooled_violation(lat)
    rows = []
    for p in dict.fromkeys(lat.index.get_level_values("policy")):
        cells = [f"{100 * pooled[p]:.2f}%"]
        for k in classes:
            r = lat.loc[(p, k)]
            p95 = "-" if pd.isna(r.p95_s) else (
                f"{r.p95_s:,.3g}" + ("" if pd.isna(r.p95_s_se) else f" ({r.p95_s_se:,.2g})"))
            cells += [f"{100 * r.violation_rate:.2f}%", p95]
        rows.append((p, cells))
    return heads, rows


def _markdown(scenario: str, days: list, s: pd.DataFrame,
              lat: pd.DataFrame | None = None) -> str:
    lines = [f"# Optimality gaps on {scenario}", "",
             f"Days: {', '.join(map(str, days))}. Medians over days; gap IQR in brackets. "
             "`captured` is the share of the oracle's gain over local-fixed.", "",
             "| policy | " + " | ".join(COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for p, r in s.iterrows():
        cells = [_fmt(c, r[c]) for c in COLUMNS]
        cells[1] += f" [{100 * r.gap_q25:.2f}, {100 * r.gap_q75:.2f}]"
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines += ["", f"Utility terms: {TERMS_NOTE}.", "",
              "| policy | " + " | ".join((*TERMS, "utility")) + " |",
              "|---|" + "---|" * (len(TERMS) + 1)]
    lines += [f"| {p} | " + " | ".join(cells) + " |" for p, cells in _terms_rows(s)]
    lines += ["", f"{MEAN_NOTE}", "", "| policy | gap mean (s.e.) | captured mean (s.e.) |",
              "|---|---|---|"]
    lines += [f"| {p} | " + " | ".join(cells) + " |" for p, cells in _mean_rows(s)]
    if lat is not None:
        heads, rows = _latency_rows(lat)
        lines += ["", f"{LATENCY_NOTE}.", "", "| policy | " + " | ".join(heads) + " |",
                  "|---|" + "---|" * len(heads)]
        lines += [f"| {p} | " + " | ".join(cells) + " |" for p, cells in rows]
    return "\n".join(lines) + "\n"


CSS = ("body{font-family:sans-serif;margin:2em;max-width:1400px}"
       ".wide{max-width:100%;overflow-x:auto}"          # a last resort: the page never scrolls
       "table{border-collapse:collapse;font-size:0.85em;margin-bottom:0.5em}"
       "td,th{border:1px solid #bbb;padding:3px 5px;text-align:right}"
       "th{vertical-align:bottom;max-width:7em;overflow-wrap:break-word}"
       "td{white-space:nowrap}td:first-child,th:first-child{text-align:left}"
       "caption{caption-side:top;text-align:left;padding:0.3em 0;font-size:0.95em}"
       "img{max-width:100%}")


def _table(caption: str, headers: list[str], rows: list[tuple[str, list[str]]],
           klass: str) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in ["policy", *headers])
    body = "".join(f"<tr><td>{esc(p)}</td>" + "".join(f"<td>{c}</td>" for c in cells)
                   + "</tr>" for p, cells in rows)
    return (f"<div class=\"wide\"><table class=\"{klass}\"><caption>{esc(caption)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _html(scenario: str, days: list, s: pd.DataFrame, figures: dict[str, str],
          lat: pd.DataFrame | None = None) -> str:
    gaps = _table("Gap to the oracle and what each policy did (medians over days)",
                  [HEADERS[c] for c in COLUMNS],
                  [(p, [_fmt(c, r[c]) for c in COLUMNS]) for p, r in s.iterrows()], "gaps")
    terms = _table(f"Utility terms: {TERMS_NOTE}", [*TERMS, "utility"], _terms_rows(s),
                   "terms")
    terms += _table(MEAN_NOTE, ["gap mean (s.e.)", "captured mean (s.e.)"], _mean_rows(s),
                    "means")
    if lat is not None:
        terms += _table(LATENCY_NOTE, *_latency_rows(lat), "latency")
    imgs = "".join(f"<h2>{t}</h2><img alt=\"{t}\" src=\"data:image/png;base64,{b}\">"
                   for t, b in figures.items())
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>optsched report"
            f"</title><style>{CSS}</style></head><body><h1>Optimality gaps on {scenario}</h1>"
            f"<p>Days: {', '.join(map(str, days))}. Medians over days. <i>captured</i> is the "
            f"share of the oracle's gain over local-fixed.</p>{gaps}{terms}{imgs}"
            f"</body></html>\n")
