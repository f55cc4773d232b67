"""Rule-based policies on the environment's action space.

`local-fixed` is the paper's "fixed 30 steps, no transfer": every job served at its home
site with a fixed step count at the nominal clock, battery idle, renewables first, GPUs
powered on as the work needs (the environment's repair).
"""

from __future__ import annotations

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


def _mpc():
    from optsched.policies.mpc import MPC
    return MPC()


def _mpc_noisy():
    from optsched.policies.mpc import mpc_noisy
    return mpc_noisy()


def _myopic():
    from optsched.policies.mpc import myopic_lp
    return myopic_lp()


def _mpc_forecast():
    from optsched.policies.mpc_forecast import MPCForecast
    return MPCForecast()


def _mpc_scenarios():
    from optsched.policies.mpc_scenarios import MPCScenarios
    return MPCScenarios()


def _greedy():
    from optsched.policies.greedy import Greedy
    return Greedy()


def _dispatch():
    from optsched.policies.dispatch import Dispatch
    return Dispatch()


POLICIES = {"local-fixed": LocalFixed, "greedy": _greedy, "myopic-lp": _myopic,
            "dispatch": _dispatch, "mpc": _mpc, "mpc-noisy": _mpc_noisy,
            "mpc-forecast": _mpc_forecast, "mpc-scenarios": _mpc_scenarios}
