"""Build a scenario for a real calendar day from hourly CSV files (formats: readers.py).

The base gives everything static (models, sites, classes, network) and, for the embedded
family, each site's region, PV size and arrival profile. Real files then replace the
series: prices, PV from weather (pvlib clear sky x cloud cover), carbon intensity, and,
with a request trace, the arrivals: an Azure LLM trace (`TIMESTAMP`) gives the slot-to-slot
fluctuation of the base's profile; a GenTD26 text-to-image trace (optsched/workload) gives
one real day's arrivals per slot and class (`genai_arrivals`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from optsched.data import generator as gen
from optsched.data.readers import (
    PRICE_CLOCKS,
    PriceClock,
    counts_per_slot,
    on_clock,
    read_carbon,
    read_prices,
    read_trace,
    read_weather,
)
from optsched.errors import ScenarioError
from optsched.workload.sampler import CLASSES, day_from_trace
from optsched.workload.trace import (
    daily_counts,
    is_genai_trace,
    read_genai_trace,
    steady_days,
)


def trace_pattern(trace_path: str | Path, slot_minutes: int, slots: int) -> np.ndarray:
    """Arrivals per slot of a trace, normalised to mean 1, repeated over the horizon.
    Partial first and last slots are dropped."""
    counts = counts_per_slot(read_trace(trace_path), slot_minutes)
    counts = counts[1:-1] if len(counts) > 2 else counts
    if counts.sum() <= 0:
        raise ScenarioError(str(trace_path), "trace has no complete slot of arrivals")
    return np.resize(counts / counts.mean(), slots)


def genai_trace_day(trace: pd.DataFrame, date: dt.date, path: str | Path) -> dt.date:
    """The trace day to replay for a scenario day: `date` itself when the trace holds it,
    otherwise one of the trace's steady days (after its ramp-up) of the same weekday,
    taken in turn week by week, so that consecutive weeks replay different real days."""
    if pd.Timestamp(date) in daily_counts(trace).index:
        return date
    days = steady_days(trace).index
    same = [d.date() for d in days if d.weekday() == date.weekday()]
    if not same:
        raise ScenarioError(str(path), f"trace has no steady day on a "
                            f"{date.strftime('%A')} to replay for {date.isoformat()}")
    return same[(date.toordinal() // 7) % len(same)]


def genai_arrivals(trace_path: str | Path, date: dt.date, slot_minutes: int, slots: int,
                   trace_day: dt.date | None = None) -> tuple[dict[str, np.ndarray], dt.date]:
    """Arrivals per slot of one real GenTD26 day, per workload class (interactive: one
    image, batch: more), each divided by its class's mean over the trace's steady days in
    the same window (so 1 per slot on an average day; a busy day is busier; a class with
    no such requests is left out), and the day replayed (`genai_trace_day` unless
    `trace_day` is given)."""
    trace = read_genai_trace(trace_path)
    day = trace_day or genai_trace_day(trace, date, trace_path)
    counts = day_from_trace(trace, day, slot_minutes, slots).counts()
    steady = steady_days(trace).index
    mean = sum(day_from_trace(trace, d, slot_minutes, slots).counts().sum(axis=1)
               for d in steady) / (len(steady) * slots)
    # A kind the trace lacks in the window is left out; build_day refuses a class of it.
    return ({name: counts[j] / mean[j] for j, name in enumerate(CLASSES) if mean[j] > 0},
            day)


KINDS = ("prices", "weather", "carbon")
MAX_PV_KWP = 1e7
FILE_PATTERN = "{region}_{year}.csv"


def find_files(data_dir: Path, kind: str, regions: dict[str, str], year: int,
               pattern: str = FILE_PATTERN) -> dict[str, Path]:
    """Each site's file <data_dir>/<kind>/<pattern> for the day's year; a missing one is
    an error naming the file looked for."""
    folder = Path(data_dir) / kind
    out = {}
    for site, region in regions.items():
        try:
            # Only the bare fields: "{region.__class__}" or a width of 10**11 are not names.
            if set(re.findall(r"\{([^{}]*)\}", pattern)) - {"region", "year"}:
                raise ValueError(pattern)
            name = pattern.format(region=region, year=year)
        except (KeyError, IndexError, ValueError):
            raise ScenarioError("--pattern", "may use only {region} and {year}",
                                pattern) from None
        if not (folder / name).is_file():
            raise ScenarioError("--data-dir", f"no {kind} file for site {site} in "
                                f"{year} (looked for {str(folder / name)!r})")
        out[site] = folder / name
    return out


def price_clocks(sites: list[str], spec: PriceClock | Mapping[str, str]) -> dict[str, str]:
    """One clock mode per site: a single mode for all, or a mapping site -> mode in which
    the key "*" (if present) sets the mode of the sites it does not name ("auto" else)."""
    mapping = {"*": spec} if isinstance(spec, str) else dict(spec)
    for site, mode in mapping.items():
        if site != "*" and site not in sites:
            raise ScenarioError("--price-clock", f"unknown site (known: {', '.join(sites)})",
                                site)
        if mode not in PRICE_CLOCKS:
            raise ScenarioError("--price-clock", f"must be one of {', '.join(PRICE_CLOCKS)}",
                                mode)
    default = mapping.get("*", "auto")
    return {site: mapping.get(site, default) for site in sites}


def parse_price_clock(values: list[str]) -> dict[str, str]:
    """Command-line form -> the mapping `price_clocks` takes: each value is MODE (all
    sites not named otherwise) or SITE=MODE; the last of repeated keys wins."""
    out: dict[str, str] = {}
    for value in values:
        site, sep, mode = value.rpartition("=")
        key = site if sep else "*"
        if sep and not site:
            raise ScenarioError("--price-clock", "must be MODE or SITE=MODE", value)
        out[key] = mode
    return out


def build_day(base: dict, date: dt.date, *, data_dir: Path | None = None,
              prices: dict[str, Path] | None = None, weather: dict[str, Path] | None = None,
              carbon: dict[str, Path] | None = None, pv_kwp: dict[str, float] | None = None,
              trace: Path | None = None, trace_day: dt.date | None = None,
              price_clock: PriceClock | Mapping[str, str] = "auto",
              pattern: str = FILE_PATTERN) -> dict:
    """A raw scenario mapping for `date` (validate it with the scenario loader).

    `base` is a raw mapping: the embedded family's (with its [family] table) or a TOML
    file's. With `data_dir`, each site reads <data_dir>/<kind>/<pattern>, by default
    `{region}_{year}.csv` for the date's year, the region being the family's mapping or
    the site's name; explicit per-site paths (`prices`, `weather`, `carbon`) override or
    replace it. `price_clock` is one mode or a per-site mapping (see `price_clocks`);
    `auto` detects a shifted price file from its own rows (readers.detect_price_clock).
    `trace` is an Azure LLM trace (its slot pattern scales every class's profile) or a
    GenTD26 request trace, detected by its columns: then each class gets the real day's
    arrivals of its kind (interactive: one-image requests, deferrable: batches), scaled so
    that the class's profile total is the trace's mean day (`genai_arrivals`); `trace_day`
    picks the trace day to replay (default `genai_trace_day`).
    """
    raw = json.loads(json.dumps(base))
    fam = raw.pop("family", {})
    sites = [s["name"] for s in raw["sites"]]
    regions = {s: fam.get("regions", {}).get(s, s) for s in sites}
    for site, kwp in (pv_kwp or {}).items():
        if site not in sites:
            raise ScenarioError("--pv-kwp", f"unknown site (known: {', '.join(sites)})", site)
        # At most the schema's renewable_kw bound: 1e308 overflowed the PV model first.
        if not (isinstance(kwp, (int, float)) and 0 <= kwp <= MAX_PV_KWP):
            raise ScenarioError("--pv-kwp", f"must be a number of kWp in [0, {MAX_PV_KWP:g}]",
                                f"{site}={kwp}")
    pv_kwp = {**fam.get("pv_kwp", {}), **(pv_kwp or {})}
    h = raw.setdefault("horizon", {})
    slots, minutes = h.setdefault("slots", 288), h.setdefault("slot_minutes", 5)
    tz = fam.get("reference_tz", "America/New_York")
    times = gen.slot_times(date, slots, minutes, tz)
    start = times[0]
    clocks = price_clocks(sites, price_clock)
    found: dict[str, dict[str, Path]] = {}
    for kind, given in zip(KINDS, (prices, weather, carbon), strict=True):
        given = dict(given or {})
        for site in given:
            if site not in sites:
                raise ScenarioError(f"--{kind}", f"unknown site (known: {', '.join(sites)})",
                                    site)
        rest = {s: r for s, r in regions.items() if s not in given}
        found[kind] = {**given, **(find_files(data_dir, kind, rest, date.year, pattern)
                                   if data_dir else {})}
    price_files, weather_files, carbon_files = (found[kind] for kind in KINDS)
    tz_of: dict[str, str] = {}
    for site in raw["sites"]:
        name = site["name"]
        if name in price_files:
            series = read_prices(price_files[name], clock=clocks[name])
            site["price"] = _round(on_clock(series, start, slots, minutes,
                                            str(price_files[name])), 3)
        if name in carbon_files:
            site["carbon_intensity"] = _round(on_clock(
                read_carbon(carbon_files[name]), start, slots, minutes,
                str(carbon_files[name])), 1)
        if name in weather_files:
            loc, frame = read_weather(weather_files[name])
            tz_of[name] = loc.timezone
            if name in pv_kwp:
                cloud = on_clock(frame["cloudcover_pct"], start, slots, minutes,
                                 str(weather_files[name]))
                site["renewable_kw"] = _round(
                    gen.pv_slots(pv_kwp[name], loc, times, cloud, minutes), 4)
    genai, replayed = (genai_arrivals(trace, date, minutes, slots, trace_day)
                       if trace and is_genai_trace(trace) else (None, None))
    shape = trace_pattern(trace, minutes, slots) if trace and not genai else np.ones(slots)
    for cl in raw["classes"]:
        if "peak_jobs" in fam:          # the family's diurnal profile, no random bursts
            home_tz = tz_of.get(cl["home"], tz)
            base_arrivals = fam["peak_jobs"][cl["name"]] * np.interp(
                gen.local_hours(times, home_tz), np.arange(25),
                list(fam["arrival_shape"]) + [fam["arrival_shape"][0]])
        elif isinstance(cl.get("arrivals"), list) and len(cl["arrivals"]) == slots:
            base_arrivals = np.asarray(cl["arrivals"], float)
        else:
            raise ScenarioError(f"classes.{cl['name']}.arrivals", "the base must give one "
                                "value per slot to build a real day from")
        if genai:
            kind = CLASSES[0] if cl["kind"] == "interactive" else CLASSES[1]
            if kind not in genai:
                raise ScenarioError(str(trace), f"trace has no {kind} requests on its "
                                    "steady days in the horizon's window")
            base_arrivals = base_arrivals.mean() * genai[kind]
        cl["arrivals"] = [float(v) for v in np.round(base_arrivals * shape)]
    raw["name"] = f"{raw.get('name', 'scenario')}/{date.isoformat()}"
    used = (f" with trace {Path(trace).name}" if trace else "") + \
        (f" (day {replayed.isoformat()})" if replayed else "")
    raw["description"] = (f"{raw.get('description', '')}; real data of {date.isoformat()}"
                          f"{used}").lstrip("; ")
    return raw


def _round(a: np.ndarray, digits: int) -> list[float]:
    return [float(v) for v in np.round(a, digits)]
