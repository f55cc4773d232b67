"""Everything the oracle asks of HiGHS, in one place: the options every backend passes, a
quiet solver object, a model from arrays, the run, and the reading of its result.

The direct matrix backend, the Pyomo backend, the CVXPY backend (through CVXPY's own HiGHS
interface, with these options), the diagnosis and the MPC policy all solve through here.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass

import highspy
import numpy as np

from optsched.oracle.matrix import MatrixModel

MIP_GAP = 1e-3                      # 0.1%: the oracle's default optimality target
# HiGHS options every backend passes (direct, CVXPY, Pyomo), so the three solve with one
# configuration. One thread: HiGHS 1.16's MIP otherwise runs two search workers, each
# with its own copy of the LP relaxation; on the 10-site day that costs 1.1 GiB of peak
# memory (4.4 -> 3.4 GiB on the direct model) and no time (123 s either way, both end
# at the root). Measured with HiGHS 1.16.0 on this 2-core machine.
HIGHS_OPTIONS = {"threads": 1}

STATUS = {
    highspy.HighsModelStatus.kOptimal: "optimal",
    highspy.HighsModelStatus.kInfeasible: "infeasible",
    highspy.HighsModelStatus.kUnbounded: "unbounded",
    highspy.HighsModelStatus.kUnboundedOrInfeasible: "infeasible",
    highspy.HighsModelStatus.kTimeLimit: "time_limit",
}
FEASIBLE = 2                        # HiGHS's kSolutionStatusFeasible

_banner_done = False


def quiet_banner() -> None:
    """HiGHS 1.16 prints its copyright banner on the C-level stdout once per process, from
    the first `highspy.Highs()` (its constructor logs before any option can be set), and
    that would corrupt `--json` output. The first time optsched is about to create one
    (here or through CVXPY), create one with file descriptor 1 pointed at /dev/null for
    that instant; later ones print nothing."""
    global _banner_done
    if _banner_done:
        return
    _banner_done = True
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def highs_options(time_limit: float | None = None, mip_gap: float = MIP_GAP) -> dict:
    """The option table of every oracle solve (also what CVXPY passes on to HiGHS)."""
    opts: dict = {"output_flag": False, "mip_rel_gap": float(mip_gap), **HIGHS_OPTIONS}
    if time_limit is not None:
        opts["time_limit"] = float(time_limit)
    return opts


def new_highs(time_limit: float | None = None, mip_gap: float = MIP_GAP) -> highspy.Highs:
    """A silent solver object with the oracle's options."""
    quiet_banner()
    h = highspy.Highs()
    for key, value in highs_options(time_limit, mip_gap).items():
        h.setOptionValue(key, value)
    return h


def highs_lp(cost: np.ndarray, col_lo: np.ndarray, col_hi: np.ndarray, row_lo: np.ndarray,
             row_hi: np.ndarray, A, integer: np.ndarray, maximize: bool = False,
             offset: float = 0.0) -> highspy.HighsLp:
    """A column-wise HiGHS model from arrays (the direct matrix, Pyomo's standard form and
    the diagnosis's elastic model all end here)."""
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = A.shape[1], A.shape[0]
    lp.col_cost_, lp.offset_ = cost, offset
    if maximize:
        lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_lower_, lp.col_upper_ = col_lo, col_hi
    lp.row_lower_, lp.row_upper_ = row_lo, row_hi
    csc = A.tocsc()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = csc.indptr
    lp.a_matrix_.index_ = csc.indices
    lp.a_matrix_.value_ = csc.data
    if integer.any():
        lp.integrality_ = [highspy.HighsVarType.kInteger if i else
                           highspy.HighsVarType.kContinuous for i in integer]
    return lp


def matrix_to_highs(m: MatrixModel) -> highspy.HighsLp:
    """The sparse matrix model (a maximisation) as the HiGHS minimisation of -cost."""
    return highs_lp(-m.cost, m.col_lo, m.col_hi, m.row_lo, m.row_hi, m.A, m.integer)


@dataclass(frozen=True)
class HighsResult:
    status: str                     # optimal | time_limit | infeasible | unbounded | ...
    values: np.ndarray | None       # column values; None without a feasible point
    mip_gap: float | None           # None for an LP, or while no gap is known
    bound: float | None             # best bound on the (maximised) objective, MILP only


def finite_or_none(x: float) -> float | None:
    """HiGHS reports an unknown gap or bound as +-inf (not valid JSON): say None."""
    return float(x) if math.isfinite(x) else None


def mip_bound(info, relax: bool, maximize: bool) -> float | None:
    """The best bound of a MIP run on the objective as optsched states it (maximised)."""
    if relax:
        return None
    bound = finite_or_none(info.mip_dual_bound)
    return bound if bound is None or maximize else -bound


def read_result(h: highspy.Highs, relax: bool, maximize: bool) -> HighsResult:
    """Status, column values, MIP gap and best bound of a run. `maximize` says whether the
    model handed to HiGHS was the maximisation itself (Pyomo) or its negation (matrix)."""
    status = STATUS.get(h.getModelStatus(), str(h.getModelStatus()))
    info = h.getInfo()
    values = None
    if info.primal_solution_status == FEASIBLE and status in ("optimal", "time_limit"):
        values = np.asarray(h.getSolution().col_value)
    gap = None if relax else finite_or_none(info.mip_gap)
    return HighsResult(status, values, gap, mip_bound(info, relax, maximize))


def load_highs(lp: highspy.HighsLp, time_limit: float | None,
               mip_gap: float) -> highspy.Highs:
    """A solver with the oracle's options holding its own copy of `lp` (drop yours before
    `run_highs`: the solve is where memory peaks)."""
    h = new_highs(time_limit, mip_gap)
    h.passModel(lp)
    return h


def run_highs(h: highspy.Highs, relax: bool, maximize: bool) -> tuple[HighsResult, float]:
    """Run a loaded solver: its result (see `read_result`) and the seconds it took."""
    t0 = time.perf_counter()
    h.run()
    return read_result(h, relax, maximize), time.perf_counter() - t0
