"""Rule-based policies on the environment's action space.

`local-fixed` is the paper's "fixed 30 steps, no transfer": every job served at its home
site with a fixed step count at the nominal clock, battery idle, renewables first, GPUs
powered on as the work needs (the environment's repair). With provisioning it commits
the GPUs that every job believed pending would need at home (the repair's rule,
`BatchedCore.provision`), the slot's arrivals believed at the forecast's 90th percentile
(`provision_quantile`: a production rule, provisioning for the 90th percentile of demand;
optsched.env.known).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from optsched.env.core import BatchedCore


def level(values: np.ndarray, wanted: float) -> float:
    """The action value in [-1, 1] that selects the entry of `values` nearest `wanted`."""
    j = int(np.argmin(np.abs(np.asarray(values, float) - wanted)))
    return -1.0 + 2.0 * j / max(len(values) - 1, 1)


@dataclass
class LocalFixed:
    steps: int = 30
    clock: float = 1.0
    name: str = "local-fixed"
    provision_quantile: float | None = 0.9

    def act(self, core: BatchedCore, obs: np.ndarray) -> np.ndarray:
        c = core.c
        route = np.where(np.arange(c.I)[None, :] == c.home[:, None], 1.0, -1.0)
        a = np.concatenate([route.ravel(), np.full(c.K * c.I, level(c.steps, self.steps)),
                            np.ones(c.K), np.full(c.I, level(c.clocks, self.clock)),
                            np.zeros(c.I)])
        if not core.commit:
            return np.broadcast_to(a, (core.B, core.action_dim))
        return np.concatenate([np.broadcast_to(a, (core.B, len(a))),
                               core.gpu_action(core.provision(self.believed_plan(core)))],
                              axis=1)

    def believed_plan(self, core: BatchedCore) -> np.ndarray:
        """x [B, K, O]: every job believed pending at home, at the step level and clock
        the action asks for (raised to the nearest eligible level, as the action is)."""
        c = core.c
        s = int(np.argmin(np.abs(c.steps - self.steps)))
        f = int(np.argmin(np.abs(c.clocks - self.clock)))
        k = np.arange(c.K)
        o = (c.home * len(c.steps) + core.fix_step[k, c.home, s]) * len(c.clocks) + f
        x = np.zeros((core.B, c.K, c.O))
        x[:, k, o] = (core.q + core.series_at("arrivals")).T
        return x


def _lazy(module: str, factory: str):
    """A policy constructor imported on first use (MPC pulls in the LP stack, dispatch
    its Newton solver): the registry stays cheap to import."""
    def make():
        return getattr(importlib.import_module(module), factory)()
    return make


POLICIES = {
    "local-fixed": LocalFixed,
    "greedy": _lazy("optsched.policies.greedy", "Greedy"),
    "myopic-lp": _lazy("optsched.policies.mpc", "myopic_lp"),
    "dispatch": _lazy("optsched.policies.dispatch", "Dispatch"),
    "mpc": _lazy("optsched.policies.mpc", "MPC"),
    "mpc-noisy": _lazy("optsched.policies.mpc", "mpc_noisy"),
    "mpc-forecast": _lazy("optsched.policies.mpc_forecast", "MPCForecast"),
    "mpc-scenarios": _lazy("optsched.policies.mpc_scenarios", "MPCScenarios"),
}
