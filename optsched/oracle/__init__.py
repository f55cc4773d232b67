"""The offline oracle: MODEL.md with perfect foresight, an upper bound for every policy.

`solve(compiled, backend=...)` returns a `Solution` whose schedule the evaluator has
scored; that score equals the solver's objective to 1e-6 relative or the call raises.
"""

from __future__ import annotations

import os

from optsched.errors import InfeasibleError
from optsched.oracle.highs_direct import MIP_GAP
from optsched.oracle.solution import ObjectiveMismatch, Solution, attach_evaluation
from optsched.scenario.compile import Compiled

BACKENDS = ("pyomo", "cvxpy", "highs", "cvxpy-clarabel")


def _silence_highs_banner() -> None:
    """HiGHS prints a copyright banner on stdout when the process creates its first solver
    (whichever backend does it). Create that first one with stdout pointed away."""
    import highspy

    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


_silence_highs_banner()


def solve(c: Compiled, backend: str = "pyomo", relax: bool = False,
          time_limit: float | None = None, mip_gap: float = MIP_GAP,
          raise_infeasible: bool = False) -> Solution:
    if backend == "pyomo":
        from optsched.oracle.pyomo_model import solve_pyomo
        sol = solve_pyomo(c, relax, time_limit, mip_gap)
    elif backend in ("cvxpy", "cvxpy-clarabel"):
        from optsched.oracle.cvxpy_model import solve_cvxpy
        solver = "clarabel" if backend == "cvxpy-clarabel" else "highs"
        if solver == "clarabel" and not relax:
            raise ValueError("Clarabel solves the LP relaxation only: add --relax")
        sol = solve_cvxpy(c, relax, time_limit, solver, mip_gap)
    elif backend == "highs":
        from optsched.oracle.highs_direct import solve_matrix
        sol = solve_matrix(c, relax, time_limit, mip_gap)
    else:
        raise ValueError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    if sol.schedule is None:
        if sol.status == "time_limit":
            sol.diagnosis = (f"no feasible schedule found within the time limit of "
                             f"{time_limit:g} s; allow more time")
        else:
            from optsched.oracle.diagnose import diagnose
            from optsched.oracle.matrix import build_matrix
            sol.diagnosis = diagnose(build_matrix(c, relax))
        if raise_infeasible:
            raise InfeasibleError(f"oracle {sol.status}: {sol.diagnosis}")
        return sol
    return attach_evaluation(c, sol)


__all__ = ["BACKENDS", "MIP_GAP", "ObjectiveMismatch", "Solution", "solve"]
