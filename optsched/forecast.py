"""Forecasts of a day's per-slot arrivals built from the past only.

- **Seasonal naive** (`seasonal_naive`): the mean arrivals of the same weekday over the
  last `WEEKS` weeks (days - 7, - 14, ...) that are known, else yesterday's (day - 1),
  else none. One past day carries that day's own bursts; the mean of four same weekdays
  cuts the error of a single one (jemas-3-genai training days 37 to 124, forecasts made
  every hour, volume-weighted mean absolute log error of the rescaled forecast: 0.60,
  against 0.76 for day - 7 alone and 0.74 for yesterday), and keeps the weekly level that
  yesterday misses. Most of the error is the day's own bursts, which no past day holds.
- **Rescaled within the day** (`rescale`): once slots 0..t-1 are observed, each group of
  classes (those sharing a home site, whose volume moves together) is scaled by the
  shrunk ratio of observed to forecast so far, r = (O + s D) / (F + s D), where O and F
  are the observed and forecast jobs of slots < t and D the forecast of the whole day:
  at the day's start r = 1, and r moves to O / F as the observed share of the day grows
  past the shrinkage `s` (a Gamma-Poisson posterior mean with a prior worth s D jobs).
- **Quantile forecast** (`QuantileModel`): empirical quantiles of the error ratio
  actual / forecast, by lead time, over the training days of a family, each slot weighted
  by its forecast jobs (the quantiles are of jobs: quiet slots, whose ratios swing most,
  count as little as they weigh in a schedule), fitted by
  `fit_quantiles` (`python -m optsched.forecast --fit FAMILY` writes the family's file).

Nothing here reads a slot at or after the forecast's origin: the functions take the
observed slots as an argument, and `DayForecaster.for_day` reads earlier days only.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np
from numpy.typing import NDArray

from optsched.errors import ScenarioError

F = NDArray[np.float64]
WEEKS = 4                                 # same weekdays averaged by seasonal_naive
SHRINK = 0.1                              # prior weight, a share of the day's forecast
LEVELS = (0.1, 0.25, 0.5, 0.75, 0.9)      # quantile levels fitted
LEAD_EDGES_H = (1.0, 3.0, 6.0)            # lead buckets: <1 h, 1-3 h, 3-6 h, >= 6 h
ORIGIN_EVERY = 12                         # forecast origins in fitting: every hour
MIN_FORECAST = 1.0                        # ratios only where at least one job is forecast
QUANTILE_FILES = {"jemas-3-genai": "jemas3-genai.json"}

Past = Callable[[int], F | None]


def seasonal_naive(past: Past, day: int, weeks: int = WEEKS) -> F | None:
    """The mean of the same weekday's arrivals over the last `weeks` weeks that are known,
    else yesterday's; None when no such day is known."""
    same = [past(day - 7 * w) for w in range(1, weeks + 1) if day - 7 * w >= 0]
    same = [np.asarray(a, float) for a in same if a is not None]
    if same:
        return np.mean(same, axis=0)
    if day >= 1 and (a := past(day - 1)) is not None:
        return np.asarray(a, float)
    return None


def rescale(forecast: F, observed: F, groups: Sequence[int], shrink: float = SHRINK) -> F:
    """The forecast [K, T] scaled per group by the shrunk observed/forecast ratio of the
    observed slots (`observed` [K, t], the first t slots); slots < t are the observed."""
    forecast = np.asarray(forecast, float)
    observed = np.asarray(observed, float)
    t = observed.shape[1]
    groups = np.asarray(groups)
    out = forecast.copy()
    for g in np.unique(groups):
        rows = groups == g
        o, f = observed[rows].sum(), forecast[rows, :t].sum()
        prior = shrink * forecast[rows].sum()
        if f + prior > 0:
            out[rows] *= (o + prior) / (f + prior)
    out[:, :t] = observed
    return out


@dataclass(frozen=True)
class DayForecaster:
    """A day's point forecasts: the seasonal-naive day, rescaled as slots are observed.
    Without a past (a file's single horizon, a family's first day) it is persistence:
    every later slot repeats the last observed one."""

    naive: F | None          # [K, T]
    groups: NDArray[np.int64]
    shrink: float = SHRINK

    @classmethod
    def for_day(cls, c, shrink: float = SHRINK) -> DayForecaster:
        """For a compiled day (`optsched.scenario.Compiled`): its family's earlier days
        when `get_scenario` built it (optsched.scenario.history), else no past."""
        from optsched.scenario.history import identify, past_arrivals

        who = identify(c)
        naive = None
        if who is not None:
            naive = seasonal_naive(lambda d: past_arrivals(who[0], d), who[1])
        return cls(naive, np.asarray(c.home, np.int64), shrink)

    def point(self, observed: F, T: int) -> F:
        """The forecast of the whole day [K, T] from its first t observed slots."""
        observed = np.asarray(observed, float)
        t = observed.shape[1]
        if self.naive is None:
            last = observed[:, -1:] if t else np.zeros((len(self.groups), 1))
            out = np.repeat(last, T, axis=1)
            out[:, :t] = observed
            return out
        return rescale(self.naive, observed, self.groups, self.shrink)


