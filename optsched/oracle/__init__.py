"""The offline oracle: MODEL.md with perfect foresight, an upper bound for every policy.

`solve(compiled, backend=...)` returns a `Solution` whose schedule the evaluator has
scored; that score equals the solver's objective to 1e-6 relative or the call raises.
A solve stopped by its time limit says so (status "time_limit", with the incumbent when
there is one, its MIP gap and the best bound); its incumbent is checked the same way.
"""

from __future__ import annotations

import math

from optsched.errors import InfeasibleError, ScenarioError
from optsched.oracle.highs import MIP_GAP
from optsched.oracle.size import MAX_VARS, ModelSize, check_size, model_size
from optsched.oracle.solution import ObjectiveMismatch, Solution, attach_evaluation
from optsched.scenario.compile import Compiled

BACKENDS = ("pyomo", "cvxpy", "highs", "cvxpy-clarabel")


def _number(x: object) -> float:
    """x as a float, or NaN for anything that is not a real number (so checks fail)."""
    if isinstance(x, bool):
        return math.nan
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def check_inputs(backend: str, relax: bool, time_limit: float | None,
                 mip_gap: float) -> None:
    """The solve's own arguments, refused on one line each (the CLI's flags by name)."""
    if backend not in BACKENDS:
        raise ScenarioError("--backend", f"must be one of {', '.join(BACKENDS)}", backend)
    if not isinstance(relax, bool):           # "no" is truthy: it solved the relaxation
        raise ScenarioError("--relax", "must be True or False", relax)
    if backend == "cvxpy-clarabel" and not relax:
        raise ScenarioError("--backend", "Clarabel solves the LP relaxation only: add "
                            "--relax", backend)
    if time_limit is not None:
        t = _number(time_limit)
        if not (math.isfinite(t) and t > 0):
            raise ScenarioError("--time-limit", "must be a finite number of seconds > 0",
                                time_limit)
    g = _number(mip_gap)
    if not (math.isfinite(g) and g >= 0):
        raise ScenarioError("--mip-gap", "must be a finite relative gap >= 0", mip_gap)


def solve(c: Compiled, backend: str = "pyomo", relax: bool = False,
          time_limit: float | None = None, mip_gap: float = MIP_GAP,
          raise_infeasible: bool = False, max_vars: float | None = None) -> Solution:
    """Solve the oracle model of `c`. `time_limit` in seconds (None: none); `mip_gap` the
    relative gap the MILP stops at; `max_vars` the largest model built (None:
    $OPTSCHED_MAX_VARS, else size.MAX_VARS): a larger one raises ModelTooLarge before
    any allocation."""
    check_inputs(backend, relax, time_limit, mip_gap)
    check_size(c, relax, max_vars)
    time_limit = None if time_limit is None else float(time_limit)
    mip_gap = float(mip_gap)
    if backend == "pyomo":
        from optsched.oracle.pyomo_model import solve_pyomo
        sol = solve_pyomo(c, relax, time_limit, mip_gap)
    elif backend in ("cvxpy", "cvxpy-clarabel"):
        from optsched.oracle.cvxpy_model import solve_cvxpy
        solver = "clarabel" if backend == "cvxpy-clarabel" else "highs"
        sol = solve_cvxpy(c, relax, time_limit, solver, mip_gap)
    else:
        from optsched.oracle.highs_direct import solve_matrix
        sol = solve_matrix(c, relax, time_limit, mip_gap)
    if sol.schedule is None:
        if sol.status == "time_limit":
            bound = "" if sol.bound is None else f" (best bound on the utility {sol.bound:,.2f})"
            sol.diagnosis = (f"no feasible schedule found within the time limit of "
                             f"{time_limit:g} s{bound}; allow more time")
        else:
            from optsched.oracle.diagnose import diagnose
            from optsched.oracle.matrix import build_matrix
            sol.diagnosis = diagnose(build_matrix(c, relax))
        if raise_infeasible:
            raise InfeasibleError(f"oracle {sol.status}: {sol.diagnosis}")
        return sol
    return attach_evaluation(c, sol)


__all__ = ["BACKENDS", "MAX_VARS", "MIP_GAP", "ModelSize", "ObjectiveMismatch", "Solution",
           "check_inputs", "model_size", "solve"]
