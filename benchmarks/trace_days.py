"""The learned scheduler on real demand it never saw: GenTD26 trace days replayed on the
hard family jemas-3-genai, scored against the oracle beside the baselines.

    python benchmarks/trace_days.py [--days N] [--workers 2] [--out results/trace_days]

The mapping is fixed before any result: the trace's i-th day (2024-11-15 onwards, all 17,
its four ramp-up days included) is replayed on the family's i-th held-out test day
(day 4, 9, 14, ...). Each replayed day is `optsched.build_scenario(date, "jemas-3-genai",
trace=..., trace_day=...)`, the path of `optsched scenario build --base jemas-3-genai
--trace ...`: that family day (its sites, GPUs, prices, PV and carbon of its calendar
date, queueing and provisioning on, the batch class's slack) whose every class's arrivals
become the real day's per-slot requests of its kind (interactive: one image, batch:
several), scaled so that the trace's mean steady day is the family's mean training day
(`genai.replay_base`). So the day's level is the trace day's (a quiet day is quiet, the
four ramp-up days very quiet), not that times the family day's own random level as well.
All three sites replay the same trace day on the reference clock.

Forecasts: a replayed day is no embedded family's day (`history.identify` is None, checked
below), so every policy that plans on forecasts (learned, dispatch, myopic-lp under
provisioning) sees persistence (each later slot repeats the last observed one) and no
quantile headroom; `learned` uses the model trained in the day's mode, jemas-3-genai's.
Every policy and the oracle are scored by the one evaluator through `optsched.compare`.

Prints per policy the mean gap to the oracle with its standard error, the paired
learned-minus-baseline differences of utility ($ per day) and gap with 95% t intervals,
and dropped and late jobs; writes results.csv (one row per policy and day) and
results.json (the summary) under --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.stats import t_interval  # noqa: E402

TRACE = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces" / "genai" / \
    "lora_request_trace.csv"
POLICIES = ("learned", "dispatch", "myopic-lp")
FAMILY = "jemas-3-genai"


def replayed_days(trace: Path, n: int | None) -> list[tuple[str, int, object]]:
    """(trace day, family day, compiled replay) for the first `n` trace days."""
    from optsched.api import build_scenario, compiled
    from optsched.scenario import genai
    from optsched.scenario.history import identify
    from optsched.workload.trace import daily_counts, read_genai_trace

    trace_days = [d.date() for d in daily_counts(read_genai_trace(trace)).index][:n]
    family_days = genai.test_days()
    if len(trace_days) > len(family_days):
        raise SystemExit(f"{len(trace_days)} trace days but {len(family_days)} test days")
    out = []
    for tday, fday in zip(trace_days, family_days, strict=False):
        sc = build_scenario(genai.date_of(fday).isoformat(), FAMILY, trace=trace,
                            trace_day=tday)
        c = compiled(sc)
        assert c.commit and identify(c) is None     # provisioning on; forecasts: persistence
        out.append((tday.isoformat(), fday, c))
    return out


def mean_se(x: np.ndarray) -> tuple[float, float | None]:
    """Mean and its standard error (None for one value: undefined; NaN is no JSON)."""
    from optsched.oracle.highs import finite_or_none as _finite

    m, se, _, _ = t_interval(x)
    return float(m), _finite(se)


def paired(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict:
    """Mean of a - b over the same days with its standard error and t interval (None
    where undefined: one day)."""
    from optsched.oracle.highs import finite_or_none as _finite

    d = np.asarray(a, float) - np.asarray(b, float)
    m, se, lo, hi = t_interval(d, level)
    return {"mean": float(m), "se": _finite(se), "low": _finite(lo), "high": _finite(hi),
            "days": len(d)}


def summarise(table, policies: list[str]) -> dict:
    """Per policy the means over days (gap with s.e.); paired learned-minus-others."""
    per = {}
    for p in ["oracle", *policies]:
        t = table[table.policy == p].sort_values("day")
        gap, gap_se = mean_se(t.gap)
        per[p] = {"days": len(t), "utility": float(t.utility.mean()), "gap": gap,
                  "gap_se": gap_se, "dropped": float(t.jobs_dropped.mean()),
                  "late": float(t.jobs_late.mean()), "arrived": float(t.jobs_arrived.mean()),
                  "violations": float(t.violations.mean())}
    diffs = {}
    if "learned" in policies:
        mine = table[table.policy == "learned"].sort_values("day")
        for p in policies:
            if p == "learned":
                continue
            other = table[table.policy == p].sort_values("day")
            assert list(other.day) == list(mine.day)
            diffs[f"learned - {p}"] = {
                "utility": paired(mine.utility.to_numpy(), other.utility.to_numpy()),
                "gap": paired(mine.gap.to_numpy(), other.gap.to_numpy())}
    return {"policies": per, "paired": diffs}


def show(summary: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=title, title_justify="left")
    for col in ("policy", "days", "utility $", "gap mean (s.e.)", "arrived", "dropped",
                "late"):
        t.add_column(col, justify="left" if col == "policy" else "right")
    for p, r in summary["policies"].items():
        se = "-" if r["gap_se"] is None else f"{100 * r['gap_se']:.2f}"
        t.add_row(p, str(r["days"]), f"{r['utility']:,.2f}",
                  f"{100 * r['gap']:.2f}% ({se})", f"{r['arrived']:,.0f}",
                  f"{r['dropped']:,.0f}", f"{r['late']:,.1f}")
    con.print(t)
    for name, d in summary["paired"].items():
        u, g = d["utility"], d["gap"]
        if u["low"] is None:
            con.print(f"{name}: utility {u['mean']:+,.2f} $/day, gap {100 * g['mean']:+.2f} "
                      f"pts ({u['days']} day: no interval)")
            continue
        con.print(f"{name}: utility {u['mean']:+,.2f} $/day [{u['low']:+,.2f}, "
                  f"{u['high']:+,.2f}], gap {100 * g['mean']:+.2f} pts "
                  f"[{100 * g['low']:+.2f}, {100 * g['high']:+.2f}] (95% t, {u['days']} days)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=TRACE, help="GenTD26 request trace CSV")
    ap.add_argument("--days", type=int, default=None, help="the first N trace days (all)")
    ap.add_argument("--policy", action="append", default=None,
                    help=f"repeatable (default {', '.join(POLICIES)})")
    ap.add_argument("--workers", type=int, default=1, help="local CPUs (optsched.parallel)")
    ap.add_argument("--out", type=Path, default=None, help="folder for results.csv/.json")
    args = ap.parse_args(argv)
    from optsched.api import compare
    from optsched.io import atomic_write_text
    from optsched.options import check_out, check_policies
    from optsched.parallel import check_workers
    from optsched.workload.trace import read_genai_trace, steady_days

    policies = check_policies(args.policy or list(POLICIES))
    check_out(args.out)
    check_workers(args.workers)                           # bad input fails before any work
    if not args.trace.is_file():
        raise SystemExit(f"trace not found: {args.trace} (see ../shared/data/SOURCES.md)")
    days = replayed_days(args.trace, args.days)
    labels = [d for d, _, _ in days]
    table = compare([c for _, _, c in days], policies, labels, workers=args.workers)
    family_day = {d: f for d, f, _ in days}
    table.insert(2, "family_day", table.day.map(family_day))
    steady = {d.date().isoformat() for d in steady_days(read_genai_trace(args.trace)).index}
    table.insert(3, "steady", table.day.isin(steady))
    summary = {"trace": args.trace.name, "mapping": {d: family_day[d] for d in labels},
               "all": summarise(table, policies)}
    show(summary["all"], f"{len(labels)} GenTD26 days replayed on {FAMILY} test days "
         f"{[family_day[d] for d in labels]}")
    if table.steady.any() and not table.steady.all():
        summary["steady"] = summarise(table[table.steady], policies)
        show(summary["steady"], "the same, steady days only (after the trace's ramp-up)")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "results.csv", table.to_csv(index=False))
        atomic_write_text(args.out / "results.json", json.dumps(summary, indent=1) + "\n")
        print(f"wrote {args.out / 'results.csv'} and {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
