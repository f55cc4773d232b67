"""Where the value of job transfers comes from on multisite-N, and what the decomposed
oracle's master costs at scale: the evidence behind docs/model.md's 100-site paragraph.

    python benchmarks/transfers.py value --sites 30         # home / within-region / all
    python benchmarks/transfers.py master --sites 100 --solver dual --time-limit 400

`value`: the LP optimum (decomposed oracle, certified gap `--tol`) of multisite-N day 4
three ways: every class at its home site only (the decomposition's first master), jobs
moved only between sites of one region, and every transfer allowed (the scenario as it
is); then the served jobs of the full solution by (origin region, class kind, serving
region). `master`: one round of the decomposition (local solves, the master, the sites at
the master's and the repaired prices), the round's bids admitted as whole (class, option)
pairs, then the master re-solved once with HiGHS's dual or primal simplex or its
interior-point method (no crossover) under `--time-limit`: its time, iterations, status and
objective (a time-limited run's objective is HiGHS's, not a feasible schedule's).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DAY = 4                        # the families' first held-out day


def regions(n: int) -> np.ndarray:
    from optsched.scenario.multisite import sites

    return np.array([s.region for s in sites(n)])


def value(n: int, tol: float) -> dict:
    """The LP optimum with no, within-region and all transfers, and the full solution's
    served jobs by (origin region, kind, serving region)."""
    from optsched.oracle.decompose import solve_decomposed
    from optsched.scenario import compile_scenario, get_scenario

    c = compile_scenario(get_scenario(f"multisite-{n}", DAY))
    reg = regions(n)
    home_only = c.eligible & (c.opt_site[None, :] == c.home[:, None])
    same = reg[c.home][:, None] == reg[c.opt_site][None, :]
    out: dict = {"sites": n, "cases": {}}
    for name, eligible in (("home only", home_only), ("within region", c.eligible & same),
                           ("all transfers", c.eligible)):
        t0 = time.perf_counter()
        d = solve_decomposed(dataclasses.replace(c, eligible=eligible), tol=tol)
        out["cases"][name] = {"utility": d.utility, "bound": d.bound, "gap": d.gap,
                              "rounds": d.iterations, "seconds": time.perf_counter() - t0}
    served = d.schedule.x.sum(axis=2)                               # [K, O], all transfers
    flows: dict[str, float] = {}
    for k, o in zip(*np.nonzero(served > 1e-6), strict=True):
        if c.opt_site[o] == c.home[k]:
            continue
        kind = "interactive" if c.interactive[k] else "deferrable"
        key = f"{reg[c.home[k]]} {kind} -> {reg[c.opt_site[o]]}"
        flows[key] = flows.get(key, 0.0) + float(served[k, o])
    out["moved_jobs"] = dict(sorted(flows.items(), key=lambda kv: -kv[1]))
    out["jobs"] = float(c.arrivals.sum())
    return out


def master(n: int, solver: str, time_limit: float) -> dict:
    """One decomposition round, then one timed re-solve of the master with `solver`."""
    from optsched.oracle import decompose as dec
    from optsched.scenario import compile_scenario, get_scenario

    t0 = time.perf_counter()
    c = compile_scenario(get_scenario(f"multisite-{n}", DAY))
    problems = [dec.build_site(c, i) for i in range(c.I)]
    m = dec._Master(c, c.eligible & (c.opt_site[None, :] == c.home[:, None]))
    m.warm([dec.solve_local(dec.local_view(c, i)) for i in range(c.I)])
    primal, lam = m.solve()
    lam = np.maximum(lam, -c.drop_penalty[:, None])
    bound, bids = np.inf, []
    for probe in (lam, m.repaired(problems, lam)):
        res = [dec.solve_site(p, probe) for p in problems]
        bound = min(bound, dec.lagrangian_bound(c, probe, [r.objective for r in res]))
        for p, r in zip(problems, res, strict=True):
            bids.append((r.w_class, p.opts[r.w_index // c.T], r.w_index % c.T))
    added = m.admit(*(np.concatenate([b[j] for b in bids]) for j in range(3)))
    round_s = time.perf_counter() - t0
    options = {"dual": {}, "primal": {"simplex_strategy": 4},
               "ipm": {"solver": "ipm", "run_crossover": "off"}}[solver]
    for key, val in options.items():
        m.h.setOptionValue(key, val)
    m.h.setOptionValue("time_limit", float(time_limit))
    t1 = time.perf_counter()
    m.h.run()
    info = m.h.getInfo()
    return {"sites": n, "solver": solver, "round_1_s": round_s, "home_primal": primal,
            "bound": bound, "x_columns": m.columns, "admitted": added,
            "rows": m.m.n_cons, "resolve_s": time.perf_counter() - t1,
            "status": m.h.modelStatusToString(m.h.getModelStatus()),
            "objective": -info.objective_function_value,
            "simplex_iterations": info.simplex_iteration_count,
            "ipm_iterations": info.ipm_iteration_count}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", type=Path, help="also write the result here")
    v = sub.add_parser("value", parents=[common],
                       help="LP optimum with no, within-region and all transfers")
    v.add_argument("--sites", type=int, default=30)
    v.add_argument("--tol", type=float, default=5e-3, help="certified relative gap")
    s = sub.add_parser("master", parents=[common], help="one timed master re-solve after round 1")
    s.add_argument("--sites", type=int, default=100)
    s.add_argument("--solver", choices=["dual", "primal", "ipm"], default="dual")
    s.add_argument("--time-limit", type=float, default=400.0)
    args = ap.parse_args()
    out = (value(args.sites, args.tol) if args.what == "value"
           else master(args.sites, args.solver, args.time_limit))
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        from optsched.io import atomic_write_text
        atomic_write_text(args.json, text + "\n")


if __name__ == "__main__":
    main()
