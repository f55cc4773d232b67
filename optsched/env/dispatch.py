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
deferrable class is worth and (`provision=True`, the `provision-battery` action space)
per site how much of the slot's unseen demand to plan for and the GPU headroom to commit
over that plan; the plan goes through the same repair as every other plan.

With provisioning on (`Compiled.commit`) the slot's arrivals are not seen when it is
decided: as the `dispatch` baseline, the dispatch plans on the point forecast of them
(`Known(core, lag=1)`) and the GPUs committed are provisioned for the forecast's
`quantile` (0.9, `optsched.env.known.provision_for`), both read from tables built once
per bank (`believed_slots`), times the headroom.

`DispatchCore.step` runs all of a slot in one compiled pass
(`dispatch_kernel.step_dispatch`): the numbers of `plan_from_action` on `known()` and
`high()` followed by `step_plan`, which stay the path for any other view (a `Known`
rollout, tests), to the last bit.
"""

from __future__ import annotations

import functools

import numpy as np

from optsched.env import dispatch_kernel
from optsched.env.core import BatchedCore, EnvConfig
from optsched.env.dispatch_kernel import CAP_RTOL  # noqa: F401 - re-exported
from optsched.env.known import provision_for

TAU = 1e-3                 # choice temperature, a share of each class's revenue per job
BELIEF = 4.0               # belief level b in [-1, 1]: the slot's believed arrivals x BELIEF**b
HEADROOM = 2.0             # headroom level h in [-1, 1]: the plan's GPUs x HEADROOM**h


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
        self.tables = (self.bptr, self.e_opt, self.e_site, self.e_val, self.e_kwh, self.e_g,
                       self.e_gs, self.tau, np.asarray(c.drop_penalty, dtype=float),
                       self.cap, self.mu_max, self.curv_floor)    # dispatch_kernel's

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
            c2(np.broadcast_to(cont, pending.shape).T, dtype=float), self.tables,
            np.zeros((core.B, self.c.I)) if prices is None else prices, x, self.iterations)
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


def believed_slots(bank, quantile: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Per bank day and slot, the slot's arrivals and backlog caps [D, T, K] as
    `Known(core, lag=1, quantile)` presents them when the slot starts (the observed
    slots before it, the slot itself forecast at `quantile`): a belief depends only on
    the day and the slot, so a table replaces Known's per-copy forecasts in training."""
    from optsched.env.known import believed_day, quantile_model
    from optsched.forecast import DayForecaster

    D, K, T = bank.arrivals.shape
    arrivals, caps = np.empty((D, T, K)), np.empty((D, T, K))
    for j in range(D):
        c = bank.day(j)
        forecaster, qm = DayForecaster.for_day(c), quantile_model(c)
        for t in range(T):
            b = believed_day(c, t, forecaster, t, quantile, qm)
            arrivals[j, t], caps[j, t] = b.arrivals[:, t], b.backlog_cap[:, t]
    return arrivals, caps


class _Believed:
    """The core with its current slot's arrivals and backlog caps as believed (what the
    dispatch reads of them; everything else is the core's)."""

    def __init__(self, core: BatchedCore, arrivals: np.ndarray, backlog_cap: np.ndarray):
        self._core, self._seen = core, {"arrivals": arrivals, "backlog_cap": backlog_cap}

    def __getattr__(self, name: str):
        return getattr(self._core, name)

    def series_at(self, key: str, t: int | None = None) -> np.ndarray:
        if key in self._seen and t in (None, self._core.t):
            return self._seen[key]
        if key in self._seen:
            raise ValueError("only the current slot's belief is kept")
        return self._core.series_at(key, t)


