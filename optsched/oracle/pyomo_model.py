"""MODEL.md in Pyomo, compiled to standard form by Pyomo and solved by HiGHS.

Built from the compiled arrays: each block (jobs, capacity, power, battery, objective)
reads precomputed numbers (plain Python lists, not numpy scalars, which Pyomo handles
slowly) and re-derives nothing. Constraint names follow MODEL.md.
"""

from __future__ import annotations

import gc
import time

import highspy
import numpy as np
import pyomo.environ as pyo
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

from optsched.oracle.highs import MIP_GAP, highs_lp, load_highs, run_highs
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
    # provisioning: started GPUs lose cold_start_s of service and draw idle power meanwhile
    lost_s = (c.util_cap * c.cold_start_s).tolist()
    load_kw = (c.idle_kw * c.cold_start_s / c.dt_s).tolist()
    if c.commit:
        m.start = pyo.Var(I, T, domain=pyo.NonNegativeReals)
        m.gpu_starts = pyo.Constraint(I, T, rule=lambda _, i, t: m.start[i, t] >= (
            m.n[i, t] - m.n[i, t - 1] if t else 0.0))

    def gpu_capacity(_, i, t):
        used = sum(gpu_s[e] * m.x[e, t] for e in pairs_at[i])
        if c.commit:
            return used + lost_s[i] * m.start[i, t] <= cap_s[i] * m.n[i, t]
        return used <= cap_s[i] * m.n[i, t]

    m.gpu_capacity = pyo.Constraint(I, T, rule=gpu_capacity)

    def balance(_, i, t):
        it_kw = idle[i] * m.n[i, t] + sum(busy_kw[e] * m.x[e, t] for e in pairs_at[i])
        if c.commit:
            it_kw = it_kw + load_kw[i] * m.start[i, t]
        j = batt_row.get(i)
        battery = 0.0 if j is None else m.ch[j, t] - m.dis[j, t]
        return m.b[i, t] - m.z[i, t] == pue[i][t] * it_kw + battery - m.r[i, t]

    m.balance = pyo.Constraint(I, T, rule=balance)
    m.peak_import = pyo.Constraint(I, T, rule=lambda _, i, t: m.b[i, t] <= m.peak[i])


def _queueing_block(m: pyo.ConcreteModel, c: Compiled, L: Layout) -> None:
    """Late jobs from waiting: lq[i, t] >= a_ij W_int[i, t] - b_ij dt_s n[i, t] for each
    cut j (docs/model.md, "Queueing-aware capacity")."""
    T, I, J = range(c.T), range(c.I), range(c.queue_a.shape[1])
    site_of_pair = c.opt_site[L.pair_o]
    inter = c.interactive[L.pair_k]
    pairs_at = [np.flatnonzero((site_of_pair == i) & inter).tolist() for i in I]
    gpu_s = c.gpu_s[L.pair_o].tolist()
    a, b = c.queue_a.tolist(), (c.queue_b * c.dt_s).tolist()
    m.lq = pyo.Var(I, T, domain=pyo.NonNegativeReals)

    def cut(_, i, j, t):
        work = sum(gpu_s[e] * m.x[e, t] for e in pairs_at[i])
        return m.lq[i, t] >= a[i][j] * work - b[i][j] * m.n[i, t]

    m.queueing = pyo.Constraint(I, J, T, rule=cut)


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
    qv = c.queue_penalty.tolist()
    E, K, I = range(L.E), range(c.K), range(c.I)
    m.utility = pyo.Objective(sense=pyo.maximize, expr=(
        sum(value[e] * m.x[e, t] for e in E for t in T)
        - sum(drop[k] * m.y[k, t] for k in K for t in T)
        - sum(wait[j] * m.q[j, t] for j in range(len(wait)) for t in T)
        - sum(b_cost[i][t] * m.b[i, t] - z_value[i][t] * m.z[i, t] for i in I for t in T)
        - sum(dc[i] * m.peak[i] for i in I)
        - sum(deg[j] * (m.ch[j, t] + m.dis[j, t]) for j in range(len(deg)) for t in T)
        - sum(tp[j] * m.short[j] for j in range(len(tp)))
        - sum(qv[i] * m.lq[i, t] for i in I for t in T if c.queueing)))


