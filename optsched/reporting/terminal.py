"""The CLI's tables and summaries on the terminal (rich), from the API's results.

Names (policies, sites, sweep values) are escaped: rich would read an ablation suffix such
as `greedy [no-transfer]` as markup and print `greedy`."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from optsched.console import out


def table(title: str, rows: list[dict]) -> Table:
    t = Table(title=title, title_justify="left")
    for key in rows[0] if rows else []:
        t.add_column(str(key), justify="right" if isinstance(rows[0][key], (int, float))
                     else "left")
    for row in rows:
        t.add_row(*(f"{v:g}" if isinstance(v, float) else escape(str(v)) for v in row.values()))
    return t


def scenario(summary: dict) -> None:
    con = out()
    con.print(f"[bold]{summary['name']}[/bold]: {summary['description']}")
    hz, jobs = summary["horizon"], summary["jobs"]
    con.print(f"{hz['slots']} slots of {hz['slot_minutes']} min; steps {hz['steps']}; "
              f"clocks {hz['clocks']}; {hz['options_per_class']} options per class; "
              f"carbon price ${hz['carbon_price']:g}/t")
    con.print(f"jobs: {jobs['per_day']:,.0f} per horizon, peak {jobs['peak_per_slot']:,.0f} "
              f"per slot, mean {jobs['mean_per_slot']:,.0f}")
    for key in ("models", "sites", "classes"):
        con.print(table(key, summary[key]))


def terms(console: Console, values: dict[str, float]) -> None:
    t = Table(title="utility terms ($; utility = revenue - the rest)", title_justify="left")
    t.add_column("term")
    t.add_column("$", justify="right")
    t.add_column("% of revenue", justify="right")
    rev = values["revenue"] or 1.0
    for k, v in values.items():
        t.add_row(k, f"{v:,.4f}", f"{100 * v / rev:.3f}")
    console.print(t)


def solution(sol, name: str, relax: bool) -> None:
    con = out()
    gap = f", MIP gap {sol.mip_gap:.2e}" if sol.mip_gap is not None else ""
    con.print(f"[bold]oracle[/bold] {sol.backend} {'LP' if relax else 'MILP'} on "
              f"{name}: {sol.status}{gap}; utility [bold]${sol.objective:,.2f}[/bold] "
              f"(evaluator ${sol.evaluation.utility:,.2f}); {sol.n_vars:,} variables, "
              f"{sol.n_cons:,} constraints; build {sol.build_s:.2f} s, "
              f"solve {sol.solve_s:.2f} s")
    terms(con, sol.evaluation.terms)
    con.print("jobs: " + ", ".join(f"{k} {v:,.0f}" for k, v in sol.evaluation.jobs.items()))
    con.print(f"mean quality {sol.evaluation.mean_quality:.4f}, mean steps "
              f"{sol.evaluation.mean_steps:.1f}")


def evaluation(summary: dict, evs: list) -> None:
    con = out()
    n = len(evs)
    con.print(f"[bold]{escape(summary['policy'])}[/bold] on {escape(summary['scenario'])}"
              f"{f' ({n} days, means)' if n > 1 else ''}: utility "
              f"[bold]${summary['utility']:,.2f}[/bold]"
              f"{'' if summary['feasible'] else '  [red]INFEASIBLE[/red]'}")
    terms(con, summary["terms"])
    con.print("jobs: " + ", ".join(f"{k} {v:,.0f}" for k, v in summary["jobs"].items()))
    if n == 1:
        ev = evs[0]
        con.print(f"mean quality {ev.mean_quality:.4f}, mean steps {ev.mean_steps:.1f}")
        metrics = next(iter(ev.sites.values()))
        con.print(table("per site", [{"": m, **{s: round(d[m], 3) for s, d in ev.sites.items()}}
                                     for m in metrics]))
        for v in ev.violations[:10]:
            con.print(f"[red]violation[/red] {escape(str(v))}")
    if summary["oracle_utility"] is None:
        con.print("oracle: not solved (--no-oracle)")
        return
    cap, gap = summary["captured"], summary["gap"]
    gap_text = ("none (the oracle gains nothing here)" if gap is None
                else f"[bold]{100 * gap:.2f}%[/bold]")
    con.print(f"oracle (MILP, perfect foresight): ${summary['oracle_utility']:,.2f}; "
              f"gap to it {gap_text}"
              f"{' (median over days)' if n > 1 and gap is not None else ''}"
              + ("" if cap is None else "; share of the oracle's gain over local-fixed "
                 f"captured: {100 * cap:.1f}%"))


DEMO_COLUMNS = {"policy": "policy", "utility": "utility", "gap": "gap",
                "jobs_served": "served", "jobs_dropped": "dropped",
                "jobs_transferred": "transferred", "mean_quality": "mean_quality",
                "mean_steps": "mean_steps", "term_energy": "energy_cost",
                "term_demand": "demand_cost", "feasible": "feasible", "captured": "captured",
                "seconds": "seconds"}


def demo_rows(frame: pd.DataFrame) -> list[dict]:
    """The demo's rows (its JSON form) from optsched.compare's table."""
    rows = frame[list(DEMO_COLUMNS)].rename(columns=DEMO_COLUMNS)
    rows["policy"] = rows["policy"].replace({"oracle": "oracle (MILP)"})
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
            for r in rows.to_dict("records")]


def demo_intro(name: str, description: str) -> None:
    """The line that introduces a further scenario of the demo (the first gets its full
    summary from `scenario`)."""
    out().print(f"\n[bold]{escape(name)}[/bold]: {escape(description)}")


def demo(name: str, rows: list[dict]) -> None:
    t = Table(title=f"policies on {name} (utility $ per day; gap to the oracle; share of "
                    "the oracle's gain over local-fixed captured)", title_justify="left")
    for col in ("policy", "utility $", "gap", "captured", "served", "dropped",
                "transferred", "mean Q", "mean steps", "energy $", "demand $", "seconds"):
        t.add_column(col, justify="left" if col == "policy" else "right")
    for r in rows:
        cap = "" if r["captured"] is None else f"{100 * r['captured']:.1f}%"
        t.add_row(escape(r["policy"]), f"{r['utility']:,.2f}", f"{100 * r['gap']:.2f}%", cap,
                  f"{r['served']:,.0f}", f"{r['dropped']:,.0f}", f"{r['transferred']:,.0f}",
                  f"{r['mean_quality']:.3f}", f"{r['mean_steps']:.1f}",
                  f"{r['energy_cost']:.2f}", f"{r['demand_cost']:.2f}", f"{r['seconds']:.1f}")
    out().print(t)


def sweep_medians(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.groupby(["value", "policy"], sort=False)[["utility", "gap", "captured"]
                                                          ].median().reset_index()


def sweep(med: pd.DataFrame, param: str, scenario_name: str, n_days: int) -> None:
    t = Table(title=f"{param} sweep on {scenario_name} (median over {n_days} day(s))",
              title_justify="left")
    for col in ("value", "policy", "utility $", "gap", "captured"):
        t.add_column(col, justify="left" if col in ("value", "policy") else "right")
    for r in med.itertuples():
        t.add_row(escape(str(r.value)), escape(r.policy), f"{r.utility:,.2f}",
                  f"{100 * r.gap:.2f}%",
                  "" if r.captured != r.captured else f"{100 * r.captured:.1f}%")
    out().print(t)


def simulation(scenario_name: str, policy: str, days: list, results: list) -> None:
    """Per day: the per-job simulation's classes (latency percentiles, late, dropped) and
    its utility beside the fluid model's."""
    con = out()
    for day, r in zip(days, results, strict=True):
        d = r.to_dict()
        fluid = d["fluid"]
        con.print(f"[bold]{escape(policy)}[/bold] on {escape(scenario_name)}"
                  f"{'' if day is None else f' day {day}'}, simulated job by job: utility "
                  f"${d['utility']:,.2f} (fluid model ${fluid['utility']:,.2f}); late "
                  f"{d['jobs']['late']:,.0f} of {d['jobs']['served']:,.0f} served "
                  f"(fluid model {fluid['late']:,.0f})")
        frame = r.frame().reset_index()
        t = Table(title="per class (latency in seconds)", title_justify="left")
        for col in frame.columns:
            t.add_column(str(col), justify="left" if col in ("class", "kind") else "right")
        for row in frame.itertuples(index=False):
            t.add_row(*(f"{v:.3g}" if isinstance(v, float) else
                        f"{v:,}" if isinstance(v, int) else escape(str(v)) for v in row))
        con.print(t)
