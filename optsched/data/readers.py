"""Readers for real hourly data: wholesale prices, carbon intensity, weather, request traces.

The formats are those of the public data sets the embedded family was fitted on (prices:
HPE sustain-cluster's standardised Electricity Maps / GridStatus files; weather:
Open-Meteo; carbon: Electricity Maps; traces: Azure LLM inference), listed with their
columns in the data card, optsched/scenario/defaults/jemas3.md (Sources). Each reader
returns a pandas Series indexed by tz-aware timestamps, so callers can align sites in
different time zones on one clock. The package never downloads anything: these read files
the user points at, and no error ever echoes a file's contents (a scenario may name any
file).
"""

from __future__ import annotations

import re
import zoneinfo
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


_WHERE = re.compile(r"\b(line|row)\s+(\d+)", re.IGNORECASE)


def read_csv_file(path: str | Path, key: str | None = None, **kwargs) -> pd.DataFrame:
    """pandas.read_csv with one-line errors naming `key` (default: the path) and, when
    pandas says, the line; the file's text never appears in the message (pandas' own
    messages may quote it, so only their line number is kept)."""
    path = Path(path)
    key = str(path) if key is None else key
    if not path.is_file():
        raise ScenarioError(key, "file not found")
    try:
        return pd.read_csv(path, **kwargs)
    except UnicodeDecodeError:
        raise ScenarioError(key, f"{path.name} is not UTF-8 text") from None
    except pd.errors.EmptyDataError:
        raise ScenarioError(key, f"{path.name} has no CSV header or rows") from None
    except (ValueError, OSError) as exc:
        where = _WHERE.search(str(exc))
        at = f" at {where.group(1).lower()} {where.group(2)}" if where else ""
        raise ScenarioError(key, f"{path.name} cannot be parsed as CSV{at} "
                            f"({type(exc).__name__})") from None


def time_column(frame: pd.DataFrame, column: str, path: str | Path, utc: bool = False,
                label: str | None = None) -> pd.Series:
    """A column of timestamps; the first unreadable one is named by its data row. Offsets
    that differ between rows (ISO local times across a DST change) read as UTC
    instants."""
    try:
        times = pd.to_datetime(frame[column], utc=utc, errors="coerce")
    except ValueError:                   # "Mixed timezones detected": one instant each
        times = pd.to_datetime(frame[column], utc=True, errors="coerce")
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise ScenarioError(str(path), f"unreadable timestamp in column {label or column} "
                            f"at data row {row + 1}")
    return times


def numeric_column(frame: pd.DataFrame, column: str, key: str) -> np.ndarray:
    """A column as floats; empty cells become NaN, any other non-number is an error that
    names the data row, not the cell's text."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ScenarioError(key, f"non-numeric value in column {column} at data row {row + 1}")
    return values.to_numpy(float)


def _require(frame: pd.DataFrame, columns: list[str], path: str | Path) -> None:
    """Name the missing columns (ours), never the file's own header."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ScenarioError(str(path), f"missing column(s) {', '.join(missing)} "
                            f"(the file has {len(frame.columns)} columns)")


PriceClock = Literal["auto", "utc", "local-is-utc"]
PRICE_CLOCKS: tuple[str, ...] = ("auto", "utc", "local-is-utc")

# Some public price files are shifted by the local UTC offset: their `Datetime (Local)`
# wall-clock time is the true UTC hour (in the 2023 sustain-cluster files: PJM, CAISO and
# NYISO; as labelled, CAISO's summer price peaks at 02:00 PDT and bottoms at 16:00,
# against the duck curve that the same source's carbon intensity shows, and PJM/NYISO
# winter peaks fall at 23:00 and 12:00 EST instead of 07-08 and 17-19; ERCOT's are right).
# The two timestamp columns agree with each other in such files, so the labels alone
# cannot show the shift; the prices can. Every US market's price is low in the small
# hours and high in the evening of its local day, so `auto` reads the file both ways and
# keeps the reading whose evening (17-21 h) ranks highest above the night (1-5 h).
EVENING_HOURS, NIGHT_HOURS = (17, 18, 19, 20, 21), (1, 2, 3, 4, 5)
MIN_DAYS_TO_DETECT = 7          # fewer whole days: too little evidence, trust the labels
SHIFT_MARGIN = 0.2              # the shifted reading must win by this much (rank units)


