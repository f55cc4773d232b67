"""Oracle benchmark: build and solve time, size, peak memory and objective per backend.

    python benchmarks/oracle.py          # default, 10 sites x 1 day, 3 sites x 7 days
    python benchmarks/oracle.py --instances default --modes lp
    python benchmarks/oracle.py --instances "10 sites x 7 days" --time-limit 600
    python benchmarks/oracle.py --modes milp --mip-gap 1e-6   # the agreement check

Each (instance, backend, mode) runs in its own process, so peak memory (max RSS of that
process, Python and imports included) is its own. The direct highspy matrix LP is the
reference for the physical limit: every other backend's total time is shown as a ratio
to it. Objectives must agree across backends to 1e-6 relative: LPs always do (to ~1e-14);
MILPs stop at their gap, so two backends' incumbents can differ by up to that gap, and the
check for MILPs runs with --mip-gap 1e-6.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from optsched.oracle.highs import MIP_GAP  # noqa: E402  (after the path: run as a script)

BACKENDS = ("highs", "cvxpy", "pyomo")


def run_one(name: str, backend: str, mode: str, time_limit: float, mip_gap: float) -> dict:
    from benchmarks.instances import instance
    from optsched.oracle import solve

    t0 = time.perf_counter()
    c = instance(name)
    gen_s = time.perf_counter() - t0
    sol = solve(c, backend, relax=(mode == "lp"), time_limit=time_limit, mip_gap=mip_gap)
    return {"instance": name, "backend": backend, "mode": mode, "vars": sol.n_vars,
            "cons": sol.n_cons, "build_s": sol.build_s, "solve_s": sol.solve_s,
            "total_s": sol.build_s + sol.solve_s, "objective": sol.objective,
            "evaluator": sol.evaluation.utility if sol.evaluation else None,
            "status": sol.status, "mip_gap": sol.mip_gap, "bound": sol.bound,
            "scenario_s": gen_s,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", nargs="+",
                    default=["default", "10 sites x 1 day", "3 sites x 7 days"])
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS))
    ap.add_argument("--modes", nargs="+", default=["lp", "milp"])
    ap.add_argument("--time-limit", type=float, default=600.0)
    ap.add_argument("--mip-gap", type=float, default=MIP_GAP,
                    help="relative MIP gap to stop at (the oracle's default 0.1%%; 1e-6 "
                         "for the cross-backend agreement check)")
    ap.add_argument("--json", type=Path, help="also write all rows here")
    ap.add_argument("--one", nargs=3, metavar=("INSTANCE", "BACKEND", "MODE"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.time_limit, args.mip_gap)))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    rows = []
    for name in args.instances:
        for mode in args.modes:
            for backend in args.backends:
                console.print(f"[dim]{name} / {mode} / {backend} ...[/dim]")
                proc = subprocess.run([sys.executable, __file__, "--one", name, backend, mode,
                                       "--time-limit", str(args.time_limit),
                                       "--mip-gap", str(args.mip_gap)],
                                      capture_output=True, text=True, cwd=ROOT,
                                      timeout=args.time_limit * 3 + 600)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
                if proc.returncode or not lines:
                    console.print(f"[red]failed[/red]: {proc.stderr.strip()[-300:]}")
                    rows.append({"instance": name, "backend": backend, "mode": mode,
                                 "status": "failed"})
                    continue
                rows.append(json.loads(lines[-1]))
    table = Table(title="oracle benchmark (2-core machine; seconds, MiB)")
    for col in ("instance", "mode", "backend", "vars", "cons", "build s", "solve s",
                "total s", "x highs", "peak MiB", "objective", "rel. diff", "MIP gap",
                "LP-MILP gap"):
        table.add_column(col, justify="left" if col in ("instance", "mode", "backend")
                         else "right")
    ref = {(r["instance"], r["mode"]): r for r in rows
           if r["backend"] == "highs" and r.get("objective") is not None}
    lp = {r["instance"]: r["objective"] for r in rows
          if r["mode"] == "lp" and r.get("objective") is not None and r["backend"] == "highs"}
    for r in rows:
        if r.get("objective") is None:
            table.add_row(r["instance"], r["mode"], r["backend"], *[""] * 10, r["status"])
            continue
        base = ref.get((r["instance"], r["mode"]))
        ratio = r["total_s"] / base["total_s"] if base else float("nan")
        diff = abs(r["objective"] - base["objective"]) / abs(base["objective"]) if base \
            else float("nan")
        lp_gap = ""
        if r["mode"] == "milp" and r["instance"] in lp:
            lp_gap = f"{(lp[r['instance']] - r['objective']) / abs(lp[r['instance']]):.2e}"
        table.add_row(r["instance"], r["mode"], r["backend"], f"{r['vars']:,}",
                      f"{r['cons']:,}", f"{r['build_s']:.2f}", f"{r['solve_s']:.2f}",
                      f"{r['total_s']:.2f}", f"{ratio:.2f}", f"{r['peak_mib']:.0f}",
                      f"{r['objective']:,.4f}", f"{diff:.1e}",
                      "" if r["mip_gap"] is None else f"{r['mip_gap']:.1e}", lp_gap)
    Console(width=200).print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
