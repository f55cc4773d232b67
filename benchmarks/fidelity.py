"""Fidelity of the fluid model against the per-job simulation (issue: real AIGC workload).

For the same schedules (each policy's, and the oracle LP's), the fluid model's predicted
late rate, served jobs and energy beside what `optsched.sim` measures job by job
(docs/model.md, "Per-job simulation"). Each held-out day is scored twice: as shipped (no
queueing: the fluid model never predicts a late job) and exported with a `[queueing]`
section appended at its defaults (`optsched scenario export ... --out d.toml`, then
`[queueing]`; docs/model.md, "Queueing-aware capacity"). Rows: all jobs, all interactive
jobs and each interactive class. Targets: late rate within 10% relative or 0.5 points
absolute, energy within 1%.

    python benchmarks/fidelity.py --days test:3 --out runs/fidelity
    python benchmarks/fidelity.py --scenario jemas-3-genai --days test:3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

POLICIES = ("local-fixed", "greedy", "myopic-lp", "dispatch")


def with_queueing(sc, on: bool = True):
    """The day exported to TOML with `[queueing]` appended, read back (as a user would);
    a day that has the section already (jemas-3-genai) keeps it, or loses it (`on`
    false)."""
    from optsched.scenario.load import dumps_scenario, loads_scenario

    if sc.queueing is not None:
        return sc if on else sc.model_copy(update={"queueing": None})
    return loads_scenario(dumps_scenario(sc) + "\n[queueing]\n") if on else sc


def fidelity_rows(scenario: str, day: int, queueing: bool, policies: tuple[str, ...],
                  seed: int) -> list[dict]:
    from optsched.evaluator import evaluate
    from optsched.oracle import solve
    from optsched.policies import get_policy, rollout
    from optsched.scenario import compile_scenario, get_scenario
    from optsched.sim import simulate

    sc = get_scenario(scenario, day)
    c = compile_scenario(with_queueing(sc, queueing))
    schedules = {name: rollout(get_policy(name, seed), [c])[0][0] for name in policies}
    schedules["oracle (LP)"] = solve(c, "highs", relax=True).schedule
    rows = []
    for name, sched in schedules.items():
        r = simulate(c, sched, seed=seed)
        ev = evaluate(c, sched, keep=0)
        served_fl = sched.x.sum(axis=(1, 2))                             # [K]
        if ev.class_late is not None:
            late_fl = np.array([ev.class_late[k]["late"] for k in c.classes])
        else:
            late_fl = np.einsum("ko,kot->k", c.late, sched.x)
        key = {"queueing": "erlang-c" if queueing else "off", "day": day, "policy": name}
        groups = {"all": np.ones(c.K, bool), "interactive": c.interactive,
                  **{c.classes[k]: np.arange(c.K) == k for k in np.flatnonzero(c.interactive)}}
        for group, m in groups.items():
            rows.append(key | {
                "class": group,
                "late_rate_fluid": late_fl[m].sum() / max(served_fl[m].sum(), 1.0),
                "late_rate_sim": r.late[m].sum() / max(r.served[m].sum(), 1),
                "served_fluid": served_fl[m].sum(), "served_sim": int(r.served[m].sum()),
                **({"it_kwh_fluid": r.fluid["it_kwh"], "it_kwh_sim": r.energy["it_kwh"],
                    "utility_fluid": r.fluid["utility"], "utility_sim": r.utility}
                   if group == "all" else {}),
            })
    return rows


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    f = frame.copy()
    f["late_pts"] = 100 * (f.late_rate_sim - f.late_rate_fluid)
    f["late_rel"] = (f.late_rate_sim - f.late_rate_fluid) / f.late_rate_sim.where(
        f.late_rate_sim > 0)
    f["late_ok"] = (f.late_pts.abs() <= 0.5) | (f.late_rel.abs() <= 0.10)
    f["energy_rel"] = f.it_kwh_sim / f.it_kwh_fluid - 1
    f["energy_ok"] = (f.energy_rel.abs() <= 0.01).where(f.energy_rel.notna())
    f["served_rel"] = f.served_sim / f.served_fluid - 1
    return f


def table(frame: pd.DataFrame) -> pd.DataFrame:
    """Means over days per (queueing, policy, class); `late_ok` and `energy_ok` must hold
    on every day (energy only on the `all` rows)."""
    return frame.groupby(["queueing", "policy", "class"], sort=False).agg(
        late_fluid=("late_rate_fluid", "mean"), late_sim=("late_rate_sim", "mean"),
        late_pts=("late_pts", "mean"), late_ok=("late_ok", "all"),
        served_rel=("served_rel", "mean"), energy_rel=("energy_rel", "mean"),
        energy_ok=("energy_ok", lambda s: bool(s.dropna().all()) if s.notna().any() else None))


def main(argv: list[str] | None = None) -> None:
    from optsched.days import parse_days
    from optsched.io import atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="jemas-3", help="embedded family (jemas-3, "
                    "jemas-3-genai)")
    ap.add_argument("--days", default="test:3")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--policies", nargs="+", default=list(POLICIES))
    ap.add_argument("--queueing", choices=("both", "on", "off"), default="both")
    ap.add_argument("--out", type=Path, default=Path("runs/fidelity"))
    args = ap.parse_args(argv)
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.queueing]
    rows = []
    for day in parse_days(args.days, args.scenario):
        for queueing in modes:
            rows += fidelity_rows(args.scenario, day, queueing, tuple(args.policies),
                                  args.seed)
            print(f"day {day}, queueing {'on' if queueing else 'off'}: done", flush=True)
    frame = summarise(pd.DataFrame(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "fidelity.csv", frame.to_csv(index=False))
    out = table(frame)
    text = out.to_markdown(floatfmt=".4f") if _has_tabulate() else out.to_string()
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
