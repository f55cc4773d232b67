"""The one solution type every oracle backend returns, and the objective-vs-evaluator check."""

from __future__ import annotations

from dataclasses import dataclass

from optsched.evaluator import Evaluation, evaluate
from optsched.scenario.compile import Compiled
from optsched.schedule import Schedule

OBJECTIVE_RTOL = 1e-6


@dataclass
class Solution:
    schedule: Schedule | None
    objective: float | None           # solver objective (utility, $) of the schedule
    status: str                       # optimal | time_limit | infeasible | unbounded | error
    backend: str
    relaxed: bool
    mip_gap: float | None
    build_s: float
    solve_s: float
    n_vars: int
    n_cons: int
    bound: float | None = None        # MILP: best bound on the utility (>= objective)
    evaluation: Evaluation | None = None
    diagnosis: str | None = None

    def to_dict(self) -> dict:
        ev = self.evaluation
        return {
            "utility": self.objective, "status": self.status, "backend": self.backend,
            "relaxed": self.relaxed, "mip_gap": self.mip_gap, "bound": self.bound,
            "build_s": self.build_s,
            "solve_s": self.solve_s, "variables": self.n_vars, "constraints": self.n_cons,
            "terms": ev.terms if ev else None,
            "jobs": ev.jobs if ev else None,
            "evaluator_utility": ev.utility if ev else None,
            "feasible": ev.feasible if ev else None,
            "mean_quality": ev.mean_quality if ev else None,
            "mean_steps": ev.mean_steps if ev else None,
            "diagnosis": self.diagnosis,
        } | ({"class_late": ev.class_late} if ev and ev.class_late is not None else {})


class ObjectiveMismatch(AssertionError):
    """The evaluator disagrees with a solver's objective: a bug in one of them."""


def attach_evaluation(c: Compiled, sol: Solution) -> Solution:
    """Score the schedule with the evaluator and insist it equals the solver's objective.

    A MILP stopped at its gap may return an incumbent whose helper variables are slack
    (a peak above the real peak, say): the evaluator, which recomputes them from the
    decisions, then scores it higher, though never above the solver's bound. Such a
    schedule is accepted and scored by the evaluator."""
    if sol.schedule is None:
        return sol
    sol.evaluation = evaluate(c, sol.schedule, tol=1e-5, milp=not sol.relaxed)
    scale = max(1.0, abs(sol.objective))
    tol = OBJECTIVE_RTOL * scale
    above = sol.evaluation.utility - sol.objective
    if (not sol.relaxed and sol.bound is not None and sol.bound > sol.objective + tol
            and -tol <= above <= sol.bound - sol.objective + tol):
        return sol
    if abs(above) > tol:
        raise ObjectiveMismatch(
            f"{sol.backend}: evaluator utility {sol.evaluation.utility!r} != solver "
            f"objective {sol.objective!r} (relative {OBJECTIVE_RTOL:g})")
    return sol
