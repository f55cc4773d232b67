"""Rule-based policies. `local-fixed` is the paper's "fixed 30 steps, no transfer":
every job served at its home site with a fixed step count at the nominal clock, all GPUs
on (as far as the import cap allows), battery idle, renewables used first."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from optsched.scenario.compile import Compiled
from optsched.schedule import Schedule, complete


def home_option(c: Compiled, k: int, steps: int, clock: float) -> int:
    """The home option with the step count nearest `steps` that meets the quality floor."""
    at_home = np.flatnonzero((c.opt_site == c.home[k]) & c.eligible[k])
    if at_home.size == 0:
        at_home = np.flatnonzero(c.opt_site == c.home[k])
    distance = np.abs(c.opt_steps[at_home] - steps) + 1e3 * np.abs(c.opt_clock[at_home] - clock)
    return int(at_home[np.argmin(distance)])


def local_fixed(c: Compiled, steps: int = 30, clock: float = 1.0) -> Schedule:
    opts = np.array([home_option(c, k, steps, clock) for k in range(c.K)])
    # Powered-on GPUs: all, unless idle draw alone would break the import cap.
    supply = c.import_cap[:, None] + c.renewable                          # kW [I, T]
    idle_fac = c.pue * c.idle_kw[:, None]
    n = np.minimum(c.gpus[:, None], np.floor(supply / np.maximum(idle_fac, 1e-12)))
    gpu_budget = c.util_cap[:, None] * c.dt_s * n                         # GPU-s [I, T]
    kwh_budget = (supply - idle_fac * n) / c.pue * c.dt_h                 # busy kWh [I, T]
    order = np.argsort(~c.interactive, kind="stable")                     # interactive first
    x = np.zeros((c.K, c.O, c.T))
    y = np.zeros((c.K, c.T))
    backlog = np.zeros(c.K)
    for t in range(c.T):
        gpu_left, kwh_left = gpu_budget[:, t].copy(), kwh_budget[:, t].copy()
        for k in order:
            o, i = opts[k], c.home[k]
            pending = backlog[k] + c.arrivals[k, t]
            limit = min(gpu_left[i] / c.gpu_s[o],
                        kwh_left[i] / c.busy_kwh[o] if c.busy_kwh[o] > 0 else np.inf)
            serve = min(pending, max(limit, 0.0)) if c.eligible[k, o] else 0.0
            x[k, o, t] = serve
            gpu_left[i] -= serve * c.gpu_s[o]
            kwh_left[i] -= serve * c.busy_kwh[o]
            left = pending - serve
            y[k, t] = max(left - c.backlog_cap[k, t], 0.0)
            backlog[k] = left - y[k, t]
    return complete(c, x, y, n, r=c.renewable.copy())


POLICIES: dict[str, Callable[[Compiled], Schedule]] = {"local-fixed": local_fixed}
