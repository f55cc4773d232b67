"""Decomposed vs monolithic LP oracle on multisite-N, one day: build and solve time, peak
memory, objective, certified gap.

    python benchmarks/scale_oracle.py                       # 3, 10, 30 and 100 sites
    python benchmarks/scale_oracle.py --sites 3 10 --json out.json
    python benchmarks/scale_oracle.py --sites 30 --methods decomposed --workers 2

Each (N, method) runs in its own process, so its peak memory (max RSS of that process,
Python and imports included) is its own. The monolithic LP is the direct HiGHS matrix
(`oracle.solve(backend="highs", relax=True)`); a case whose estimated peak (size.py) is
over --max-gib is reported as skipped with its size, not run. "gap to mono" is
(monolithic optimum - decomposed utility) / |monolithic optimum| where both ran; "certified
gap" is the decomposed run's own (bound - utility) / |bound|, which needs no monolithic
solve. "load" is the machine's 1-minute load average at the case's start and end (the
machine is shared: times are only comparable at like loads).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DAY = 4                        # the families' first held-out day


def run_one(n: int, method: str, tol: float, workers: int, max_gib: float,
            cluster_size: int | None = None) -> dict:
    from optsched.oracle import model_size, solve
    from optsched.oracle.decompose import solve_decomposed
    from optsched.scenario import compile_scenario, get_scenario

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    c = compile_scenario(get_scenario(f"multisite-{n}", DAY))
    row: dict = {"sites": n, "method": method, "scenario_s": time.perf_counter() - t0}
    size = model_size(c, relax=True)
    row |= {"mono_vars": size.n_vars, "mono_est_gib": size.peak_bytes / 2**30}
    if method == "monolithic":
        if size.peak_bytes > max_gib * 2**30:
            return row | {"status": f"skipped: {size.n_vars:,} variables, estimated peak "
                                    f"{size.peak_bytes / 2**30:.0f} GiB > {max_gib:g} GiB"}
        sol = solve(c, "highs", relax=True, max_vars=max(size.n_vars, 1))
        row |= {"status": sol.status, "build_s": sol.build_s, "solve_s": sol.solve_s,
                "utility": sol.objective, "bound": sol.objective, "gap": 0.0,
                "vars": sol.n_vars}
    else:
        t1 = time.perf_counter()

        def progress(it: int, bound: float, primal: float) -> None:
            print(f"  {n} sites, round {it}: bound {bound:,.2f}, primal {primal:,.2f}, "
                  f"gap {(bound - primal) / abs(bound):.2e}, {time.perf_counter() - t1:.0f} s",
                  file=sys.stderr, flush=True)

        d = solve_decomposed(c, workers=workers, tol=tol, progress=progress,
                             cluster_size=cluster_size)
        row |= {"status": "converged" if d.converged else "not converged",
                "build_s": d.build_s, "solve_s": d.solve_s, "utility": d.utility,
                "bound": d.bound, "gap": d.gap, "iterations": d.iterations,
                "site_s": d.site_s, "master_s": d.master_s, "x_columns": d.admitted,
                "x_columns_full": d.eligible, "feasible": d.evaluation.feasible,
                "clusters": d.clusters, "cluster_s": d.cluster_s,
                "primal_from": d.primal_from}
    return row | {"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "load": [load0, os.getloadavg()[0]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, nargs="+", default=[3, 10, 30, 100])
    ap.add_argument("--methods", nargs="+", default=["decomposed", "monolithic"],
                    choices=["decomposed", "monolithic"])
    ap.add_argument("--tol", type=float, default=5e-3, help="certified relative gap")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--cluster-size", type=int, default=None,
                    help="sites per balanced cluster (default: the oracle's; 0: none)")
    ap.add_argument("--max-gib", type=float, default=16.0,
                    help="skip a monolithic case whose estimated peak is larger")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per case")
    ap.add_argument("--json", type=Path, help="also write all rows here")
    ap.add_argument("--one", nargs=2, metavar=("N", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(int(args.one[0]), args.one[1], args.tol, args.workers,
                                 args.max_gib, args.cluster_size)))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    rows = []
    for n in args.sites:
        for method in args.methods:
            console.print(f"[dim]{n} sites / {method} ...[/dim]")
            cmd = [sys.executable, __file__, "--one", str(n), method, "--tol", str(args.tol),
                   "--workers", str(args.workers), "--max-gib", str(args.max_gib)]
            if args.cluster_size is not None:
                cmd += ["--cluster-size", str(args.cluster_size)]
            try:
                proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                      timeout=args.timeout)     # progress on stderr
            except subprocess.TimeoutExpired:
                rows.append({"sites": n, "method": method,
                             "status": f"timed out after {args.timeout:g} s"})
                continue
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode or not lines:
                rows.append({"sites": n, "method": method,
                             "status": f"failed (exit {proc.returncode}, see its stderr)"})
                continue
            rows.append(json.loads(lines[-1]))
    mono = {r["sites"]: r["utility"] for r in rows
            if r["method"] == "monolithic" and r.get("utility") is not None}
    table = Table(title="decomposed vs monolithic LP, multisite-N day 4 (seconds, MiB)")
    for col in ("sites", "method", "status", "build s", "solve s", "total s", "peak MiB",
                "utility", "bound", "certified gap", "gap to mono", "rounds", "load"):
        table.add_column(col, justify="left" if col in ("method", "status") else "right")
    for r in rows:
        if r.get("utility") is None:
            table.add_row(str(r["sites"]), r["method"], r["status"], *[""] * 10)
            continue
        ref = mono.get(r["sites"])
        to_mono = "" if ref is None else f"{(ref - r['utility']) / abs(ref):.1e}"
        table.add_row(str(r["sites"]), r["method"], r["status"], f"{r['build_s']:.1f}",
                      f"{r['solve_s']:.1f}", f"{r['build_s'] + r['solve_s']:.1f}",
                      f"{r['peak_mib']:.0f}", f"{r['utility']:,.2f}", f"{r['bound']:,.2f}",
                      f"{r['gap']:.1e}", to_mono, str(r.get("iterations", "")),
                      "{:.1f}-{:.1f}".format(*r["load"]))
    Console(width=200).print(table)
    if args.json:
        from optsched.io import atomic_write_text
        atomic_write_text(args.json, json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