def _price_frame(path: str | Path) -> pd.DataFrame:
    frame = read_csv_file(path)
    _require(frame, ["Datetime (UTC)", "Datetime (Local)", "Price (USD/MWh)"], path)
    return frame


def _timestamps(frame: pd.DataFrame, path: str | Path) -> tuple[pd.Series, pd.Series]:
    """(UTC instants, naive local wall times) of a price file."""
    wall = frame["Datetime (Local)"].astype(str).str.slice(0, 19)
    return (time_column(frame, "Datetime (UTC)", path, utc=True),
            time_column(frame.assign(wall=wall), "wall", path, label="Datetime (Local)"))


def evening_lift(local_hours: pd.Series, days: pd.Series, price: np.ndarray) -> float:
    """How far evening prices rank above night prices within each local day (-1..1),
    averaged over days with all 24 hours."""
    df = pd.DataFrame({"p": price, "day": days.to_numpy(), "h": local_hours.to_numpy()})
    whole = df.groupby("day")["h"].transform("nunique") == 24
    df = df[whole]
    if df["day"].nunique() < MIN_DAYS_TO_DETECT:
        return float("nan")
    rank = df.groupby("day")["p"].rank(pct=True)
    profile = rank.groupby(df["h"]).mean()
    return float(profile.reindex(EVENING_HOURS).mean() - profile.reindex(NIGHT_HOURS).mean())


def detect_price_clock(path: str | Path) -> Literal["utc", "local-is-utc"]:
    """The reading of a price file's clock that its prices support (see above): `utc`
    unless reading the local wall time as UTC makes the daily shape clearly right."""
    frame = _price_frame(path)
    utc, wall = _timestamps(frame, path)
    return _detect(utc, wall, numeric_column(frame, "Price (USD/MWh)", str(path)))


def _detect(utc: pd.Series, wall: pd.Series, price: np.ndarray
            ) -> Literal["utc", "local-is-utc"]:
    offset = wall - utc.dt.tz_localize(None)          # the file's own UTC offset per row
    as_labelled = evening_lift(wall.dt.hour, wall.dt.date, price)
    shifted_local = wall + offset                     # wall time taken as UTC, made local
    as_shifted = evening_lift(shifted_local.dt.hour, shifted_local.dt.date, price)
    if np.isfinite(as_shifted) and np.isfinite(as_labelled) \
            and as_shifted > as_labelled + SHIFT_MARGIN:
        return "local-is-utc"
    return "utc"


def read_prices(path: str | Path, clock: PriceClock = "auto") -> pd.Series:
    """Hourly wholesale price, $/MWh, indexed by UTC hour.

    clock: `utc` trusts `Datetime (UTC)`; `local-is-utc` reads the wall time of
    `Datetime (Local)` as UTC (the fix for shifted files, above); `auto` detects which of
    the two the file's prices support (`detect_price_clock`).
    """
    if clock not in PRICE_CLOCKS:
        raise ScenarioError("price_clock", f"must be one of {', '.join(PRICE_CLOCKS)}", clock)
    frame = _price_frame(path)
    utc, wall = _timestamps(frame, path)
    price = numeric_column(frame, "Price (USD/MWh)", str(path))
    if clock == "auto":
        clock = _detect(utc, wall, price)
    index = wall.dt.tz_localize("UTC") if clock == "local-is-utc" else utc
    return pd.Series(price, index=pd.DatetimeIndex(index), name="price")


def read_carbon(path: str | Path, kind: str = "direct") -> pd.Series:
    """Hourly carbon intensity, gCO2eq/kWh (`direct` or `LCA`), indexed by UTC hour."""
    frame = read_csv_file(path)
    column = f"Carbon Intensity gCO₂eq/kWh ({kind})"
    _require(frame, ["Datetime (UTC)", column], path)
    index = time_column(frame, "Datetime (UTC)", path, utc=True)
    return pd.Series(numeric_column(frame, column, str(path)), index=index, name="ci")


