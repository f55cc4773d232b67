"""Per-class latency of every policy's schedules, measured by the per-job simulator.

The fluid model counts late jobs; the delay-violation rate and the latency percentiles of
the paper need jobs. Every (policy, day) schedule of a comparison is replayed by
`optsched.sim.simulate` on that day's own arrivals (exact counts at random times within
each slot, seeded by (seed, day) as `optsched simulate` does), so every policy meets the
same jobs on the same day.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from optsched.sim.simulate import PERCENTILES


def day_seed(seed: int, day: Any) -> np.random.SeedSequence:
    """The jobs' and the simulation's random streams of one day (as `simulate_days`)."""
    return np.random.SeedSequence([int(seed), 0 if day is None else int(day) + 1])


def class_latency(runs: dict, days: dict, seed: int = 0) -> pd.DataFrame:
    """One row per (policy, day, class): arrived, served, late, dropped, the violation
    rate (late or dropped, of the jobs that arrived), the late rate (of those served) and
    the latency percentiles (s) of served jobs. `runs` and `days` as in
    `optsched.api.Comparison`."""
    from optsched.sim.jobs import poisson_jobs
    from optsched.sim.simulate import simulate

    rows = []
    jobs_of = {}
    for (policy, day), run in runs.items():
        c = days[day]
        job_ss, sim_ss = day_seed(seed, day).spawn(2)
        if day not in jobs_of:
            jobs_of[day] = poisson_jobs(c, job_ss, counts="exact")
        res = simulate(c, run.schedule, jobs_of[day], seed=sim_ss)
        for k, name in enumerate(res.classes):
            arrived = int(res.arrived[k])
            rows.append({
                "policy": policy, "day": day, "class": name,
                "kind": "interactive" if res.interactive[k] else "deferrable",
                "arrived": arrived, "served": int(res.served[k]), "late": int(res.late[k]),
                "dropped": int(res.dropped[k]),
                "violation_rate": (res.late[k] + res.dropped[k]) / max(arrived, 1),
                "late_rate": float(res.late_rate[k]),
                **{f"p{p}_s": float(res.latency_pct[k, j])
                   for j, p in enumerate(PERCENTILES)}})
    return pd.DataFrame(rows)


def summarize_latency(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (policy, class): the jobs arrived and violated (late or dropped) over all
    days, their ratio (the violation rate, pooled), the mean over days of the daily p95
    latency, and its standard error."""
    g = frame.groupby(["policy", "class"], sort=False)
    arrived, violated = g["arrived"].sum(), g["late"].sum() + g["dropped"].sum()
    return pd.DataFrame({
        "arrived": arrived,
        "violated": violated,
        "violation_rate": violated / arrived,
        "late_rate": g["late"].sum() / g["served"].sum().clip(lower=1),
        "p95_s": g["p95_s"].mean(),
        "p95_s_se": g["p95_s"].std(ddof=1) / np.sqrt(g["p95_s"].count()),
    })


def pooled_violation(lat: pd.DataFrame) -> pd.Series:
    """Per policy: the violation rate over every class's jobs (late or dropped, of all
    that arrived), from `summarize_latency`'s table: one number to hold policies to (a
    class with many jobs weighs as many)."""
    g = lat.groupby(level="policy", sort=False)
    return g["violated"].sum() / g["arrived"].sum().clip(lower=1)
