"""Per-slot dispatch by capacity prices: the one-slot LP of MODEL.md, solved for every
copy of a batch (compiled: `dispatch_kernel`), so that a policy can decide only what
needs look-ahead.

Within one slot the model is a multiple-choice knapsack per site: every pending job picks
an option (site, steps, clock) or stays unserved, and each site's GPU-seconds are
limited. Its Lagrangian relaxation prices a site's GPU-second at mu[i]: a job takes the
option with the best net value `value - energy cost - mu * gpu_s` and is served when that
beats staying unserved, which is worth -drop_penalty for jobs that must leave now and a
continuation value (chosen by the caller: the look-ahead) for deferrable jobs that may
still wait. The choice is smoothed (a softmax at temperature TAU, a thousandth of a job's
revenue: it costs at most TAU * ln(options) per job), which makes the dual smooth and
convex in mu, so a projected Newton method with a backtracking line search finds the
prices at which every priced site is exactly full, copy by copy. (Gauss-Seidel
bisection per site, tried first, left sites up to 40% over capacity after 8 sweeps:
sites that can serve each other's classes are near-perfect substitutes.) Energy is
priced at the slot's grid price times PUE, the idle draw of the GPUs a job keeps on
included; renewables, demand charges and the battery are left to the caller.

`DispatchCore` is the environment with this dispatch inside its action: the policy
chooses the battery power per site and, optionally, what a waiting job of each
deferrable class is worth; the plan goes through the same repair as every other plan.
"""

from __future__ import annotations

import numpy as np

from optsched.env import dispatch_kernel
from optsched.env.core import BatchedCore, EnvConfig
from optsched.env.dispatch_kernel import CAP_RTOL  # noqa: F401 - re-exported

TAU = 1e-3                 # choice temperature, a share of each class's revenue per job


class Dispatcher:
    """Static tables of one core's structure; `__call__` dispatches a slot for its batch
    (`dispatch_kernel.dispatch`, one compiled pass over the copies)."""

    def __init__(self, core: BatchedCore):
        c = self.c = core.c
        idle_kwh = c.idle_kw[c.opt_site] * c.gpu_s / (3600.0 * c.util_cap[c.opt_site])
        self.kwh = c.busy_kwh + idle_kwh                                 # [O] per job
        self.cap = c.gpus * c.util_cap * c.dt_s                          # [I]
        ratio = np.where(c.eligible, (c.value + c.drop_penalty[:, None]) / c.gpu_s, 0.0)
        self.mu_max = np.array([max(ratio[:, c.opt_site == i].max(), 0.0) for i in
                                range(c.I)]) * 1.01 + 1e-9               # [I]
        self.tau = TAU * c.revenue_per_job                               # [K]
        self.curv_floor = 1e-9 * self.cap / self.mu_max                  # [I]
        # The eligible (class, option) pairs by class and site, in option order.
        k, o = np.nonzero(c.eligible)
        block = k * c.I + c.opt_site[o]
        order = np.argsort(block, kind="stable")
        k, o, block = k[order], o[order], block[order]
        self.bptr = np.searchsorted(block, np.arange(c.K * c.I + 1)).astype(np.int64)
        self.e_opt, self.e_site = o.astype(np.int64), c.opt_site[o].astype(np.int64)
        self.e_val, self.e_kwh = c.value[k, o].astype(float), self.kwh[o]
        self.e_gs = c.gpu_s[o].astype(float)
        self.e_g = self.e_gs / self.tau[k]

    def __call__(self, core: BatchedCore, cont: np.ndarray,
                 prices: np.ndarray | None = None) -> np.ndarray:
        """Jobs x[B, K, O] for the core's current slot. cont[K, B]: the value of leaving
        a deferrable job waiting (ignored for jobs that cannot wait). prices [B, I]: the
        capacity prices to start from, overwritten with those found (a warm start);
        None starts from 0."""
        pending = core.q + core.series_at("arrivals")                      # [K, B]
        may_wait = np.minimum(pending, core.series_at("backlog_cap")) * core.defer
        usd_kwh = core.series_at("pue") * core.series_at("price") / 1000.0  # [I, B]
        x = np.zeros((core.B, self.c.K, self.c.O))
        self.iterations = np.empty(core.B, dtype=np.int64)     # Newton's, per copy
        c2 = np.ascontiguousarray
        dispatch_kernel.dispatch(
            c2(pending.T), c2(may_wait.T), c2(usd_kwh.T),
            c2(np.broadcast_to(cont, pending.shape).T, dtype=float), self.bptr, self.e_opt,
            self.e_site, self.e_val, self.e_kwh, self.e_g, self.e_gs, self.tau,
            np.asarray(self.c.drop_penalty, dtype=float), self.cap, self.mu_max,
            self.curv_floor, np.zeros((core.B, self.c.I)) if prices is None else prices, x,
            self.iterations)
        return x


