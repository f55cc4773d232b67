"""Demonstrations from the oracle: its schedules of training days, replayed through the
environment, turned into (observation, action) pairs for behaviour cloning.

The action space cannot express every oracle decision (it mixes options within a class),
so each slot's decision is projected onto it: routing shares = where the class's jobs
ran, step level per site = the jobs' mean step index there, serve share = served /
pending, clock = the site's work-weighted clock, battery = net power over its limit.
The states are the oracle's own (it acts through `step_plan`), so the pairs lie on its
trajectory.
"""

from __future__ import annotations

import numpy as np

from optsched.env.bank import DayBank
from optsched.env.core import BatchedCore, EnvConfig
from optsched.scenario.compile import Compiled


def project(core: BatchedCore, x: np.ndarray, ch: np.ndarray, dis: np.ndarray,
            pending: np.ndarray) -> np.ndarray:
    """One copy's detailed decision (x [K, O], battery [I], pending [K]) as an action."""
    c = core.c
    K, I, S, F = c.K, c.I, core.S, core.F
    xr = x.reshape(K, I, S, F)
    at_site = xr.sum(axis=(2, 3))                                   # [K, I]
    served = at_site.sum(axis=1)
    share = np.where(served[:, None] > 0, at_site / np.maximum(served[:, None], 1e-12),
                     (np.arange(I)[None, :] == c.home[:, None]).astype(float))
    route = np.where(core.site_ok, np.clip(2.0 * share - 1.0, -1.0, 1.0), -1.0)
    by_step = xr.sum(axis=3)                                        # [K, I, S]
    s_mean = (by_step * np.arange(S)).sum(axis=2) / np.maximum(at_site, 1e-12)
    steps = np.where(at_site > 0, 2.0 * s_mean / max(S - 1, 1) - 1.0, 0.0)
    serve = np.where(pending > 0, 2.0 * np.clip(served / np.maximum(pending, 1e-12), 0, 1)
                     - 1.0, 1.0)
    work = xr.sum(axis=(0, 2))                                      # [I, F]
    f_mean = (work * np.arange(F)).sum(axis=1) / np.maximum(work.sum(axis=1), 1e-12)
    clock = np.where(work.sum(axis=1) > 0, 2.0 * f_mean / max(F - 1, 1) - 1.0, 1.0)
    net = ch - dis
    battery = np.where(net >= 0, net / np.maximum(c.ch_max, 1e-12),
                       net / np.maximum(c.dis_max, 1e-12))
    return np.clip(np.concatenate([route.ravel(), steps.ravel(), serve, clock, battery]),
                   -1.0, 1.0)


def oracle_demonstrations(days: list[Compiled], relax: bool = True
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(observations [N, obs_dim], actions [N, action_dim]) along the oracle's schedules."""
    from optsched.oracle import solve

    obs_all, act_all = [], []
    for c in days:
        sched = solve(c, "highs", relax=relax).schedule
        core = BatchedCore(DayBank.from_compiled([c]), 1, EnvConfig())
        obs = core.reset(days=[0]).copy()
        for t in range(c.T):
            pending = core.q[:, 0] + c.arrivals[:, t]
            act_all.append(project(core, sched.x[:, :, t], sched.ch[:, t], sched.dis[:, t],
                                   pending))
            obs_all.append(obs[0])
            obs, _, _, _ = core.step_plan(sched.x[None, :, :, t],
                                          (sched.ch[:, t] - sched.dis[:, t])[None],
                                          sched.y[None, :, t])
            obs = obs.copy()
    return np.array(obs_all), np.array(act_all)
