"""MPC fed forecasts from the past only (`mpc-forecast`).

Today's MPC (policies/mpc.py) re-plans every hour over a day-long window; here its window
sees the day as the forecaster believes it at the re-plan (`optsched.env.known`): the
slots observed so far as they were, later slots from `optsched.forecast.DayForecaster`
(seasonal naive from the family's earlier days, rescaled by the arrivals so far), and
backlog caps computed from that belief, never from the day's real later arrivals. With
provisioning off the current slot's arrivals are known when it is decided (model v1);
with it on they are not (the observed slots are 0..t-1) and the current slot is planned
on the point forecast. Prices and renewables are taken as known a day ahead (day-ahead
market prices, weather forecasts), so demand is the one uncertain input.

It re-plans every slot (receding horizon): each slot brings new arrivals and a new
forecast, and a plan is only as good as the forecast it was made with. (With perfect
forecasts re-planning adds nothing, so `mpc` re-plans hourly; on jemas-3-genai day 44,
hourly re-planning on forecasts lost 3.7% to the oracle, every slot 0.14%.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from optsched.env.core import BatchedCore
from optsched.env.known import Known, believed_day
from optsched.policies.mpc import MPC

__all__ = ["MPCForecast", "believed_day"]


@dataclass
class MPCForecast(MPC):
    replan_every: int = 1
    name: str = "mpc-forecast"
    foresight: bool = False
    # a day's point forecaster, c -> object with DayForecaster's `point` (None: the
    # family's past, DayForecaster.for_day); optsched.env.known.Known uses it
    forecaster: Callable[[Any], Any] | None = None

    def __post_init__(self):
        super().__post_init__()
        self._own: Known | None = None

    def plan(self, core: BatchedCore | Known) -> tuple[np.ndarray, ...]:
        """Plans on the view of what is known: the rollout's with provisioning on, else
        its own that knows the current slot (lag 0)."""
        if not isinstance(core, Known):
            if core.t == 0 or self._own is None or self._own._core is not core:
                self._own = Known(core, lag=0, forecaster=self.forecaster)
            core = self._own
        return super().plan(core)
