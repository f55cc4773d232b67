"""MODEL.md in Pyomo, solved by HiGHS through the persistent appsi interface.

Built from the compiled arrays: each block (jobs, capacity, power, battery, objective)
reads precomputed numbers (plain Python lists, not numpy scalars, which Pyomo handles
slowly) and re-derives nothing. Constraint names follow MODEL.md.
"""

from __future__ import annotations

import time

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.appsi.base import TerminationCondition
from pyomo.contrib.appsi.solvers import Highs

from optsched.oracle.layout import Layout, build_layout
from optsched.oracle.matrix import unpack
from optsched.oracle.solution import Solution
from optsched.scenario.compile import Compiled


def _jobs_block(m: pyo.ConcreteModel, c: Compiled, L: Layout) -> None:
    T = range(c.T)
    lam = c.arrivals.tolist()
    pairs_of = [np.flatnonzero(L.pair_k == k).tolist() for k in range(c.K)]
    qrow = {int(k): j for j, k in enumerate(L.deferrable)}
    cap = c.backlog_cap[L.deferrable].tolist()
    m.x = pyo.Var(range(L.E), T, domain=pyo.NonNegativeReals)
    m.y = pyo.Var(range(c.K), T, domain=pyo.NonNegativeReals)
    m.q = pyo.Var(range(len(L.deferrable)), T, domain=pyo.NonNegativeReals,
                  bounds=lambda _, j, t: (0.0, cap[j][t]))

    def conservation(_, k, t):
        j = qrow.get(k)
        backlog = 0.0 if j is None else m.q[j, t] - (m.q[j, t - 1] if t else 0.0)
        return backlog + sum(m.x[e, t] for e in pairs_of[k]) + m.y[k, t] == lam[k][t]

    m.conservation = pyo.Constraint(range(c.K), T, rule=conservation)


def _capacity_and_power_block(m: pyo.ConcreteModel, c: Compiled, L: Layout) -> None:
    T = range(c.T)
    I = range(c.I)
    site_of_pair = c.opt_site[L.pair_o]
    pairs_at = [np.flatnonzero(site_of_pair == i).tolist() for i in I]
    gpu_s = c.gpu_s[L.pair_o].tolist()
    busy_kw = (c.busy_kwh[L.pair_o] / c.dt_h).tolist()
    gpus, imp, exp_, ren = c.gpus.tolist(), c.import_cap.tolist(), c.export_cap.tolist(), \
        c.renewable.tolist()
    cap_s = (c.util_cap * c.dt_s).tolist()
    pue, idle = c.pue.tolist(), c.idle_kw.tolist()
    batt_row = {int(i): j for j, i in enumerate(L.batt)}
    m.n = pyo.Var(I, T, bounds=lambda _, i, t: (0.0, gpus[i]))
    m.r = pyo.Var(I, T, bounds=lambda _, i, t: (0.0, ren[i][t]))
    m.b = pyo.Var(I, T, bounds=lambda _, i, t: (0.0, imp[i]))
    m.z = pyo.Var(I, T, bounds=lambda _, i, t: (0.0, exp_[i]))
    m.peak = pyo.Var(I, domain=pyo.NonNegativeReals)

    m.gpu_capacity = pyo.Constraint(I, T, rule=lambda _, i, t: sum(
        gpu_s[e] * m.x[e, t] for e in pairs_at[i]) <= cap_s[i] * m.n[i, t])

    def balance(_, i, t):
        it_kw = idle[i] * m.n[i, t] + sum(busy_kw[e] * m.x[e, t] for e in pairs_at[i])
        j = batt_row.get(i)
        battery = 0.0 if j is None else m.ch[j, t] - m.dis[j, t]
        return m.b[i, t] - m.z[i, t] == pue[i][t] * it_kw + battery - m.r[i, t]

    m.balance = pyo.Constraint(I, T, rule=balance)
    m.peak_import = pyo.Constraint(I, T, rule=lambda _, i, t: m.b[i, t] <= m.peak[i])


