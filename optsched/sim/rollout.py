"""A policy's schedule on scenario days, replayed job by job: what the CLI's `optsched
simulate SCENARIO --policy P --days D` calls."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from optsched.sim.jobs import ColdStart, poisson_jobs
from optsched.sim.simulate import SimResult, simulate


def simulate_days(scenario: str | Path, policy: str, days: list[int | None], seed: int = 0,
                  cold_start: ColdStart | None = None, burstiness: float = 0.0,
                  counts: Literal["poisson", "exact"] = "exact") -> list[SimResult]:
    """Roll `policy` (a name for `optsched.policies.get_policy`) over the days in one batch
    and simulate each day's schedule on jobs from `poisson_jobs(c, ..., burstiness,
    counts)`. Each day's randomness comes from (seed, day), so a day's result does not
    depend on which other days are simulated with it."""
    from optsched.policies import get_policy, rollout
    from optsched.scenario import compile_scenario, family, get_scenario, is_embedded

    if is_embedded(scenario):     # None is the first held-out day, seeded as that day
        days = [family(scenario).test_days()[0] if d is None else d for d in days]
    compiled = [compile_scenario(get_scenario(scenario, day)) for day in days]
    rolled = rollout(get_policy(policy, seed), compiled)
    out = []
    for day, c, (sched, _, _) in zip(days, compiled, rolled, strict=True):
        job_ss, sim_ss = np.random.SeedSequence([seed, 0 if day is None else day + 1]).spawn(2)
        jobs = poisson_jobs(c, job_ss, burstiness=burstiness, counts=counts)
        out.append(simulate(c, sched, jobs, seed=sim_ss, cold_start=cold_start))
    return out


def simulate_policy(scenario: str | Path, policy: str, day: int | None = None, seed: int = 0,
                    **kwargs) -> SimResult:
    """One day of `simulate_days` (day None: the family's first held-out day)."""
    return simulate_days(scenario, policy, [day], seed, **kwargs)[0]
