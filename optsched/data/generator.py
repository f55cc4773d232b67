"""The calibrated day generator: one day of prices, PV, carbon intensity and arrivals from
parameters fitted on real 2023 data (scripts/calibrate.py documents the model).

Each function produces hourly values on the site's local clock over a padded window
(local midnight - PAD h .. + 24 + PAD h) so that a site in any US time zone covers the
reference day; `to_slots` samples that window at the scenario's slot times.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from optsched.data.readers import Location
from optsched.data.solar import pv_kw

PAD = 4                           # hours of padding on each side of the local day
HOURS = 24 + 2 * PAD
SEASON_OF_MONTH = {12: "DJF", 1: "DJF", 2: "DJF", 3: "MAM", 4: "MAM", 5: "MAM",
                   6: "JJA", 7: "JJA", 8: "JJA", 9: "SON", 10: "SON", 11: "SON"}


def _ar1(rng: np.random.Generator, n: int, phi: float, sigma: float) -> np.ndarray:
    """Stationary AR(1) with lag-1 correlation phi and marginal sd sigma."""
    out = np.empty(n)
    out[0] = rng.normal(0.0, sigma)
    innov = rng.normal(0.0, sigma * np.sqrt(max(1.0 - phi**2, 0.0)), n)
    for h in range(1, n):
        out[h] = phi * out[h - 1] + innov[h]
    return out


def _hour_of_day() -> np.ndarray:
    return (np.arange(HOURS) - PAD) % 24


def price_hourly(p: dict, date: dt.date, rng: np.random.Generator) -> np.ndarray:
    """$/MWh on local hours: level * (shape + AR(1) residual), with occasional spikes."""
    s = p["seasons"][SEASON_OF_MONTH[date.month]]
    level = np.exp(rng.normal(s["log_level_mu"], s["log_level_sigma"]))
    shape = np.asarray(s["shape"])[_hour_of_day()]
    price = level * (shape + _ar1(rng, HOURS, s["ar_phi"], s["ar_sigma"]))
    weight = np.asarray(p["spike_hour_weight"])[_hour_of_day()] * 24.0
    spikes = rng.random(HOURS) < s["spike_prob"] * weight
    if spikes.any():
        q = np.asarray(p["spike_ratio_quantiles"])
        ratio = np.interp(rng.random(int(spikes.sum())), np.linspace(0, 1, len(q)), q)
        price[spikes] = np.maximum(price[spikes], level * shape[spikes] * ratio)
    return np.clip(price, -150.0, 5000.0)      # ERCOT's 2023 offer cap is $5,000/MWh


def cloud_hourly(p: dict, date: dt.date, rng: np.random.Generator) -> np.ndarray:
    """Cloud cover (%): a Beta-distributed daily mean for the month, AR(1) hourly swings."""
    m = p["months"][date.month - 1]
    mean, sd = m["mean"] / 100.0, max(m["sd"] / 100.0, 1e-3)
    k = max(mean * (1 - mean) / sd**2 - 1.0, 0.5)          # Beta by the method of moments
    daily = rng.beta(max(mean * k, 0.05), max((1 - mean) * k, 0.05))
    return np.clip(100.0 * daily + _ar1(rng, HOURS, p["ar_phi"], p["ar_sigma"]), 0.0, 100.0)


def carbon_hourly(p: dict, date: dt.date, rng: np.random.Generator) -> np.ndarray:
    s = p[SEASON_OF_MONTH[date.month]]
    level = s["level"] * np.exp(rng.normal(0.0, s["log_sigma"]))
    return level * np.asarray(s["shape"])[_hour_of_day()]


def arrivals_slots(peak: float, shape24: list[float], local_hours: np.ndarray, level: float,
                   burst_sigma: float, burst_phi: float, rng: np.random.Generator
                   ) -> np.ndarray:
    """Jobs per slot: peak * diurnal shape (interpolated at fractional local hours) * day
    level * lognormal AR(1) bursts (mean 1), rounded to whole jobs."""
    shape = np.interp(local_hours % 24, np.arange(25), list(shape24) + [shape24[0]])
    burst = np.exp(_ar1(rng, len(local_hours), burst_phi, burst_sigma) - burst_sigma**2 / 2)
    return np.round(peak * shape * level * burst)


def slot_times(date: dt.date, slots: int, slot_minutes: int, tz: str) -> pd.DatetimeIndex:
    start = pd.Timestamp(date).tz_localize(tz)
    return start + pd.to_timedelta(np.arange(slots) * slot_minutes, unit="min")


def to_slots(hourly: np.ndarray, times: pd.DatetimeIndex, date: dt.date, tz: str
             ) -> np.ndarray:
    """Sample a padded local-hour window at `times` (held constant within each hour)."""
    origin = pd.Timestamp(date).tz_localize(tz) - pd.Timedelta(hours=PAD)
    j = ((times.tz_convert(tz) - origin) / pd.Timedelta(hours=1)).to_numpy()
    return hourly[np.clip(np.floor(j).astype(int), 0, HOURS - 1)]


def local_hours(times: pd.DatetimeIndex, tz: str) -> np.ndarray:
    local = times.tz_convert(tz)
    return local.hour + local.minute / 60.0


def pv_slots(kwp: float, loc: Location, times: pd.DatetimeIndex, cloud_pct: np.ndarray,
             slot_minutes: int) -> np.ndarray:
    mid = times + pd.Timedelta(minutes=slot_minutes / 2)
    return pv_kw(kwp, loc, mid, cloud_pct)