def continuation(c, a: np.ndarray) -> np.ndarray:
    """Actions a[K, B] in [-1, 1] -> value of a waiting job [K, B]: -1 is the drop
    penalty (serve anything worth more than dropping), 0 is minus one slot's wait cost
    (wait only when capacity is priced out), +1 is the class's best value (wait unless
    the job can be served at its best)."""
    drop = -c.drop_penalty[:, None]
    wait = -c.wait_cost[:, None]
    best = np.where(c.eligible, c.value, -np.inf).max(axis=1)[:, None]
    return np.where(a < 0, wait + a * (wait - drop), wait + a * (best - wait))


class DispatchCore(BatchedCore):
    """Action per copy in [-1, 1]: for each deferrable class the continuation value of
    its waiting jobs (see `continuation`; left out with `waiting=False`, which fixes it
    at 0), then per site the battery power (> 0 charge, a share of ch_max; < 0
    discharge, a share of dis_max). The zero action is the `dispatch` baseline with the
    battery idle.

    With `warm_start`, each copy's price search starts from the prices it found in the
    previous slot (0 at the start of an episode): ~3 Newton steps instead of ~11 on
    jemas-3 (the kernel ~4x faster), but the search then ends at another point within
    CAP_RTOL of full, so plans differ from the cold start's by up to ~1e-3 of the
    pending jobs and depend on the copy's past slots."""

    def __init__(self, bank, batch: int, config: EnvConfig | None = None,
                 waiting: bool = True, warm_start: bool = False):
        super().__init__(bank, batch, config or EnvConfig())
        self.deferrable_rows = np.flatnonzero(self.is_deferrable) if waiting else \
            np.zeros(0, dtype=np.int64)
        self.action_dim = len(self.deferrable_rows) + self.I
        self.dispatcher = Dispatcher(self)
        self.warm_start = warm_start
        self.prices = np.zeros((self.B, self.I))        # per copy, with warm_start

    def reset(self, days=None, seed: int | None = None) -> np.ndarray:
        self.prices = np.zeros((self.B, self.I))
        return super().reset(days, seed)

    def snapshot(self) -> dict:
        return {**super().snapshot(), "prices": self.prices.copy()}

    def restore(self, s: dict) -> None:
        super().restore(s)
        self.prices = np.array(s.get("prices", np.zeros((self.B, self.I))), dtype=float)

    def plan_from_action(self, core: BatchedCore, action: np.ndarray,
                         prices: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, battery kW, drops) of `core`'s current slot for high-level actions [B, A];
        prices as for `Dispatcher`."""
        a = np.clip(np.asarray(action, dtype=float).T, -1.0, 1.0)      # [A, B]
        n = len(self.deferrable_rows)
        wait = np.zeros((self.K, core.B))
        wait[self.deferrable_rows] = a[:n]
        cont = np.where(self.defer > 0, continuation(self.c, wait), -np.inf)
        bat = a[n:]
        battery_kw = np.where(bat > 0, bat * self.col["ch_max"], bat * self.col["dis_max"])
        return (self.dispatcher(core, cont, prices), battery_kw.T,
                np.zeros((core.B, self.K)))

    def step(self, action: np.ndarray):
        prices = self.prices if self.warm_start else None
        return self.step_plan(*self.plan_from_action(self, action, prices))
