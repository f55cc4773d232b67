"""The `dispatch` baseline: the per-slot capacity-price dispatch with no look-ahead (a
deferrable job waits only when serving it now is priced out) and an idle battery.
With provisioning it dispatches the point forecast of the slot's arrivals and its GPUs
are provisioned for the forecast's 90th percentile (`provision_quantile`,
optsched.env.known.provision_for)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optsched.env.core import BatchedCore
from optsched.env.dispatch import Dispatcher, continuation


@dataclass
class Dispatch:
    """`wait` in [-1, 1] is the continuation action of every deferrable class (see
    `optsched.env.dispatch.continuation`); 0 is the baseline."""

    wait: float = 0.0
    name: str = "dispatch"
    provision_quantile: float | None = 0.9

    def plan(self, core: BatchedCore) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = getattr(self, "_d", None)
        if d is None or d.c is not core.c:
            d = self._d = Dispatcher(core)
        c = core.c
        cont = continuation(c, np.full((c.K, core.B), self.wait))
        cont[c.interactive] = -np.inf
        return d(core, cont), np.zeros((core.B, c.I)), np.zeros((core.B, c.K))