@dataclass(frozen=True)
class QuantileModel:
    """Quantiles of actual / forecast by lead bucket: ratios[bucket, level]."""

    levels: tuple[float, ...]
    lead_edges_h: tuple[float, ...]
    ratios: F

    def bucket(self, lead_h: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.lead_edges_h), lead_h, side="right")

    def quantile(self, point: F, origin: int, level: float, dt_h: float) -> F:
        """The `level` quantile of slots >= origin of a point forecast made at `origin`
        (a slot before origin is observed and stays as it is)."""
        if level not in self.levels:
            raise ScenarioError("level", f"not a fitted level {self.levels}", level)
        point = np.asarray(point, float)
        lead_h = (np.arange(point.shape[-1]) - origin) * dt_h
        r = self.ratios[self.bucket(np.maximum(lead_h, 0.0)), self.levels.index(level)]
        return np.where(lead_h >= 0, point * r, point)

    def to_dict(self) -> dict:
        return {"levels": list(self.levels), "lead_edges_h": list(self.lead_edges_h),
                "ratios": np.round(self.ratios, 6).tolist()}

    @classmethod
    def from_dict(cls, raw: dict) -> QuantileModel:
        return cls(tuple(raw["levels"]), tuple(raw["lead_edges_h"]),
                   np.asarray(raw["ratios"], float))


def weighted_quantile(values: F, weights: F, levels: Sequence[float]) -> F:
    """The smallest value whose cumulative weight reaches each level (of the total)."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(np.asarray(weights, float)[order])
    at = np.searchsorted(cum, np.asarray(levels) * cum[-1], side="left")
    return np.asarray(values, float)[order][np.minimum(at, len(cum) - 1)]


def error_ratios(actual: F, forecaster: DayForecaster, dt_h: float,
                 every: int = ORIGIN_EVERY) -> tuple[F, F, F]:
    """(lead hours, actual / forecast, forecast jobs) of every slot at or after each origin
    (every `every` slots) where at least MIN_FORECAST jobs were forecast."""
    T = actual.shape[1]
    leads, ratios, weights = [], [], []
    for origin in range(0, T, every):
        fc = forecaster.point(actual[:, :origin], T)[:, origin:]
        ok = fc >= MIN_FORECAST
        lead = np.broadcast_to((np.arange(origin, T) - origin) * dt_h, fc.shape)
        leads.append(lead[ok])
        ratios.append(actual[:, origin:][ok] / fc[ok])
        weights.append(fc[ok])
    return np.concatenate(leads), np.concatenate(ratios), np.concatenate(weights)


def fit_quantiles(past: Past, days: Sequence[int], groups: Sequence[int], dt_h: float,
                  levels: Sequence[float] = LEVELS,
                  lead_edges_h: Sequence[float] = LEAD_EDGES_H) -> QuantileModel:
    """Empirical quantiles of the error ratios of the rescaled seasonal-naive forecast over
    `days` (a family's training days; days without a past are skipped)."""
    parts = []
    for d in days:
        naive = seasonal_naive(past, d)
        actual = past(d)
        if naive is None or actual is None:
            continue
        parts.append(error_ratios(np.asarray(actual, float),
                                  DayForecaster(naive, np.asarray(groups)), dt_h))
    lead, ratio, weight = (np.concatenate(p) for p in zip(*parts, strict=True))
    edges = tuple(float(e) for e in lead_edges_h)
    bucket = np.searchsorted(np.asarray(edges), lead, side="right")
    table = np.array([weighted_quantile(ratio[bucket == b], weight[bucket == b], levels)
                      for b in range(len(edges) + 1)])
    return QuantileModel(tuple(float(v) for v in levels), edges, table)


def fit_family(source: str) -> QuantileModel:
    """Fit the quantile forecast of an embedded family on its training days."""
    from optsched.scenario import compile_scenario, family, get_scenario
    from optsched.scenario.history import past_arrivals

    fam = family(source)
    c = compile_scenario(get_scenario(source, fam.train_days()[0]))
    return fit_quantiles(lambda d: past_arrivals(source, d), fam.train_days(), c.home, c.dt_h)


@functools.cache
def family_quantiles(source: str) -> QuantileModel:
    """The packaged quantile forecast of an embedded family (QUANTILE_FILES)."""
    if source not in QUANTILE_FILES:
        raise ScenarioError("SCENARIO", "no fitted quantile forecast (known: "
                            f"{', '.join(QUANTILE_FILES)})", source)
    text = (resources.files("optsched.scenario") / "defaults"
            / QUANTILE_FILES[source]).read_text()
    return QuantileModel.from_dict(json.loads(text)["forecast_quantiles"])


def main(argv: list[str] | None = None) -> None:
    from pathlib import Path

    from optsched.io import atomic_write_text

    ap = argparse.ArgumentParser(description="Fit a family's quantile forecast.")
    ap.add_argument("--fit", required=True, choices=sorted(QUANTILE_FILES))
    args = ap.parse_args(argv)
    model = fit_family(args.fit)
    path = Path(__file__).parent / "scenario" / "defaults" / QUANTILE_FILES[args.fit]
    atomic_write_text(path, json.dumps({
        "note": "written by python -m optsched.forecast --fit; empirical quantiles of "
                "actual / forecast (rescaled seasonal naive) over the training days, by "
                "lead bucket (rows: lead < edges[0] h, ..., >= edges[-1] h)",
        "forecast_quantiles": model.to_dict()}, indent=1) + "\n")
    print(json.dumps(model.to_dict()))


if __name__ == "__main__":
    main()
