"""Per-slot dispatch by capacity prices: the one-slot LP of MODEL.md, solved for a whole
batch at once in numpy, so that a policy can decide only what needs look-ahead.

Within one slot the model is a multiple-choice knapsack per site: every pending job picks
an option (site, steps, clock) or stays unserved, and each site's GPU-seconds are
limited. Its Lagrangian relaxation prices a site's GPU-second at mu[i]: a job takes the
option with the best net value `value - energy cost - mu * gpu_s` and is served when that
beats staying unserved, which is worth -drop_penalty for jobs that must leave now and a
continuation value (chosen by the caller: the look-ahead) for deferrable jobs that may
still wait. The choice is smoothed (a softmax at temperature TAU, a thousandth of a job's
revenue: it costs at most TAU * ln(options) per job), which makes the dual smooth and
convex in mu, so a projected Newton method with a backtracking line search finds the
prices at which every priced site is exactly full, for all copies at once. (Gauss-Seidel
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

from optsched.env.core import BatchedCore, EnvConfig

NEWTON_STEPS = 60
LINE_SEARCH = 40
SLIVER = 1e-3              # jobs; smaller shares of an option are left unserved
CAP_RTOL = 1e-4            # a priced site is full to this share of its capacity
TAU = 1e-3                 # choice temperature, a share of each class's revenue per job


class Dispatcher:
    """Static tables of one core's structure; `__call__` dispatches a slot for its batch."""

    def __init__(self, core: BatchedCore):
        c = self.c = core.c
        self.site = c.opt_site                                           # [O]
        idle_kwh = c.idle_kw[c.opt_site] * c.gpu_s / (3600.0 * c.util_cap[c.opt_site])
        self.kwh = c.busy_kwh + idle_kwh                                 # [O] per job
        self.value = np.where(c.eligible, c.value, -np.inf)[:, :, None]  # [K, O, 1]
        self.cap = (c.gpus * c.util_cap * c.dt_s)[:, None]               # [I, 1]
        ratio = np.where(c.eligible, (c.value + c.drop_penalty[:, None]) / c.gpu_s, 0.0)
        self.mu_max = np.array([max(ratio[:, c.opt_site == i].max(), 0.0) for i in
                                range(c.I)])[:, None] * 1.01 + 1e-9      # [I, 1]
        self.tau = (TAU * c.revenue_per_job)[:, None]                    # [K, 1]
        self.g_tau = c.gpu_s[None, :, None] / self.tau[..., None]        # [K, O, 1]
        self.G = c.site_of * c.gpu_s[None]                               # [I, O]
        self.G2 = self.G * c.gpu_s[None]
        self.curv_floor = 1e-9 * self.cap / self.mu_max                  # [I, 1]

    def __call__(self, core: BatchedCore, cont: np.ndarray) -> np.ndarray:
        """Jobs x[B, K, O] for the core's current slot. cont[K, B]: the value of leaving
        a deferrable job waiting (ignored for jobs that cannot wait)."""
        c = self.c
        pending = core.q + core.series_at("arrivals")                      # [K, B]
        may_wait = np.minimum(pending, core.series_at("backlog_cap")) * core.defer
        must = pending - may_wait
        usd_kwh = core.series_at("pue") * core.series_at("price") / 1000.0  # [I, B]
        net = (self.value - self.kwh[None, :, None] * usd_kwh[self.site][None]) \
            / self.tau[..., None]                                          # [K, O, B]
        stay = np.stack([np.broadcast_to(-c.drop_penalty[:, None], cont.shape), cont]
                        ) / self.tau[None]                                 # [2, K, B]
        amount = np.stack([must, may_wait])                                # [2, K, B]
        mu = self._prices(net, stay, amount)
        x = self._dual(mu, net, stay, amount, second=False)[3]
        x[x < SLIVER] = 0.0                         # no GPU powered for a thousandth of a job
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def _dual(self, mu: np.ndarray, net: np.ndarray, stay: np.ndarray, amount: np.ndarray,
              second: bool = True):
        """The smoothed dual at capacity prices mu [I, B]: its value [B], the loads
        [I, B] (C - load is the gradient), the Hessian [B, I, I] and the jobs [K, O, B]."""
        tau = self.tau                                                     # [K, 1]
        score = net - self.g_tau * mu[self.site][None]                     # [K, O, B]
        best = score.max(axis=1)                                           # [K, B]
        best = np.where(np.isfinite(best), best, 0.0)
        top = np.maximum(best[None], stay)                                 # [2, K, B]
        w = np.exp(score - best[:, None])                                  # max term 1
        # p(option o | tranche j) = w[o] * share[j] / z[j]; z >= 1 (its largest term is 1).
        share = np.exp(best[None] - top)
        z = w.sum(axis=1)[None] * share + np.exp(stay - top)               # [2, K, B]
        value = (tau * (amount * (np.log(z) + top)).sum(axis=0)).sum(axis=0) \
            + (mu * self.cap).sum(axis=0)
        x = w * (amount * share / z).sum(axis=0)[:, None]                  # [K, O, B]
        load = np.einsum("io,kob->ib", self.G, x)
        if not second:
            return value, load, None, x
        pz = (share / z)[:, :, None]
        m1 = np.einsum("io,kob->kib", self.G, w)[None] * pz                # [2, K, I, B]
        m2 = np.einsum("io,kob->kib", self.G2, w)[None] * pz
        a = (amount / tau[None])[:, :, None]                               # [2, K, 1, B]
        diag = (a * m2).sum(axis=(0, 1))                                   # [I, B]
        outer = np.einsum("jkib,jkhb->bih", a * m1, m1)
        hess = -outer
        idx = np.arange(self.c.I)
        hess[:, idx, idx] += diag.T
        return value, load, hess, x

    def _prices(self, net, stay, amount) -> np.ndarray:
        """Capacity prices [I, B] minimising the smoothed dual (projected Newton with a
        backtracking line search; mu >= 0, zero where the site has room)."""
        I, B = self.c.I, net.shape[-1]
        mu = np.zeros((I, B))
        cap = self.cap
        eye = np.eye(I)[None]
        for _ in range(NEWTON_STEPS):
            value, load, hess, _ = self._dual(mu, net, stay, amount)
            grad = cap - load                                              # [I, B]
            priced = mu > 0
            ok = np.where(priced, np.abs(grad) <= CAP_RTOL * cap, grad >= -CAP_RTOL * cap)
            if ok.all():
                break
            free = (priced | (grad < 0)).T                                 # [B, I]
            pair = free[:, :, None] & free[:, None, :]
            h = np.where(pair, hess, 0.0)
            # A site whose jobs all sit firmly in one option has no curvature: a floor on
            # the diagonal turns its Newton step into a (clipped, line-searched) gradient
            # step, and keeps every copy's system solvable, converged copies included.
            diag = np.diagonal(h, axis1=1, axis2=2)
            floor = np.maximum(diag, self.curv_floor.T) - diag
            ridge = 1e-12 * np.abs(diag).max(axis=1)          # substitute sites: rank-deficient
            h = h + eye * (floor + ridge[:, None])[:, :, None] + eye * (~free)[:, :, None]
            step = -np.linalg.solve(h, np.where(free, grad.T, 0.0)[..., None])[..., 0].T
            # No step longer than the price range: the dual is nearly piecewise linear.
            big = np.abs(step / self.mu_max).max(axis=0)
            step = step / np.maximum(big, 1.0)
            alpha = np.ones(B)
            todo = ~ok.all(axis=0)
            new = mu
            for _ in range(LINE_SEARCH):
                cand = np.maximum(mu + alpha * step, 0.0)
                v_new = self._dual(cand, net, stay, amount, second=False)[0]
                good = v_new <= value + 1e-4 * (grad * (cand - mu)).sum(axis=0)
                new = np.where(good & todo, cand, new)
                todo = todo & ~good
                if not todo.any():
                    break
                alpha = np.where(todo, alpha * 0.5, alpha)
            mu = new
        return mu


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
    battery idle."""

    def __init__(self, bank, batch: int, config: EnvConfig | None = None,
                 waiting: bool = True):
        super().__init__(bank, batch, config or EnvConfig())
        self.deferrable_rows = np.flatnonzero(self.is_deferrable) if waiting else \
            np.zeros(0, dtype=np.int64)
        self.action_dim = len(self.deferrable_rows) + self.I
        self.dispatcher = Dispatcher(self)

    def plan_from_action(self, core: BatchedCore, action: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, battery kW, drops) of `core`'s current slot for high-level actions [B, A]."""
        a = np.clip(np.asarray(action, dtype=float).T, -1.0, 1.0)      # [A, B]
        n = len(self.deferrable_rows)
        wait = np.zeros((self.K, core.B))
        wait[self.deferrable_rows] = a[:n]
        cont = np.where(self.defer > 0, continuation(self.c, wait), -np.inf)
        bat = a[n:]
        battery_kw = np.where(bat > 0, bat * self.col["ch_max"], bat * self.col["dis_max"])
        return (self.dispatcher(core, cont), battery_kw.T,
                np.zeros((core.B, self.K)))

    def step(self, action: np.ndarray):
        return self.step_plan(*self.plan_from_action(self, action))
