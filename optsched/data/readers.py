"""Readers for real data in the formats of ../shared/data (see its SOURCES.md).

Each returns a pandas Series indexed by tz-aware timestamps, so callers can align sites in
different time zones on one clock. The package never downloads anything: these read files
the user points at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from optsched.errors import ScenarioError


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    elevation_m: float
    timezone: str


def _read(path: str | Path, **kwargs) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(str(path), "file not found")
    try:
        return pd.read_csv(path, **kwargs)
    except (ValueError, OSError) as exc:
        raise ScenarioError(str(path), f"cannot be read as CSV ({exc})") from None


def _require(frame: pd.DataFrame, columns: list[str], path: str | Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ScenarioError(str(path), f"missing column(s) {', '.join(missing)}; "
                            f"has {', '.join(frame.columns)}")


# In the 2023 price files of ../shared/data, the PJM, CAISO and NYISO rows are shifted by
# the local UTC offset: their `Datetime (Local)` wall-clock time is the true UTC hour.
# Evidence (hour-of-day means, scripts/calibrate.py data): as labelled, CAISO's summer
# price peaks at 02:00 PDT and bottoms at 16:00, against the duck curve that the same
# data's carbon intensity shows (minimum at solar noon); PJM/NYISO winter peaks fall at
# 23:00 and 12:00 EST instead of the known 07-08 and 17-19 EST. ERCOT's rows are right:
# its August 2023 scarcity spikes land at 17-20 CDT, as reported at the time.
SHIFTED_PRICE_FILES = frozenset({"pjm_2023.csv", "caiso_2023.csv", "nyiso_2023.csv"})
PriceClock = Literal["auto", "utc", "local-is-utc"]


def read_prices(path: str | Path, clock: PriceClock = "auto") -> pd.Series:
    """Hourly wholesale price, $/MWh, indexed by UTC hour.

    clock: `utc` trusts `Datetime (UTC)`; `local-is-utc` reads the wall time of
    `Datetime (Local)` as UTC (the fix for the shifted files above); `auto` picks
    `local-is-utc` for those known files and `utc` otherwise.
    """
    frame = _read(path)
    _require(frame, ["Datetime (UTC)", "Datetime (Local)", "Price (USD/MWh)"], path)
    if clock == "auto":
        clock = "local-is-utc" if Path(path).name in SHIFTED_PRICE_FILES else "utc"
    if clock == "local-is-utc":
        wall = frame["Datetime (Local)"].str.slice(0, 19)
        index = pd.to_datetime(wall).dt.tz_localize("UTC")
    else:
        index = pd.to_datetime(frame["Datetime (UTC)"], utc=True)
    return pd.Series(frame["Price (USD/MWh)"].to_numpy(float), index=index, name="price")


def read_carbon(path: str | Path, kind: str = "direct") -> pd.Series:
    """Hourly carbon intensity, gCO2eq/kWh (`direct` or `LCA`), indexed by UTC hour."""
    frame = _read(path)
    column = f"Carbon Intensity gCO₂eq/kWh ({kind})"
    _require(frame, ["Datetime (UTC)", column], path)
    index = pd.to_datetime(frame["Datetime (UTC)"], utc=True)
    return pd.Series(frame[column].to_numpy(float), index=index, name="ci")


def read_weather(path: str | Path) -> tuple[Location, pd.DataFrame]:
    """Hourly weather in local time, and the site's location from the first comment line."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(str(path), "file not found")
    header = path.open().readline()
    meta = dict(re.findall(r"(\w+)=([^\s]+)", header))
    try:
        loc = Location(float(meta["latitude"]), float(meta["longitude"]),
                       float(meta.get("elevation_m", 0.0)), meta["timezone"])
    except KeyError as exc:
        raise ScenarioError(str(path), f"first line lacks {exc.args[0]}=...") from None
    frame = _read(path, comment="#")
    _require(frame, ["time_local", "cloudcover_pct"], path)
    local = pd.to_datetime(frame["time_local"])
    # Local wall-clock hours: resolve DST gaps/overlaps instead of failing on them.
    index = local.dt.tz_localize(loc.timezone, ambiguous="NaT", nonexistent="NaT")
    frame = frame.set_index(pd.DatetimeIndex(index)).drop(columns="time_local")
    frame = frame[frame.index.notna()]
    return loc, frame[~frame.index.duplicated()]


def read_trace(path: str | Path) -> pd.Series:
    """Request timestamps (UTC) of an inference trace (`TIMESTAMP` column)."""
    frame = _read(path)
    _require(frame, ["TIMESTAMP"], path)
    return pd.Series(pd.to_datetime(frame["TIMESTAMP"], utc=True), name="timestamp")


def counts_per_slot(timestamps: pd.Series, slot_minutes: float) -> np.ndarray:
    """Arrivals per slot over the span of a trace (first to last slot it touches)."""
    t = timestamps.sort_values()
    start = t.iloc[0].floor(f"{slot_minutes}min")
    bins = ((t - start).dt.total_seconds() // (60 * slot_minutes)).astype(int)
    return np.bincount(bins.to_numpy()).astype(float)


def on_clock(series: pd.Series, start: pd.Timestamp, slots: int, slot_minutes: int
             ) -> np.ndarray:
    """Sample an hourly series at slot starts (held constant within the hour), on the
    scenario's clock starting at `start` (tz-aware). Gaps are filled from neighbours."""
    times = start + pd.to_timedelta(np.arange(slots) * slot_minutes, unit="min")
    hourly = series.copy()
    hourly.index = hourly.index.tz_convert("UTC")
    hourly = hourly[~hourly.index.duplicated()].sort_index()
    hours = times.tz_convert("UTC").floor("h")
    first, last = hourly.index[0], hourly.index[-1]
    if hours[0] < first - pd.Timedelta(hours=1) or hours[-1] > last + pd.Timedelta(hours=1):
        raise ScenarioError(str(series.name or "series"), f"data covers {first} to {last}, "
                            f"not the horizon starting {start}")
    wanted = hours.unique()
    values = hourly.reindex(hourly.index.union(wanted)).interpolate("time").ffill().bfill()
    return values.reindex(hours).to_numpy(float)
