"""MPC over forecast scenarios (`mpc-scenarios`): a stronger non-learning baseline.

At each re-plan (every hour) the day as believed (`mpc_forecast.believed_day`: observed
slots, then forecasts from the past only) is spread into demand paths by the family's
quantile forecast (`optsched.forecast.QuantileModel`): the P10, P50 and P90 paths, weighted
0.3, 0.4, 0.3 (Swanson's rule, the usual three-point stand-in for a distribution). One LP
holds a copy of the window's model per path, maximises the weighted utility, and ties the
copies' decisions of the current slot together (non-anticipativity: the slot being decided
cannot depend on which path comes true). The current slot is executed from that shared
decision; the rest of the hour from the paths' weighted mean plan, in shares of what is
really pending (as MPC does). The LP keeps one shape, so HiGHS re-solves it from its last
basis (warm start). A day without a fitted quantile forecast plans on the point forecast
alone (one path: mpc-forecast).

It re-plans every slot, so only the shared (non-anticipative) decision is ever executed,
over a 12-hour window (144 slots) rather than MPC's 24: the three-path LP is three times
MPC's, and 12 hours cover the 2-hour batch slack and the evening peak ahead many times.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

from optsched.env.core import BatchedCore
from optsched.errors import ScenarioError
from optsched.forecast import QuantileModel, family_quantiles
from optsched.oracle.highs import highs_lp, new_highs
from optsched.oracle.matrix import MatrixModel, build_matrix
from optsched.policies.mpc_forecast import MPCForecast
from optsched.scenario.compile import Compiled, backlog_cap

PER_SLOT = ("x", "y", "q", "n", "ch", "dis", "soc", "r", "b", "z")


def quantile_model(c: Compiled) -> QuantileModel | None:
    from optsched.scenario.history import identify

    who = identify(c)
    if who is None:
        return None
    try:
        return family_quantiles(who[0])
    except ScenarioError:
        return None


@dataclass
class MPCScenarios(MPCForecast):
    horizon: int = 144
    levels: tuple[float, ...] = (0.1, 0.5, 0.9)
    weights: tuple[float, ...] = (0.3, 0.4, 0.3)
    name: str = "mpc-scenarios"

    def _paths(self, c: Compiled, t: int, j: int) -> tuple[list[np.ndarray], list[float]]:
        point = self._forecasters[j].point(c.arrivals[:, :t + 1], c.T)
        qm = quantile_model(c)
        if qm is None:
            return [point], [1.0]
        return ([qm.quantile(point, t + 1, lv, c.dt_h) for lv in self.levels],
                list(self.weights))

    def _window(self, core: BatchedCore, j: int, day: np.ndarray
                ) -> tuple[MatrixModel, np.ndarray, int]:
        """The window's model for one demand path `day` [K, T] (as MPC builds its own)."""
        c, t = core.compiled(j), core.t
        W = min(self.horizon, c.T)
        end = min(t + W, c.T)
        real = end - t

        def padded(a: np.ndarray, fill: float = 0.0) -> np.ndarray:
            out = np.full(a.shape[:-1] + (W,), fill)
            out[..., :real] = a
            return out

        arrivals = padded(day[:, t:end])
        arrivals[:, 0] += core.q[:, j]
        window = dataclasses.replace(
            c, T=W, arrivals=arrivals,
            backlog_cap=padded(backlog_cap(day, c.max_wait)[:, t:end]),
            price=padded(c.price[:, t:end]), renewable=padded(c.renewable[:, t:end]),
            pue=padded(c.pue[:, t:end], 1.0), ci=padded(c.ci[:, t:end]),
            soc0=core.soc[:, j].copy(),
            terminal_price=np.maximum(c.price[:, t:end].max(axis=1), 0.0) / 1000.0 / c.eta_c)
        if real < W:
            window.pue[:, real:] = window.pue[:, real - 1:real]
        m = build_matrix(window, relax=True, soc_ref=c.soc0, peak_floor=core.peak[:, j])
        for name in ("x", "n", "ch", "dis", "r", "b", "z"):
            m.col_hi[m.blocks[name]].reshape(m.shapes[name])[..., real:] = 0.0
        return m, arrivals, real

    def _solve(self, core: BatchedCore, j: int) -> dict:
        c, t = core.compiled(j), core.t
        paths, weights = self._paths(c, t, j)
        parts = [self._window(core, j, p) for p in paths]
        ms = [p[0] for p in parts]
        n = ms[0].n_vars
        A = sp.block_diag([m.A for m in ms], format="csr")
        A = sp.vstack([A, _non_anticipativity(ms[0], len(ms))], format="csr")
        n_na = A.shape[0] - sum(m.n_cons for m in ms)
        cost = np.concatenate([w * m.cost for w, m in zip(weights, ms, strict=True)])
        col_lo = np.concatenate([m.col_lo for m in ms])
        col_hi = np.concatenate([m.col_hi for m in ms])
        row_lo = np.concatenate([m.row_lo for m in ms] + [np.zeros(n_na)])
        row_hi = np.concatenate([m.row_hi for m in ms] + [np.zeros(n_na)])
        def cold() -> highspy.Highs:
            fresh = new_highs(None)
            fresh.passModel(highs_lp(-cost, col_lo, col_hi, row_lo, row_hi, A,
                                     np.zeros(len(cost), bool)))
            return fresh

        h, A_prev = self._highs.get(j, (None, None))
        warm = not (h is None or A_prev is None or A_prev.shape != A.shape
                    or (A_prev != A).nnz)
        if warm:
            cols = np.arange(len(cost), dtype=np.int32)
            rows = np.arange(A.shape[0], dtype=np.int32)
            h.changeColsCost(len(cost), cols, -cost)
            h.changeColsBounds(len(cost), cols, col_lo, col_hi)
            h.changeRowsBounds(A.shape[0], rows, row_lo, row_hi)
        else:
            h = cold()
        t0 = time.perf_counter()
        h.run()
        if warm and h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            h = cold()           # a warm start can stall numerically: solve from scratch
            h.run()
        self._highs[j] = (h, A)
        self.solve_seconds.append(time.perf_counter() - t0)
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(f"scenario MPC window at slot {t} did not solve: "
                               f"{h.getModelStatus()}")
        v = np.asarray(h.getSolution().col_value)
        plans = [_plan(c, m, v[s * n:(s + 1) * n], arr, real)
                 for s, (m, arr, real) in enumerate(parts)]
        return {key: sum(w * p[key] for w, p in zip(weights, plans, strict=True))
                for key in plans[0]}