def _battery_block(m: pyo.ConcreteModel, c: Compiled, L: Layout, relax: bool) -> None:
    T = range(c.T)
    B = range(len(L.batt))
    s = L.batt
    ch_max, dis_max = c.ch_max[s].tolist(), c.dis_max[s].tolist()
    lo, hi, soc0 = c.soc_min[s].tolist(), c.soc_max[s].tolist(), c.soc0[s].tolist()
    eta_c, eta_d, dt = c.eta_c[s].tolist(), c.eta_d[s].tolist(), c.dt_h
    m.ch = pyo.Var(B, T, bounds=lambda _, j, t: (0.0, ch_max[j]))
    m.dis = pyo.Var(B, T, bounds=lambda _, j, t: (0.0, dis_max[j]))
    m.soc = pyo.Var(B, T, bounds=lambda _, j, t: (lo[j], hi[j]))
    m.short = pyo.Var(B, domain=pyo.NonNegativeReals)
    m.soc_recursion = pyo.Constraint(B, T, rule=lambda _, j, t: m.soc[j, t] == (
        m.soc[j, t - 1] if t else soc0[j]) + dt * (eta_c[j] * m.ch[j, t]
                                                    - m.dis[j, t] / eta_d[j]))
    m.terminal_soc = pyo.Constraint(B, rule=lambda _, j: m.short[j] >= soc0[j]
                                    - m.soc[j, c.T - 1])
    if not relax:
        m.u = pyo.Var(B, T, domain=pyo.Binary)
        m.charge_mode = pyo.Constraint(B, T, rule=lambda _, j, t: m.ch[j, t]
                                       <= ch_max[j] * m.u[j, t])
        m.discharge_mode = pyo.Constraint(B, T, rule=lambda _, j, t: m.dis[j, t]
                                          <= dis_max[j] * (1 - m.u[j, t]))


def _objective(m: pyo.ConcreteModel, c: Compiled, L: Layout) -> None:
    T = range(c.T)
    value = L.value.tolist()
    drop, wait = c.drop_penalty.tolist(), c.wait_cost[L.deferrable].tolist()
    price = c.price / 1000.0
    b_cost = (c.dt_h * price + c.carbon_price * c.dt_h * c.ci / 1e6).tolist()
    z_value = (c.dt_h * c.sell_factor[:, None] * price).tolist()
    deg = (c.dt_h * c.deg_cost[L.batt]).tolist()
    dc, tp = c.demand_charge.tolist(), L.terminal_price.tolist()
    E, K, I = range(L.E), range(c.K), range(c.I)
    m.utility = pyo.Objective(sense=pyo.maximize, expr=(
        sum(value[e] * m.x[e, t] for e in E for t in T)
        - sum(drop[k] * m.y[k, t] for k in K for t in T)
        - sum(wait[j] * m.q[j, t] for j in range(len(wait)) for t in T)
        - sum(b_cost[i][t] * m.b[i, t] - z_value[i][t] * m.z[i, t] for i in I for t in T)
        - sum(dc[i] * m.peak[i] for i in I)
        - sum(deg[j] * (m.ch[j, t] + m.dis[j, t]) for j in range(len(deg)) for t in T)
        - sum(tp[j] * m.short[j] for j in range(len(tp)))))


def build_pyomo(c: Compiled, relax: bool = False) -> tuple[pyo.ConcreteModel, Layout]:
    L = build_layout(c)
    m = pyo.ConcreteModel(name="optsched")
    _jobs_block(m, c, L)
    if len(L.batt):
        _battery_block(m, c, L, relax)
    _capacity_and_power_block(m, c, L)
    _objective(m, c, L)
    if not relax:
        for v in m.n.values():
            v.domain = pyo.NonNegativeIntegers
    return m, L


def solve_pyomo(c: Compiled, relax: bool = False, time_limit: float | None = None,
                mip_gap: float = 1e-3) -> Solution:
    t0 = time.perf_counter()
    m, L = build_pyomo(c, relax)
    opt = Highs()
    opt.config.stream_solver = False
    opt.config.load_solution = False
    if time_limit is not None:
        opt.config.time_limit = float(time_limit)
    opt.config.mip_gap = mip_gap
    opt.set_instance(m)                               # translation to HiGHS
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = opt.solve(m)
    solve_s = time.perf_counter() - t1
    status = {TerminationCondition.optimal: "optimal",
              TerminationCondition.maxTimeLimit: "time_limit",
              TerminationCondition.infeasible: "infeasible",
              TerminationCondition.unbounded: "unbounded",
              TerminationCondition.infeasibleOrUnbounded: "infeasible",
              }.get(res.termination_condition, str(res.termination_condition))
    n_vars = sum(len(v) for v in m.component_objects(pyo.Var))
    n_cons = sum(len(k) for k in m.component_objects(pyo.Constraint))
    if res.best_feasible_objective is None:
        return Solution(None, None, status, "pyomo", relax, None, build_s, solve_s,
                        n_vars, n_cons)
    res.solution_loader.load_vars()

    def get(name):
        comp = getattr(m, name, None)
        shapes = {"peak": (c.I,), "short": (len(L.batt),)}
        if comp is None:
            return np.zeros((0, c.T))
        vals = np.array([v.value if v.value is not None else 0.0 for v in comp.values()])
        return vals.reshape(shapes.get(name, (-1, c.T)))

    bound = res.best_objective_bound
    obj = float(res.best_feasible_objective)
    gap = None if relax else (abs(bound - obj) / max(abs(obj), 1e-9) if bound is not None
                              else None)
    return Solution(unpack(c, L, get), obj, status, "pyomo", relax, gap, build_s, solve_s,
                    n_vars, n_cons)
