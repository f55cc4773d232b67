"""Every policy against the oracle on the same day: the gap table's first form."""

from __future__ import annotations

import time

from optsched.evaluate import captured, gap
from optsched.oracle import solve
from optsched.policies import get_policy, rollout
from optsched.scenario.compile import Compiled


def compare(c: Compiled, policies: list[str], oracle_backend: str = "highs") -> list[dict]:
    """One row per policy plus the oracle: utility, gap to the oracle, share of the
    oracle's gain over local-fixed captured, jobs, quality, energy cost, seconds."""
    t0 = time.perf_counter()
    sol = solve(c, oracle_backend, relax=False)
    oracle_s = time.perf_counter() - t0
    rows = [_row("oracle (MILP)", sol.evaluation, oracle_s, sol.objective)]
    for name in policies:
        t0 = time.perf_counter()
        _, ev, _ = rollout(get_policy(name), [c])[0]
        rows.append(_row(name, ev, time.perf_counter() - t0, sol.objective))
    base = next((r["utility"] for r in rows if r["policy"] == "local-fixed"), None)
    for r in rows:
        r["captured"] = None if base is None else captured(r["utility"], sol.objective, base)
    return rows


def _row(name: str, ev, seconds: float, oracle: float) -> dict:
    return {"policy": name, "utility": ev.utility, "gap": gap(ev.utility, oracle),
            "served": ev.jobs["served"], "dropped": ev.jobs["dropped"],
            "transferred": ev.jobs["transferred"], "mean_quality": ev.mean_quality,
            "mean_steps": ev.mean_steps, "energy_cost": ev.terms["energy"],
            "demand_cost": ev.terms["demand"], "feasible": ev.feasible, "seconds": seconds}