def _non_anticipativity(m: MatrixModel, copies: int) -> sp.csr_matrix:
    """Rows v_0[col] - v_s[col] = 0 for every per-slot column of the window's first slot."""
    first = np.concatenate([np.arange(m.n_vars)[m.blocks[name]].reshape(m.shapes[name])[..., 0]
                            .ravel() for name in PER_SLOT if name in m.blocks])
    n, k = m.n_vars, len(first)
    if copies == 1:
        return sp.csr_matrix((0, n))
    rows, cols, vals = [], [], []
    for s in range(1, copies):
        r = np.arange(k) + (s - 1) * k
        rows += [r, r]
        cols += [first, first + s * n]
        vals += [np.ones(k), -np.ones(k)]
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=((copies - 1) * k, copies * n))


def _plan(c: Compiled, m: MatrixModel, v: np.ndarray, arrivals: np.ndarray, real: int
          ) -> dict:
    """One path's plan in the form MPC executes (x, ch, dis, y, pending per slot)."""
    L, W = m.layout, arrivals.shape[1]
    x = np.zeros((c.K, c.O, W))
    x[L.pair_k, L.pair_o] = np.maximum(m.block(v, "x"), 0.0)
    ch, dis = np.zeros((c.I, W)), np.zeros((c.I, W))
    ch[L.batt], dis[L.batt] = m.block(v, "ch"), m.block(v, "dis")
    q = np.zeros((c.K, W))
    q[L.deferrable] = m.block(v, "q")
    pending = arrivals + np.concatenate([np.zeros((c.K, 1)), q[:, :-1]], axis=1)
    return {"x": x[..., :real], "ch": ch[:, :real], "dis": dis[:, :real],
            "y": np.maximum(m.block(v, "y"), 0.0)[:, :real], "pending": pending[:, :real]}