class DispatchCore(BatchedCore):
    """Action per copy in [-1, 1]: for each deferrable class the continuation value of
    its waiting jobs (see `continuation`; left out with `waiting=False`, which fixes it
    at 0), then per site the battery power (> 0 charge, a share of ch_max; < 0
    discharge, a share of dis_max), then with `provision` per site a belief level b
    (the slot's believed arrivals of the classes homed at the site are scaled by
    BELIEF**b before the dispatch plans on them) and a headroom level h (the GPUs
    committed are round(HEADROOM**h x the repair's GPUs for the plan), at most the
    site's GPUs). The zero action is the `dispatch` baseline with the battery
    idle, in provisioning mode too (the same point belief, GPUs for the same `quantile`).

    With `warm_start`, each copy's price search starts from the prices it found in the
    previous slot (0 at the start of an episode): ~3 Newton steps instead of ~11 on
    jemas-3 (the kernel ~4x faster), but the search then ends at another point within
    CAP_RTOL of full, so plans differ from the cold start's by up to ~1e-3 of the
    pending jobs and depend on the copy's past slots."""

    def __init__(self, bank, batch: int, config: EnvConfig | None = None,
                 waiting: bool = True, warm_start: bool = False, provision: bool = False,
                 quantile: float | None = 0.9):
        super().__init__(bank, batch, config or EnvConfig())
        self.deferrable_rows = np.flatnonzero(self.is_deferrable) if waiting else \
            np.zeros(0, dtype=np.int64)
        self.provisions = bool(provision)
        if self.provisions and not self.commit:
            raise ValueError("provisioning levels need a scenario with provisioning on "
                             "([provisioning])")
        self.action_dim = len(self.deferrable_rows) + self.I * (3 if provision else 1)
        self.dispatcher = Dispatcher(self)
        self.warm_start = warm_start
        self.quantile = quantile
        self._belief: dict = {}         # quantile -> believed_slots, built on first use
        self.prices = np.zeros((self.B, self.I))        # per copy, with warm_start

    def reset(self, days=None, seed: int | None = None) -> np.ndarray:
        self.prices = np.zeros((self.B, self.I))
        return super().reset(days, seed)

    def snapshot(self) -> dict:
        return {**super().snapshot(), "prices": self.prices.copy()}

    def restore(self, s: dict) -> None:
        super().restore(s)
        self.prices = np.array(s.get("prices", np.zeros((self.B, self.I))), dtype=float)

    def _table(self, quantile: float | None) -> tuple[np.ndarray, np.ndarray]:
        """The believed arrivals and backlog caps [D, T, K] at `quantile` (None: the
        point forecast), built on first use."""
        if quantile not in self._belief:
            self._belief[quantile] = tuple(np.ascontiguousarray(v) for v in
                                           believed_slots(self.bank, quantile))
        return self._belief[quantile]

    def _view(self, quantile: float | None) -> _Believed:
        arrivals, caps = self._table(quantile)
        return _Believed(self, arrivals[self.day, self.t].T.copy(),
                         caps[self.day, self.t].T.copy())

    def known(self) -> BatchedCore | _Believed:
        """What the dispatch may read at the current slot's start: the core itself with
        provisioning off, else the core with the slot's arrivals at the point forecast."""
        return self._view(None) if self.commit else self

    def high(self) -> _Believed | None:
        """The slot's arrivals at the provisioning quantile (None: provisioning off or no
        quantile; the repair's rule provisions for the plan)."""
        return self._view(self.quantile) if self.commit and self.quantile is not None \
            else None

    def decode(self, action: np.ndarray) -> tuple:
        """High-level actions [B, A] -> (continuation values [K, B], battery kW [B, I],
        then with provisioning levels, else None: the belief scale of each class's
        arrivals [K, B], the headroom levels [B, I] and their factors HEADROOM**h)."""
        a = np.clip(np.asarray(action, dtype=float).T, -1.0, 1.0)      # [A, B]
        n = len(self.deferrable_rows)
        wait = np.zeros((self.K, a.shape[1]))
        wait[self.deferrable_rows] = a[:n]
        cont = np.where(self.defer > 0, continuation(self.c, wait), -np.inf)
        bat = a[n:n + self.I]
        battery_kw = np.where(bat > 0, bat * self.col["ch_max"], bat * self.col["dis_max"]).T
        if not self.provisions:
            return cont, battery_kw, None, None, None
        scale = BELIEF ** a[n + self.I:n + 2 * self.I][self.c.home]         # [K, B]
        headroom = a[n + 2 * self.I:].T                                     # [B, I]
        return cont, battery_kw, scale, headroom, HEADROOM ** headroom

    def plan_from_action(self, core: BatchedCore, action: np.ndarray,
                         prices: np.ndarray | None = None, high=None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """(x, battery kW, drops, GPUs committed or None: the repair's rule) of `core`'s
        current slot for high-level actions [B, A]; `core` is what the policy knows (with
        provisioning: `known()`, or a `Known` view at the point forecast), `high` the
        same at the provisioning quantile (`high()`, or a `Known` view; None: the
        repair's rule); prices as for `Dispatcher`."""
        cont, battery_kw, scale, headroom, head_f = self.decode(action)
        seen = core
        if scale is not None:
            arrivals, caps = core.series_at("arrivals"), core.series_at("backlog_cap")
            # The slot's own arrivals enter its backlog cap (a window sum) once, where any.
            seen = _Believed(core, arrivals * scale,
                             caps + (scale - 1.0) * arrivals * (caps > 0))
        x = self.dispatcher(seen, cont, prices)
        gpus = None
        if high is not None:
            gpus = provision_for(core, seen, high, x, battery_kw)
        elif self.provisions:
            gpus = core.provision(x, battery_kw)
        if headroom is not None:
            gpus = np.where(headroom == 0.0, gpus, np.minimum(
                np.floor(gpus * head_f + 0.5), self.c.gpus[None, :]))
        return x, battery_kw, np.zeros((core.B, self.K)), gpus

    def step(self, action: np.ndarray):
        """One slot: `plan_from_action` on what is known at its start (`known()`,
        `high()`), then `step_plan`, in one compiled pass (`dispatch_kernel.step_dispatch`;
        tests/test_dispatch.py keeps that two-step path as the reference)."""
        self.running()
        a = np.asarray(action, dtype=float)
        if a.shape != (self.B, self.action_dim):
            raise ValueError(f"action shape must be {(self.B, self.action_dim)}, got "
                             f"{a.shape}")
        if not np.isfinite(a).all():    # numba's min/max and numpy's treat NaN apart
            raise ValueError("action must be finite")
        cont, battery_kw, scale, headroom, head_f = self.decode(a)
        none = np.zeros((0, 0, 0))
        seen_arr, seen_cap = self._table(None) if self.commit else (none, none)
        high = self._table(self.quantile)[0] if self.commit and self.quantile is not None \
            else none
        prices = self.prices if self.warm_start else np.zeros((self.B, self.I))
        iters = self.dispatcher.iterations = np.empty(self.B, dtype=np.int64)
        P = self.S * self.F
        x, *out = self._outputs((self.B, self.K, self.I, P), x_written=self.cfg.record)
        empty = np.zeros((0, 0))
        c2 = np.ascontiguousarray
        dispatch_kernel.step_dispatch(
            seen_arr, seen_cap, high, empty if scale is None else c2(scale.T), c2(cont.T),
            c2(battery_kw), empty if headroom is None else c2(headroom),
            empty if head_f is None else c2(head_f), self.dispatcher.tables, prices, iters,
            self.c.interactive, self.fallback, self.commit, self._plan_opt, self.t,
            self.t == self.T - 1, self.day, self.ser, self.terminal_price, self.site_par,
            self.cls_par, self.tab_arr, self.c.O, len(self.tier_rows), self.c.dt_h,
            self.c.carbon_price, self._q, self._st, x, *out[:2], self.cfg.record, *out[2:])
        return self._finish(self._plan_opt, x, *out)


# The action spaces a learned policy acts in (`optsched train --action`): the trainer
# builds its environment from this table and a saved policy its planner.
ACTIONS = {"dispatch": DispatchCore,
           "dispatch-battery": functools.partial(DispatchCore, waiting=False),
           "provision-battery": functools.partial(DispatchCore, waiting=False,
                                                  provision=True),
           "provision-dispatch": functools.partial(DispatchCore, provision=True),
           "direct": BatchedCore}
