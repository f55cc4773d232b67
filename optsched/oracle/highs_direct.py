"""The direct HiGHS backend: the sparse matrix passed to highspy as is. It is the reference
for the physical limit of build time, and the fastest path for the MILP."""

from __future__ import annotations

import time

import highspy
import numpy as np

from optsched.oracle.matrix import MatrixModel, build_matrix, unpack
from optsched.oracle.solution import Solution
from optsched.scenario.compile import Compiled

MIP_GAP = 1e-3                      # 0.1%: the oracle's default optimality target
# HiGHS options every backend passes (direct, CVXPY, Pyomo), so the three solve with one
# configuration. One thread: HiGHS 1.16's MIP otherwise runs two search workers, each
# with its own copy of the LP relaxation; on the 10-site day that costs 1.1 GiB of peak
# memory (4.4 -> 3.4 GiB on the direct model) and no time (123 s either way, both end
# at the root). Measured with HiGHS 1.16.0 on this 2-core machine.
HIGHS_OPTIONS = {"threads": 1}


def new_highs(time_limit: float | None, mip_gap: float = MIP_GAP) -> highspy.Highs:
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", mip_gap)
    for key, value in HIGHS_OPTIONS.items():
        h.setOptionValue(key, value)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    return h


def highs_lp(cost: np.ndarray, col_lo: np.ndarray, col_hi: np.ndarray, row_lo: np.ndarray,
             row_hi: np.ndarray, A, integer: np.ndarray, maximize: bool = False,
             offset: float = 0.0) -> highspy.HighsLp:
    """A column-wise HiGHS model from arrays (the direct matrix and Pyomo's standard form
    both end here)."""
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


def to_highs_lp(m: MatrixModel) -> highspy.HighsLp:
    return highs_lp(-m.cost, m.col_lo, m.col_hi, m.row_lo, m.row_hi, m.A,  # HiGHS minimises
                    m.integer)


STATUS = {
    highspy.HighsModelStatus.kOptimal: "optimal",
    highspy.HighsModelStatus.kInfeasible: "infeasible",
    highspy.HighsModelStatus.kUnbounded: "unbounded",
    highspy.HighsModelStatus.kUnboundedOrInfeasible: "infeasible",
    highspy.HighsModelStatus.kTimeLimit: "time_limit",
}


def solve_matrix(c: Compiled, relax: bool = False, time_limit: float | None = None,
                 mip_gap: float = MIP_GAP) -> Solution:
    """The MILP gets no start of ours: HiGHS 1.16 finds one at the root as fast as a
    rounded LP optimum did (default day: 5.5 s unseeded vs 6.6 s seeded to 0.1%, 58 vs
    57 s to 1e-6), and seeding cost a second LP solve (10-site day: 123 s vs 260 s)."""
    t0 = time.perf_counter()
    m = build_matrix(c, relax=relax)
    lp = to_highs_lp(m)
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    h = new_highs(time_limit, mip_gap)
    h.passModel(lp)
    del lp
    h.run()
    solve_s = time.perf_counter() - t1
    return finish(c, m, h, "highs", relax, build_s, solve_s)


def read_result(h: highspy.Highs, relax: bool) -> tuple[str, np.ndarray | None,
                                                         float | None]:
    """Status, column values (None without a feasible point) and MIP gap of a run."""
    status = STATUS.get(h.getModelStatus(), str(h.getModelStatus()))
    info = h.getInfo()
    has_point = info.primal_solution_status == 2      # kSolutionStatusFeasible
    values = None
    if has_point and status in ("optimal", "time_limit"):
        values = np.asarray(h.getSolution().col_value)
    return status, values, None if relax else float(info.mip_gap)


def finish(c: Compiled, m: MatrixModel, h: highspy.Highs, backend: str, relax: bool,
           build_s: float, solve_s: float) -> Solution:
    """Read a solved Highs object (any backend that ends in one) into a Solution."""
    status, v, gap = read_result(h, relax)
    schedule, objective = None, None
    if v is not None:
        objective = float(m.cost @ v)
        schedule = unpack(c, m.layout, lambda name: m.block(v, name))
    return Solution(schedule=schedule, objective=objective, status=status, backend=backend,
                    relaxed=relax, mip_gap=gap, build_s=build_s, solve_s=solve_s,
                    n_vars=m.n_vars, n_cons=m.n_cons)
