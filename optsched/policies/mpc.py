"""Model-predictive control: re-solve the oracle's model over a rolling window.

At every re-planning slot the LP of MODEL.md is built for the next `horizon` slots from
the current state (backlog, state of charge, import peak so far) and forecasts, solved by
HiGHS, and its plan is executed through the environment's repair (`step_plan`) until the
next re-plan. The current slot is known exactly; later slots come from forecasts, perfect
or with a multiplicative lognormal error whose sd grows with the square root of the lead
time (`error` at one hour ahead). Each day's errors come from its own generator, seeded by
(`seed`, the day's series) (policies.base.day_rng), so a day's result does not depend on
the other days rolled with it. The terminal state-of-charge rule applies at every
window's end, so no window plans to empty the battery. `myopic-lp` is the one-slot
window re-solved every slot: no look-ahead at all.

With provisioning (docs/model.md, "Provisioning before arrivals") `mpc` and `mpc-noisy`
keep reading the real day (`foresight`: perfect forecasts, or the truth with noise, an
upper-bound style reference), while `myopic-lp` plans on what is known at the slot's
start (optsched.env.known) with the slot's arrivals at the forecast's 90th percentile.
The window's LP carries the cold starts from the GPUs on in the last slot; the repair
commits the GPUs the executed plan needs (`BatchedCore.provision`), or with
`commit_gpus` the plan's own GPUs (mpc-scenarios).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import highspy
import numpy as np

from optsched.env.core import BatchedCore
from optsched.env.kernel import ROUND_TOL
from optsched.oracle.highs import highs_lp, new_highs
from optsched.oracle.matrix import MatrixModel, build_matrix
from optsched.scenario.compile import Compiled

FORECAST = ("arrivals", "price", "renewable")


@dataclass
class MPC:
    horizon: int = 288               # slots in each window (24 h of 5-minute slots)
    replan_every: int = 12           # re-solve every hour
    error: float = 0.0               # forecast error sd at one hour ahead (0 = perfect)
    seed: int = 0
    name: str = "mpc"
    solve_seconds: list[float] = field(default_factory=list)
    foresight: bool = True           # with provisioning: plans on the real day
    provision_quantile: float | None = None  # else: the level it sees the slot at
    commit_gpus: bool = False        # with provisioning: commit the plan's GPUs

    def __post_init__(self):
        self._plans: dict[int, tuple[int, dict]] = {}
        self._highs: dict[int, tuple] = {}
        self._rngs: dict[int, np.random.Generator] = {}

    def plan(self, core: BatchedCore) -> tuple[np.ndarray, ...]:
        """(x [B, K, O], battery kW [B, I], drops [B, K]) for the core's current slot;
        with `commit_gpus` and provisioning on, also the plan's GPUs [B, I]."""
        t, B = core.t, core.B
        c0 = core.c
        x = np.zeros((B, c0.K, c0.O))
        bat = np.zeros((B, c0.I))
        drop = np.zeros((B, c0.K))
        gpus = np.zeros((B, c0.I))
        if t == 0:
            from optsched.policies.base import day_rng

            self._plans.clear()
            self._highs.clear()
            self._rngs = {j: day_rng(self.seed, core.compiled(j)) for j in range(B)}
        for j in range(B):
            start, plan = self._plans.get(j, (None, None))
            if plan is None or t - start >= min(self.replan_every, plan["x"].shape[-1]) \
                    or t == 0:
                plan = self._solve(core, j)
                start = t
                self._plans[j] = (start, plan)
            k = t - start
            # Executed in shares of what is pending: forecasts miss the actual arrivals,
            # so the plan's option mix and drop share scale to the jobs really waiting.
            actual = core.q[:, j] + core.compiled(j).arrivals[:, t]
            with np.errstate(divide="ignore", invalid="ignore"):
                factor = np.where(plan["pending"][:, k] > 0,
                                  actual / plan["pending"][:, k], 0.0)
            x[j] = plan["x"][:, :, k] * factor[:, None]
            bat[j] = plan["ch"][:, k] - plan["dis"][:, k]
            drop[j] = plan["y"][:, k] * factor
            gpus[j] = np.ceil(plan["n"][:, k] - ROUND_TOL)      # the LP's n is relaxed
        if self.commit_gpus and c0.commit:
            return x, bat, drop, np.clip(gpus, 0.0, c0.gpus)
        return x, bat, drop

    def _forecast(self, c: Compiled, t: int, end: int, rng: np.random.Generator
                  ) -> dict[str, np.ndarray]:
        out = {}
        lead_h = (np.arange(t, end) - t) * c.dt_h
        for key in FORECAST:
            series = getattr(c, key)[..., t:end].copy()
            if self.error > 0:
                sd = self.error * np.sqrt(lead_h)
                series *= np.exp(rng.normal(0.0, 1.0, series.shape) * sd - sd**2 / 2)
            out[key] = series
        return out

    def _solve(self, core: BatchedCore, j: int) -> dict:
        """Solve the window from the current slot on the forecasts."""
        c, t = core.compiled(j), core.t
        end = min(t + min(self.horizon, c.T), c.T)
        fc = self._forecast(c, t, end, self._rngs[j])
        m, arrivals, real = self._window(core, j, c, {**fc,
                                                      "backlog_cap": c.backlog_cap[:, t:end]})
        v = self._run(j, t, m.A, m.cost, m.col_lo, m.col_hi, m.row_lo, m.row_hi)
        return window_plan(c, m, v, arrivals, real)

    def _window(self, core: BatchedCore, j: int, c: Compiled, series: dict
                ) -> tuple[MatrixModel, np.ndarray, int]:
        """The window's LP from the current slot, with `series` (arrivals, backlog_cap,
        price, renewable over the window's real slots). Every window has the same length
        and structure (slots past the horizon's end are padding with every decision fixed
        at 0), so after the first solve only bounds, costs and right-hand sides change."""
        t = core.t
        W = min(self.horizon, c.T)
        real = min(t + W, c.T) - t

        def padded(a: np.ndarray, fill: float = 0.0) -> np.ndarray:
            out = np.full(a.shape[:-1] + (W,), fill)
            out[..., :real] = a
            return out

        arrivals = padded(series["arrivals"])
        arrivals[:, 0] += core.q[:, j]                # the backlog waits in the first slot
        window = dataclasses.replace(
            c, T=W, arrivals=arrivals, backlog_cap=padded(series["backlog_cap"]),
            price=padded(series["price"]), renewable=padded(series["renewable"]),
            pue=padded(c.pue[:, t:t + real], 1.0), ci=padded(c.ci[:, t:t + real]),
            soc0=core.soc[:, j].copy(),
            terminal_price=np.maximum(series["price"].max(axis=1), 0.0) / 1000.0 / c.eta_c)
        if real < W:
            # The padding repeats the last real PUE, so the matrix never changes.
            window.pue[:, real:] = window.pue[:, real - 1:real]
        m = build_matrix(window, relax=True, soc_ref=c.soc0, peak_floor=core.peak[:, j],
                         n_prev=core.n_prev[:, j] if c.commit else None)
        for name in ("x", "n", "ch", "dis", "r", "b", "z"):
            m.col_hi[m.blocks[name]].reshape(m.shapes[name])[..., real:] = 0.0
        return m, arrivals, real

    def _run(self, j: int, t: int, A, cost: np.ndarray, col_lo: np.ndarray,
             col_hi: np.ndarray, row_lo: np.ndarray, row_hi: np.ndarray) -> np.ndarray:
        """Maximise cost @ v over the LP: copy j's persistent HiGHS object re-solves from
        its previous basis when only bounds, costs and right-hand sides changed (warm
        start), and from scratch when the matrix changed or a warm start stalls."""
        import time

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
            raise RuntimeError(f"{self.name} window at slot {t} did not solve: "
                               f"{h.getModelStatus()}")
        return np.asarray(h.getSolution().col_value)


