"""MPC fed forecasts from the past only (`mpc-forecast`).

Today's MPC (policies/mpc.py) re-plans every hour over a day-long window; here its window
sees the day as the forecaster believes it at the re-plan: the slots observed so far as
they were, later slots from `optsched.forecast.DayForecaster` (seasonal naive from the
family's earlier days, rescaled by the arrivals so far), and backlog caps computed from
that belief, never from the day's real later arrivals. The current slot's arrivals are
known when it is decided (model v1); prices and renewables are taken as known a day ahead
(day-ahead market prices, weather forecasts), so demand is the one uncertain input.

It re-plans every slot (receding horizon): each slot brings new arrivals and a new
forecast, and a plan is only as good as the forecast it was made with. (With perfect
forecasts re-planning adds nothing, so `mpc` re-plans hourly; on jemas-3-genai day 44,
hourly re-planning on forecasts lost 3.7% to the oracle, every slot 0.14%.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from optsched.env.core import BatchedCore
from optsched.forecast import DayForecaster
from optsched.policies.mpc import MPC
from optsched.scenario.compile import Compiled, backlog_cap


class _Believed:
    """The environment as a planner reads it, with day j replaced by a believed day."""

    def __init__(self, core: BatchedCore, c: Compiled):
        self._core, self._c = core, c

    def compiled(self, j: int) -> Compiled:
        return self._c

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)


def believed_day(c: Compiled, t: int, forecaster: DayForecaster) -> Compiled:
    """Day `c` as known at the start of slot t: arrivals of slots 0..t observed, later
    slots forecast, backlog caps from those arrivals."""
    arrivals = forecaster.point(c.arrivals[:, :t + 1], c.T)
    return dataclasses.replace(c, arrivals=arrivals,
                               backlog_cap=backlog_cap(arrivals, c.max_wait))


@dataclass
class MPCForecast(MPC):
    replan_every: int = 1
    name: str = "mpc-forecast"

    def __post_init__(self):
        super().__post_init__()
        self._forecasters: dict[int, DayForecaster] = {}

    def plan(self, core: BatchedCore) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if core.t == 0:
            self._forecasters = {j: DayForecaster.for_day(core.compiled(j))
                                 for j in range(core.B)}
        return super().plan(core)

    def _solve(self, core: BatchedCore, j: int) -> dict:
        c = believed_day(core.compiled(j), core.t, self._forecasters[j])
        return super()._solve(_Believed(core, c), j)