def read_weather(path: str | Path) -> tuple[Location, pd.DataFrame]:
    """Hourly weather in local time, and the site's location from the first comment line."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(str(path), "file not found")
    try:
        with path.open(encoding="utf-8") as f:
            header = f.readline()
    except UnicodeDecodeError:
        raise ScenarioError(str(path), f"{path.name} is not UTF-8 text") from None
    meta = dict(re.findall(r"(\w+)=([^\s]+)", header))
    try:
        loc = Location(float(meta["latitude"]), float(meta["longitude"]),
                       float(meta.get("elevation_m", 0.0)), meta["timezone"])
        zoneinfo.ZoneInfo(loc.timezone)
    except KeyError as exc:
        raise ScenarioError(str(path), f"first line lacks {exc.args[0]}=...") from None
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise ScenarioError(str(path), "first line's latitude, longitude, elevation_m or "
                            "timezone is not a valid value") from None
    frame = read_csv_file(path, comment="#")
    _require(frame, ["time_local", "cloudcover_pct"], path)
    frame["cloudcover_pct"] = numeric_column(frame, "cloudcover_pct", str(path))
    local = time_column(frame, "time_local", path)
    if local.dt.tz is not None:          # times with their offsets: instants, no guessing
        index = local.dt.tz_convert(loc.timezone)
    else:    # local wall-clock hours: resolve DST gaps/overlaps instead of failing on them
        index = local.dt.tz_localize(loc.timezone, ambiguous="NaT", nonexistent="NaT")
    frame = frame.set_index(pd.DatetimeIndex(index)).drop(columns="time_local")
    frame = frame[frame.index.notna()]
    return loc, frame[~frame.index.duplicated()]


def read_trace(path: str | Path) -> pd.Series:
    """Request timestamps (UTC) of an inference trace (`TIMESTAMP` column)."""
    frame = read_csv_file(path)
    _require(frame, ["TIMESTAMP"], path)
    if frame.empty:
        raise ScenarioError(str(path), "line 2: no requests after the header")
    return pd.Series(time_column(frame, "TIMESTAMP", path, utc=True), name="timestamp")


def counts_per_slot(timestamps: pd.Series, slot_minutes: float) -> np.ndarray:
    """Arrivals per slot over the span of a trace (first to last slot it touches)."""
    t = timestamps.sort_values()
    start = t.iloc[0].floor(f"{slot_minutes}min")
    bins = ((t - start).dt.total_seconds() // (60 * slot_minutes)).astype(int)
    return np.bincount(bins.to_numpy()).astype(float)


def on_clock(series: pd.Series, start: pd.Timestamp, slots: int, slot_minutes: int,
             key: str | None = None) -> np.ndarray:
    """Sample an hourly series at slot starts (held constant within the hour), on the
    scenario's clock starting at `start` (tz-aware). Gaps are filled from neighbours.
    Errors name `key` (the file, say), else the series' name."""
    key = key or str(series.name or "series")
    times = start + pd.to_timedelta(np.arange(slots) * slot_minutes, unit="min")
    hourly = series.copy()
    hourly.index = hourly.index.tz_convert("UTC")
    hourly = hourly[~hourly.index.duplicated()].sort_index().dropna()
    if hourly.empty:
        raise ScenarioError(key, "has no values")
    hours = times.tz_convert("UTC").floor("h")
    first, last = hourly.index[0], hourly.index[-1]
    if hours[0] < first - pd.Timedelta(hours=1) or hours[-1] > last + pd.Timedelta(hours=1):
        raise ScenarioError(key, f"data covers {first} to {last}, not the horizon starting "
                            f"{start}")
    wanted = hours.unique()
    values = hourly.reindex(hourly.index.union(wanted)).interpolate("time").ffill().bfill()
    return values.reindex(hours).to_numpy(float)
