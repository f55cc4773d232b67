"""What each lever is worth: the oracle (LP) with one of the paper's levers removed.

    python benchmarks/levers.py [--days test:3]

Prints, per ablation, the oracle's utility and its loss against the full system (median
and range over the days). The loss is the most any policy could gain from that lever.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", default="test:3")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    from optsched.days import parse_days
    from optsched.oracle import solve
    from optsched.scenario import compile_scenario, get_scenario
    from optsched.scenario.ablations import ABLATIONS, ablate

    days = parse_days(args.days, "jemas-3")
    loss = {a: [] for a in ABLATIONS}
    full_u = []
    for day in days:
        c = compile_scenario(get_scenario("jemas-3", day))
        full = solve(c, "highs", relax=True).objective
        full_u.append(full)
        for a in ABLATIONS:
            loss[a].append((full - solve(ablate(c, [a]), "highs", relax=True).objective) / full)
    table = Table(title=f"oracle LP without one lever, jemas-3 days {days}")
    for col in ("lever removed", "median loss", "min", "max"):
        table.add_column(col, justify="left" if col == "lever removed" else "right")
    for a, v in loss.items():
        v = np.array(v) * 100
        table.add_row(a, f"{np.median(v):.3f}%", f"{v.min():.3f}%", f"{v.max():.3f}%")
    Console().print(table)
    Console().print(f"full-system oracle utility: median ${np.median(full_u):,.2f} per day")


if __name__ == "__main__":
    main()
