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


def new_highs(time_limit: float | None, mip_gap: float = MIP_GAP) -> highspy.Highs:
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", mip_gap)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    return h


def to_highs_lp(m: MatrixModel) -> highspy.HighsLp:
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = m.n_vars, m.n_cons
    lp.col_cost_ = -m.cost                       # HiGHS minimises
    lp.col_lower_, lp.col_upper_ = m.col_lo, m.col_hi
    lp.row_lower_, lp.row_upper_ = m.row_lo, m.row_hi
    csc = m.A.tocsc()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = csc.indptr
    lp.a_matrix_.index_ = csc.indices
    lp.a_matrix_.value_ = csc.data
    if m.integer.any():
        lp.integrality_ = [highspy.HighsVarType.kInteger if i else
                           highspy.HighsVarType.kContinuous for i in m.integer]
    return lp


STATUS = {
    highspy.HighsModelStatus.kOptimal: "optimal",
    highspy.HighsModelStatus.kInfeasible: "infeasible",
    highspy.HighsModelStatus.kUnbounded: "unbounded",
    highspy.HighsModelStatus.kUnboundedOrInfeasible: "infeasible",
    highspy.HighsModelStatus.kTimeLimit: "time_limit",
}


def rounded_start(c: Compiled, m: MatrixModel, lp_values: np.ndarray) -> np.ndarray | None:
    """An integer-feasible start from an LP optimum: GPUs rounded up, the import they add
    bought from the grid, battery mode from the sign of the net flow. None if the extra
    import would break a cap (then HiGHS searches on its own)."""
    v = lp_values.copy()
    n = m.block(v, "n")
    n_up = np.minimum(np.ceil(n - 1e-7), c.gpus[:, None])
    extra = c.pue * c.idle_kw[:, None] * (n_up - n)
    b = m.block(v, "b") + extra
    if (b > c.import_cap[:, None] + 1e-9).any():
        return None
    L = m.layout
    ch, dis = m.block(v, "ch"), m.block(v, "dis")
    net = ch - dis
    u = (net > 0).astype(float)
    ch_new, dis_new = np.where(u > 0, net, 0.0), np.where(u > 0, 0.0, -net)
    if L.batt.size:
        # Netting charge and discharge keeps soc exact only with lossless conversion;
        # recompute soc and give up if it leaves its bounds.
        eta_c, eta_d = c.eta_c[L.batt][:, None], c.eta_d[L.batt][:, None]
        soc = c.soc0[L.batt][:, None] + np.cumsum(c.dt_h * (eta_c * ch_new - dis_new / eta_d),
                                                  axis=1)
        if (soc < c.soc_min[L.batt][:, None] - 1e-9).any() or \
                (soc > c.soc_max[L.batt][:, None] + 1e-9).any():
            return None
        # The balance must still hold: grid import absorbs the change in net battery flow.
        b_site = b[L.batt] + (ch_new - ch) - (dis_new - dis)
        if (b_site < -1e-9).any() or (b_site > c.import_cap[L.batt][:, None] + 1e-9).any():
            return None
        b[L.batt] = b_site
        v[m.blocks["ch"]], v[m.blocks["dis"]] = ch_new.ravel(), dis_new.ravel()
        v[m.blocks["soc"]] = soc.ravel()
        v[m.blocks["short"]] = np.maximum(c.soc0[L.batt] - soc[:, -1], 0.0)
        v[m.blocks["u"]] = u.ravel()
    v[m.blocks["n"]] = n_up.ravel()
    v[m.blocks["b"]] = b.ravel()
    v[m.blocks["peak"]] = b.max(axis=1).clip(min=0.0)
    return v


def solve_matrix(c: Compiled, relax: bool = False, time_limit: float | None = None,
                 mip_gap: float = MIP_GAP) -> Solution:
    t0 = time.perf_counter()
    m = build_matrix(c, relax=relax)
    lp = to_highs_lp(m)
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    h = new_highs(time_limit, mip_gap)
    if not relax:
        # Seed the MILP with a rounded LP optimum (NOTES.md section 7: 15 s -> 0.5 s).
        relaxed = build_matrix(c, relax=True)
        h.passModel(to_highs_lp(relaxed))
        h.run()
        if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
            lp_v = np.asarray(h.getSolution().col_value)
            start = np.zeros(m.n_vars)
            for name, sl in relaxed.blocks.items():
                start[m.blocks[name]] = lp_v[sl]
            seed = rounded_start(c, m, start)
        else:
            seed = None
        h = new_highs(time_limit, mip_gap)
        h.passModel(lp)
        if seed is not None:
            sol = highspy.HighsSolution()
            sol.col_value = list(seed)
            sol.value_valid = True
            h.setSolution(sol)
    else:
        h.passModel(lp)
    h.run()
    solve_s = time.perf_counter() - t1
    return finish(c, m, h, "highs", relax, build_s, solve_s)


def finish(c: Compiled, m: MatrixModel, h: highspy.Highs, backend: str, relax: bool,
           build_s: float, solve_s: float) -> Solution:
    """Read a solved Highs object (any backend that ends in one) into a Solution."""
    status = STATUS.get(h.getModelStatus(), str(h.getModelStatus()))
    info = h.getInfo()
    has_point = info.primal_solution_status == 2      # kSolutionStatusFeasible
    schedule, objective = None, None
    if has_point and status in ("optimal", "time_limit"):
        v = np.asarray(h.getSolution().col_value)
        objective = float(m.cost @ v)
        schedule = unpack(c, m.layout, lambda name: m.block(v, name))
    gap = None if relax else float(info.mip_gap)
    return Solution(schedule=schedule, objective=objective, status=status, backend=backend,
                    relaxed=relax, mip_gap=gap, build_s=build_s, solve_s=solve_s,
                    n_vars=m.n_vars, n_cons=m.n_cons)
