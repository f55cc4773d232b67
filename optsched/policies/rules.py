"""Rule-based policies on the environment's action space.

`local-fixed` is the paper's "fixed 30 steps, no transfer": every job served at its home
site with a fixed step count at the nominal clock, battery idle, renewables first, GPUs
powered on as the work needs (the environment's repair).
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

    def act(self, core: BatchedCore, obs: np.ndarray) -> np.ndarray:
        c = core.c
        route = np.where(np.arange(c.I)[None, :] == c.home[:, None], 1.0, -1.0)
        a = np.concatenate([route.ravel(), np.full(c.K * c.I, level(c.steps, self.steps)),
                            np.ones(c.K), np.full(c.I, level(c.clocks, self.clock)),
                            np.zeros(c.I)])
        return np.broadcast_to(a, (core.B, core.action_dim))


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
