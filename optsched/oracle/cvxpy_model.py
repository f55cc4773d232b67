"""MODEL.md in CVXPY: vectorised matrix expressions over (pairs | classes | sites) x slots.

Every time series is a `cp.Parameter`, so the problem is DPP: another day or a rolling
window with the same structure re-solves by updating parameter values, without
re-canonicalising (`CvxpyOracle.update`).
"""

from __future__ import annotations

import time
import warnings

import cvxpy as cp
import numpy as np

from optsched.oracle.highs import (
    FEASIBLE,
    MIP_GAP,
    finite_or_none,
    highs_options,
    mip_bound,
    quiet_banner,
)
from optsched.oracle.layout import build_layout, rise_matrix, shift_matrix
from optsched.oracle.matrix import unpack
from optsched.oracle.solution import Solution
from optsched.scenario.compile import Compiled

SOLVERS = {"highs": cp.HIGHS, "clarabel": cp.CLARABEL}


class CvxpyOracle:
    """A built problem for one scenario structure; `update(c)` swaps in another day."""

    def __init__(self, c: Compiled, relax: bool = False):
        t0 = time.perf_counter()
        self.relax = relax
        self.layout = L = build_layout(c)
        T, I, K = c.T, c.I, c.K
        Kd, Ib = len(L.deferrable), len(L.batt)
        self.p = p = {
            "arrivals": cp.Parameter((K, T), nonneg=True),
            "backlog_cap": cp.Parameter((max(Kd, 1), T), nonneg=True),
            "renewable": cp.Parameter((I, T), nonneg=True),
            "pue": cp.Parameter((I, T), nonneg=True),
            "b_cost": cp.Parameter((I, T)),            # $/kW per slot: energy + carbon
            "z_value": cp.Parameter((I, T)),           # $/kW per slot: export revenue
            "terminal_price": cp.Parameter(max(Ib, 1), nonneg=True),
        }
        v = self.v = {
            "x": cp.Variable((L.E, T), nonneg=True, name="x"),
            "y": cp.Variable((K, T), nonneg=True, name="y"),
            "n": cp.Variable((I, T), nonneg=True, integer=not relax, name="n"),
            "r": cp.Variable((I, T), nonneg=True, name="r"),
            "b": cp.Variable((I, T), nonneg=True, name="b"),
            "z": cp.Variable((I, T), nonneg=True, name="z"),
            "peak": cp.Variable((I, 1), nonneg=True, name="peak"),
        }
        St = shift_matrix(T).T.tocsr()                  # (M @ St)[:, t] = M[:, t-1]
        served = L.class_of_pair @ v["x"]
        backlog = 0
        cons = []
        if Kd:
            v["q"] = cp.Variable((Kd, T), nonneg=True, name="q")
            backlog = L.q_of_class @ (v["q"] - v["q"] @ St)
            cons.append(v["q"] <= p["backlog_cap"])
        gpu_time = cp.multiply((c.util_cap * c.dt_s)[:, None], v["n"])
        it_kw = cp.multiply(c.idle_kw[:, None], v["n"]) + L.busy_at_site @ v["x"] / c.dt_h
        if c.commit:     # provisioning: start >= rise of n (slot 0 warm), cold-start loss
            v["start"] = cp.Variable((I, T), nonneg=True, name="start")
            cons.append(v["start"] >= v["n"] @ rise_matrix(T).T)
            gpu_time = gpu_time - cp.multiply((c.util_cap * c.cold_start_s)[:, None],
                                              v["start"])
            it_kw = it_kw + cp.multiply((c.idle_kw * c.cold_start_s / c.dt_s)[:, None],
                                        v["start"])
        cons += [
            backlog + served + v["y"] == p["arrivals"],                        # 1
            L.gpu_at_site @ v["x"] <= gpu_time,
            v["n"] <= np.repeat(c.gpus[:, None], T, axis=1),                  # 3
            v["r"] <= p["renewable"],
            v["b"] <= np.repeat(c.import_cap[:, None], T, axis=1),
            v["z"] <= np.repeat(c.export_cap[:, None], T, axis=1),
            v["b"] <= v["peak"] @ np.ones((1, T)),                             # 8
        ]
        battery_net = 0
        objective = [cp.sum(L.value @ v["x"]), -cp.sum(c.drop_penalty @ v["y"]),
                     -cp.sum(cp.multiply(p["b_cost"], v["b"])),
                     cp.sum(cp.multiply(p["z_value"], v["z"])),
                     -c.demand_charge @ v["peak"][:, 0]]
        if Kd:
            objective.append(-cp.sum(c.wait_cost[L.deferrable] @ v["q"]))
        if Ib:
            b_ = L.batt
            v["ch"] = cp.Variable((Ib, T), nonneg=True, name="ch")
            v["dis"] = cp.Variable((Ib, T), nonneg=True, name="dis")
            v["soc"] = cp.Variable((Ib, T), name="soc")
            v["short"] = cp.Variable(Ib, nonneg=True, name="short")
            start = np.zeros((Ib, T))
            start[:, 0] = c.soc0[b_]
            cons += [
                v["soc"] - v["soc"] @ St == start + c.dt_h * (
                    cp.multiply(c.eta_c[b_][:, None], v["ch"])
                    - cp.multiply(1.0 / c.eta_d[b_][:, None], v["dis"])),      # 7
                v["soc"] >= np.repeat(c.soc_min[b_][:, None], T, axis=1),
                v["soc"] <= np.repeat(c.soc_max[b_][:, None], T, axis=1),
                v["short"] >= c.soc0[b_] - v["soc"][:, T - 1],                 # 9
            ]
            ch_max = np.repeat(c.ch_max[b_][:, None], T, axis=1)
            dis_max = np.repeat(c.dis_max[b_][:, None], T, axis=1)
            if relax:
                cons += [v["ch"] <= ch_max, v["dis"] <= dis_max]
            else:
                v["u"] = cp.Variable((Ib, T), boolean=True, name="u")
                cons += [v["ch"] <= cp.multiply(ch_max, v["u"]),
                         v["dis"] <= cp.multiply(dis_max, 1 - v["u"])]
            battery_net = L.batt_of_site @ (v["ch"] - v["dis"])
            deg = c.dt_h * c.deg_cost[b_]
            objective += [-cp.sum(deg @ (v["ch"] + v["dis"])),
                          -p["terminal_price"][:Ib] @ v["short"]]
        cons.append(v["b"] - v["z"] == cp.multiply(p["pue"], it_kw) + battery_net - v["r"])
        if c.queueing:            # late jobs from waiting, cut by cut (docs/model.md)
            v["lq"] = cp.Variable((I, T), nonneg=True, name="lq")
            work = L.gpu_int_at_site @ v["x"]                 # interactive GPU-s [I, T]
            for j in range(c.queue_a.shape[1]):
                cons.append(v["lq"] >= cp.multiply(c.queue_a[:, j:j + 1], work)
                            - cp.multiply(c.queue_b[:, j:j + 1] * c.dt_s, v["n"]))
            objective.append(-cp.sum(c.queue_penalty @ v["lq"]))
        self.problem = cp.Problem(cp.Maximize(cp.sum(cp.hstack(objective))), cons)
        self.update(c)
        self.build_s = time.perf_counter() - t0

    def update(self, c: Compiled) -> None:
        """Set the parameters from a scenario with the same structure (sites, classes,
        options, eligibility)."""
        L, p = self.layout, self.p
        p["arrivals"].value = c.arrivals
        cap = c.backlog_cap[L.deferrable]
        p["backlog_cap"].value = cap if len(L.deferrable) else np.zeros((1, c.T))
        p["renewable"].value = c.renewable
        p["pue"].value = c.pue
        price = c.price / 1000.0
        p["b_cost"].value = c.dt_h * price + c.carbon_price * c.dt_h * c.ci / 1e6
        p["z_value"].value = c.dt_h * c.sell_factor[:, None] * price
        tp = c.terminal_price[L.batt]
        p["terminal_price"].value = tp if len(L.batt) else np.zeros(1)

    def solve(self, c: Compiled, solver: str = "highs", time_limit: float | None = None,
              mip_gap: float = MIP_GAP) -> Solution:
        opts: dict = {}
        if solver == "highs":
            opts = highs_options(time_limit, mip_gap)
            quiet_banner()
        elif time_limit is not None:
            opts = {"time_limit": float(time_limit)}
        t1 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # A stop at the time limit is reported in the Solution's status.
                warnings.filterwarnings("ignore", "Solution may be inaccurate")
                self.problem.solve(solver=SOLVERS[solver], **opts)
        except cp.error.SolverError as exc:
            return self._empty(solver, f"error: {exc}", self.build_s,
                               time.perf_counter() - t1)
        # CVXPY canonicalises inside solve(): count that as build time (it is ~0 on a
        # re-solve after `update`, thanks to DPP).
        compile_s = float(self.problem.compilation_time or 0.0)
        solve_s = time.perf_counter() - t1 - compile_s
        build_s = self.build_s + compile_s
        status = {"optimal": "optimal", "optimal_inaccurate": "optimal",
                  "infeasible": "infeasible", "unbounded": "unbounded",
                  "user_limit": "time_limit"}.get(self.problem.status, self.problem.status)
        # HiGHS's own record of the run (CVXPY hands over its HighsInfo): at a time limit
        # CVXPY fills the variables with zeros when HiGHS has no feasible point.
        info = self.problem.solver_stats.extra_stats if solver == "highs" else None
        gap = bound = None
        if info is not None and not self.relax:
            gap = finite_or_none(info.mip_gap)
            bound = mip_bound(info, self.relax, maximize=False)   # CVXPY minimises -utility
        feasible = (info.primal_solution_status == FEASIBLE if info is not None
                    else status == "optimal")
        if self.v["x"].value is None or not feasible or status not in ("optimal",
                                                                         "time_limit"):
            return self._empty(solver, status, build_s, solve_s, gap, bound)

        def get(name):
            var = self.v.get(name)
            if var is None:
                return np.zeros((0, c.T))
            return np.asarray(var.value, float).reshape(var.shape if name != "peak"
                                                        else (c.I,))
        # The objective at the returned point (the incumbent, after a time limit).
        objective = float(self.problem.objective.value)
        return Solution(schedule=unpack(c, self.layout, get), objective=objective,
                        status=status, backend=f"cvxpy-{solver}", relaxed=self.relax,
                        mip_gap=gap, build_s=build_s, solve_s=solve_s,
                        n_vars=self._n_vars(), n_cons=self._n_cons(), bound=bound)

    def _empty(self, solver: str, status: str, build_s: float, solve_s: float,
               gap: float | None = None, bound: float | None = None) -> Solution:
        return Solution(schedule=None, objective=None, status=status,
                        backend=f"cvxpy-{solver}", relaxed=self.relax, mip_gap=gap,
                        build_s=build_s, solve_s=solve_s, n_vars=self._n_vars(),
                        n_cons=self._n_cons(), bound=bound)

    def _n_vars(self) -> int:
        return int(sum(v.size for v in self.problem.variables()))

    def _n_cons(self) -> int:
        return int(sum(con.size for con in self.problem.constraints))


def solve_cvxpy(c: Compiled, relax: bool = False, time_limit: float | None = None,
                solver: str = "highs", mip_gap: float = MIP_GAP) -> Solution:
    return CvxpyOracle(c, relax).solve(c, solver, time_limit, mip_gap)