def build_pyomo(c: Compiled, relax: bool = False) -> tuple[pyo.ConcreteModel, Layout]:
    L = build_layout(c)
    m = pyo.ConcreteModel(name="optsched")
    _jobs_block(m, c, L)
    if len(L.batt):
        _battery_block(m, c, L, relax)
    _capacity_and_power_block(m, c, L)
    if c.queueing:
        _queueing_block(m, c, L)
    _objective(m, c, L)
    if not relax:
        for v in m.n.values():
            v.domain = pyo.NonNegativeIntegers
    return m, L


def standard_form_to_highs(sf) -> highspy.HighsLp:
    """Pyomo's standard form (mixed rows, objective sense kept) as a HiGHS model."""
    cols = sf.columns
    kind = np.array([bound for _, bound in sf.rows])
    rhs = np.asarray(sf.rhs, float)
    return highs_lp(
        np.asarray(sf.c.toarray()[0], float),
        np.array([-np.inf if v.lb is None else v.lb for v in cols], float),
        np.array([np.inf if v.ub is None else v.ub for v in cols], float),
        np.where(kind == 1, -np.inf, rhs), np.where(kind == -1, np.inf, rhs),  # 1: <=, -1: >=
        sf.A, np.array([v.is_integer() for v in cols]), maximize=True,
        offset=float(sf.c_offset[0]))


def solve_pyomo(c: Compiled, relax: bool = False, time_limit: float | None = None,
                mip_gap: float = MIP_GAP) -> Solution:
    """Build the Pyomo model, compile it to standard form (Pyomo's own matrix compiler),
    solve that with HiGHS and load the values back into the model's variables.

    Pyomo's persistent appsi interface keeps per-variable maps that cost 1.3 GiB on the
    10-site day (34 s to set up); the standard-form compiler takes 0.4 GiB and 11 s
    (measured with Pyomo 6.10.1)."""
    t0 = time.perf_counter()
    m, L = build_pyomo(c, relax)
    sf = LinearStandardFormCompiler().write(m, mixed_form=True, set_sense=None)
    h = load_highs(standard_form_to_highs(sf), time_limit, mip_gap)
    n_vars = sum(len(v) for v in m.component_objects(pyo.Var))
    n_cons = sum(len(k) for k in m.component_objects(pyo.Constraint))
    # HiGHS has its own copy of the matrix now; the expression trees (and the rows that
    # point at them) are released before the solve, which is where the peak comes
    # (10-site MILP).
    columns, cost, offset = sf.columns, sf.c, float(sf.c_offset[0])
    del sf
    for comp in list(m.component_objects((pyo.Constraint, pyo.Objective))):
        m.del_component(comp)
    gc.collect()
    build_s = time.perf_counter() - t0
    res, solve_s = run_highs(h, relax, maximize=True)
    values = res.values
    if values is None:
        return Solution(None, None, res.status, "pyomo", relax, res.mip_gap, build_s,
                        solve_s, n_vars, n_cons, bound=res.bound)
    for v in m.component_data_objects(pyo.Var):
        v.set_value(0.0, skip_validation=True)      # variables no row or cost refers to
    for v, val in zip(columns, values.tolist(), strict=True):
        v.set_value(val, skip_validation=True)
    obj = float((cost @ values)[0] + offset)

    def get(name):
        comp = getattr(m, name, None)
        shapes = {"peak": (c.I,), "short": (len(L.batt),)}
        if comp is None:
            return np.zeros((0, c.T))
        vals = np.fromiter((v.value for v in comp.values()), float, len(comp))
        return vals.reshape(shapes.get(name, (-1, c.T)))

    return Solution(unpack(c, L, get), obj, res.status, "pyomo", relax, res.mip_gap, build_s,
                    solve_s, n_vars, n_cons, bound=res.bound)
