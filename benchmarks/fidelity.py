"""Fidelity of the fluid model against the per-job simulation (issue: real AIGC workload).

For the same schedules (each policy's, and the oracle LP's), the fluid model's predicted
late rate, served jobs and energy beside what `optsched.sim` measures job by job
(FCFS queues on the powered-on GPUs, cold starts, transfers, deadlines). Run on jemas-3
held-out days twice: as shipped (no queueing: the fluid model never predicts a late job)
and with the opt-in `[queueing]` model (Erlang-C, docs/model.md). Targets: late rate
within 10% relative or 0.5 points absolute, energy within 1%.

    python benchmarks/fidelity.py --days test:3 --out runs/fidelity
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

POLICIES = ("local-fixed", "greedy", "myopic-lp", "dispatch")


def fidelity_rows(day: int, queueing: str | None, policies: tuple[str, ...], seed: int
                  ) -> list[dict]:
    from optsched.oracle import solve
    from optsched.policies import get_policy, rollout
    from optsched.scenario import compile_scenario, get_scenario
    from optsched.scenario.schema import Queueing
    from optsched.sim import simulate

    sc = get_scenario("jemas-3", day)
    if queueing is not None:
        sc = sc.model_copy(update={"queueing": Queueing(model=queueing)})
    c = compile_scenario(sc)
    schedules = {name: rollout(get_policy(name, seed), [c])[0][0] for name in policies}
    schedules["oracle (LP)"] = solve(c, "highs", relax=True).schedule
    rows = []
    for name, sched in schedules.items():
        r = simulate(c, sched, seed=seed).to_dict()
        fl, jobs = r["fluid"], r["jobs"]
        rows.append({
            "queueing": queueing or "off", "day": day, "policy": name,
            "late_rate_fluid": fl["late"] / max(fl["served"], 1.0),
            "late_rate_sim": jobs["late"] / max(jobs["served"], 1),
            "served_fluid": fl["served"], "served_sim": jobs["served"],
            "it_kwh_fluid": fl["it_kwh"], "it_kwh_sim": r["energy"]["it_kwh"],
            "utility_fluid": fl["utility"], "utility_sim": r["utility"],
        })
    return rows


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    f = frame.copy()
    f["late_pts"] = 100 * (f.late_rate_sim - f.late_rate_fluid)
    f["late_rel"] = (f.late_rate_sim - f.late_rate_fluid) / f.late_rate_sim.where(
        f.late_rate_sim > 0)
    f["late_ok"] = (f.late_pts.abs() <= 0.5) | (f.late_rel.abs() <= 0.10)
    f["energy_rel"] = f.it_kwh_sim / f.it_kwh_fluid - 1
    f["energy_ok"] = f.energy_rel.abs() <= 0.01
    f["served_rel"] = f.served_sim / f.served_fluid - 1
    return f


def main(argv: list[str] | None = None) -> None:
    from optsched.days import parse_days
    from optsched.io import atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", default="test:3")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--policies", nargs="+", default=list(POLICIES))
    ap.add_argument("--out", type=Path, default=Path("runs/fidelity"))
    args = ap.parse_args(argv)
    rows = []
    for day in parse_days(args.days, "jemas-3"):
        for queueing in (None, "erlang-c"):
            rows += fidelity_rows(day, queueing, tuple(args.policies), args.seed)
            print(f"day {day}, queueing {queueing or 'off'}: done", flush=True)
    frame = summarise(pd.DataFrame(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "fidelity.csv", frame.to_csv(index=False))
    table = frame.groupby(["queueing", "policy"], sort=False).agg(
        late_fluid=("late_rate_fluid", "mean"), late_sim=("late_rate_sim", "mean"),
        late_pts=("late_pts", "mean"), late_ok=("late_ok", "all"),
        served_rel=("served_rel", "mean"), energy_rel=("energy_rel", "mean"),
        energy_ok=("energy_ok", "all"))
    text = table.to_markdown(floatfmt=".4f") if _has_tabulate() else table.to_string()
    atomic_write_text(args.out / "fidelity.md", text + "\n")
    print(text)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
