"""What a policy knows at the start of a slot: the environment as a view in which the
arrivals not yet seen are believed, not real.

With provisioning (`Compiled.commit`, docs/model.md "Provisioning before arrivals") a slot
is decided before its arrivals come in, so the rollout hands a policy `Known(core, lag=1,
...)` instead of the core: the state (backlog, state of charge, import peak, GPUs on),
prices, renewables and PUE are the core's (known at the slot's start, prices and weather
a day ahead), but each copy's arrivals are those observed (slots before the current one)
followed by a forecast from the past only (`optsched.forecast.DayForecaster`: the
seasonal naive of the family's earlier days rescaled by the arrivals observed so far;
persistence where no earlier day exists), and its backlog caps are computed from that
belief. `compiled(j)` is the believed day, `series_at` reads it, `point(j)` is the point
forecast itself. A policy with a `forecaster` attribute (a function of the real day
returning an object with DayForecaster's `point`) is shown that forecaster's belief
instead: benchmarks/forecast_ceiling.py tells MPC the day's level that way.

Provisioning headroom is the policy's choice: with `quantile` set (a level the family's
quantile forecast was fitted at, `optsched.forecast.QuantileModel`), the current slot's
arrivals are presented at that quantile of the forecast instead of the point; later slots
stay at the point. Without a fitted quantile forecast (a scenario outside the embedded
families) the point is presented.

`Known(core, lag=0)` is the same view with the current slot's arrivals known (model v1):
MPC on forecasts (`mpc-forecast`) plans on it with provisioning off.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from optsched.forecast import DayForecaster, QuantileModel
from optsched.scenario.compile import Compiled, backlog_cap

F = NDArray[np.float64]


def quantile_model(c: Compiled) -> QuantileModel | None:
    """The packaged quantile forecast of c's family (None: c is no embedded family's day,
    or its family has none)."""
    from optsched.errors import ScenarioError
    from optsched.forecast import family_quantiles
    from optsched.scenario.history import identify

    who = identify(c)
    if who is None:
        return None
    try:
        return family_quantiles(who[0])
    except ScenarioError:
        return None


def believed_day(c: Compiled, t: int, forecaster: DayForecaster, observed: int | None = None,
                 quantile: float | None = None, qm: QuantileModel | None = None) -> Compiled:
    """Day `c` as known at the start of slot t: the arrivals of its first `observed`
    slots (default t + 1: slot t's own are known, model v1), later slots forecast, slot t
    at the `quantile` of the quantile forecast `qm` when both are given and it is not
    observed; backlog caps from those arrivals."""
    observed = t + 1 if observed is None else observed
    arrivals = forecaster.point(c.arrivals[:, :observed], c.T)
    if quantile is not None and qm is not None and observed <= t < c.T:
        arrivals[:, t] = qm.quantile(arrivals, t, quantile, c.dt_h)[:, t]
    return dataclasses.replace(c, arrivals=arrivals,
                               backlog_cap=backlog_cap(arrivals, c.max_wait))


class Known:
    """The core as a policy knows it at the start of its current slot (see the module)."""

    def __init__(self, core: Any, lag: int = 1, quantile: float | None = None,
                 forecaster: Callable[[Compiled], Any] | None = None):
        self._core, self.lag, self.quantile = core, int(lag), quantile
        # a day's point forecaster (None: DayForecaster.for_day, the family's past)
        self._forecaster = forecaster or DayForecaster.for_day
        self._days: dict[int, tuple[int, DayForecaster, QuantileModel | None]] = {}
        self._believed: dict[int, tuple[tuple[int, int], Compiled]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)

    @property
    def observed(self) -> int:
        """Slots whose arrivals are known: those before the current one (lag 1), or up
        to and including it (lag 0)."""
        return min(max(self._core.t + 1 - self.lag, 0), self._core.T)

    def real(self, j: int) -> Compiled:
        """Copy j's real day (for what is known of it: prices, the observed slots)."""
        return self._core.compiled(j)

    def _day(self, j: int) -> tuple[DayForecaster, QuantileModel | None]:
        d = int(self._core.day[j])
        if j not in self._days or self._days[j][0] != d:
            c = self.real(j)
            self._days[j] = (d, self._forecaster(c), quantile_model(c))
        return self._days[j][1:]

    def point(self, j: int) -> F:
        """Copy j's point forecast of the day [K, T]: the observed slots as they were,
        later slots forecast from the past and the observed slots."""
        c = self.real(j)
        return self._day(j)[0].point(c.arrivals[:, :self.observed], c.T)

    def quantile_model(self, j: int) -> QuantileModel | None:
        return self._day(j)[1]

    def compiled(self, j: int) -> Compiled:
        """Copy j's day as believed now (`believed_day` with the view's quantile)."""
        when = (self._core.t, int(self._core.day[j]))
        cached = self._believed.get(j)
        if cached is None or cached[0] != when:
            forecaster, qm = self._day(j)
            cached = self._believed[j] = (when, believed_day(
                self.real(j), when[0], forecaster, self.observed, self.quantile, qm))
        return cached[1]

    def series_at(self, key: str, t: int | None = None) -> F:
        """As `BatchedCore.series_at`, with arrivals and backlog caps as believed."""
        if key not in ("arrivals", "backlog_cap"):
            return self._core.series_at(key, t)
        t = self._core.t if t is None else t
        return np.stack([getattr(self.compiled(j), key)[:, t] for j in range(self._core.B)],
                        axis=1)


def knowing(core: Any, policy: Any) -> Any:
    """What `policy` acts on in the rollout: the core itself with provisioning off or for
    a policy with perfect foresight (`foresight = True`: mpc, mpc-noisy), else the view
    of what is known at the slot's start. An actor (it commits its GPUs itself) sees the
    slot at its `provision_quantile`; a planner plans on the point forecast and its GPUs
    are provisioned for the quantile (`provisioning`)."""
    if not core.commit or getattr(policy, "foresight", False):
        return core
    q = getattr(policy, "provision_quantile", None)
    return Known(core, lag=1, quantile=None if hasattr(policy, "plan") else q,
                 forecaster=getattr(policy, "forecaster", None))


def provisioning(core: Any, policy: Any) -> Known | None:
    """The view at a planner's `provision_quantile` (None: the repair provisions for the
    plan itself). A production rule: plan the slot (routing, steps, clocks) for the
    demand expected, provision GPUs for a high percentile of it."""
    q = getattr(policy, "provision_quantile", None)
    if (not core.commit or getattr(policy, "foresight", False) or q is None
            or not hasattr(policy, "plan")):
        return None
    return Known(core, lag=1, quantile=q, forecaster=getattr(policy, "forecaster", None))


def provision_for(core: Any, point: Known, high: Known, x: F, battery_kw: F) -> F:
    """GPUs [B, I] for plan x [B, K, O] (made on `point`'s belief) at `high`'s demand: each
    interactive class's jobs scaled by its pending jobs believed at the quantile over
    those at the point, with the plan's options; deferrable releases as planned."""
    now = core.q
    ratio = np.ones_like(now)                                            # [K, B]
    inter = core.c.interactive
    lo = now + point.series_at("arrivals")
    hi = now + high.series_at("arrivals")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio[inter] = np.where(lo[inter] > 0, hi[inter] / lo[inter], 1.0)
    return core.provision(np.asarray(x, float) * ratio.T[:, :, None], battery_kw)


__all__ = ["Known", "believed_day", "knowing", "provision_for", "provisioning",
           "quantile_model"]