def window_plan(c: Compiled, m: MatrixModel, v: np.ndarray, arrivals: np.ndarray, real: int
                ) -> dict:
    """A solved window's plan in the form MPC executes (x, ch, dis, y, GPUs on n, pending
    per slot)."""
    L, W = m.layout, arrivals.shape[1]
    x = np.zeros((c.K, c.O, W))
    x[L.pair_k, L.pair_o] = np.maximum(m.block(v, "x"), 0.0)
    ch, dis = np.zeros((c.I, W)), np.zeros((c.I, W))
    ch[L.batt], dis[L.batt] = m.block(v, "ch"), m.block(v, "dis")
    q = np.zeros((c.K, W))
    q[L.deferrable] = m.block(v, "q")
    pending = arrivals + np.concatenate([np.zeros((c.K, 1)), q[:, :-1]], axis=1)
    return {"x": x[..., :real], "ch": ch[:, :real], "dis": dis[:, :real],
            "y": np.maximum(m.block(v, "y"), 0.0)[:, :real],
            "n": np.maximum(m.block(v, "n"), 0.0)[:, :real], "pending": pending[:, :real]}


def myopic_lp() -> MPC:
    return MPC(horizon=1, replan_every=1, name="myopic-lp", foresight=False,
               provision_quantile=0.9)


def mpc_noisy(error: float = 0.15, seed: int = 0) -> MPC:
    """MPC with realistic day-ahead-style forecast error (15% sd at one hour ahead)."""
    return MPC(error=error, seed=seed, name="mpc-noisy")
