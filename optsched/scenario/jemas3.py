"""The embedded `jemas-3` family: a static base (defaults/jemas3.toml) plus one generated day
of series per day index, validated by the one scenario loader."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np

from optsched.data import generator as gen
from optsched.data.readers import Location
from optsched.errors import ScenarioError
from optsched.scenario.load import scenario_from_dict
from optsched.scenario.schema import Scenario

NAME = "jemas-3"
_DEFAULTS = resources.files("optsched.scenario") / "defaults"


@functools.cache
def base() -> dict:
    return tomllib.loads((_DEFAULTS / "jemas3.toml").read_text())


@functools.cache
def params() -> dict:
    return json.loads((_DEFAULTS / "jemas3_params.json").read_text())


@functools.cache
def fingerprint() -> str:
    """sha256 of the family's definition: its static base, its fitted parameters and the
    generator code that turns them into days. Caches of generated days key on it."""
    digest = hashlib.sha256()
    for name in ("jemas3.toml", "jemas3_params.json"):
        digest.update((_DEFAULTS / name).read_bytes())
    for mod in ("generator.py", "solar.py"):
        digest.update((resources.files("optsched.data") / mod).read_bytes())
    digest.update(Path(__file__).read_bytes())          # the family's own day assembly
    return digest.hexdigest()


def n_days() -> int:
    return int(base()["family"]["days"])


def is_test_day(day: int) -> bool:
    every = int(base()["family"]["test_every"])
    return day % every == every - 1


def train_days() -> list[int]:
    return [d for d in range(n_days()) if not is_test_day(d)]


def test_days() -> list[int]:
    return [d for d in range(n_days()) if is_test_day(d)]


def date_of(day: int) -> dt.date:
    return dt.date(2023, 1, 1) + dt.timedelta(days=day)


def day_dict(day: int) -> dict:
    """The raw scenario mapping of one day: the base with every series generated."""
    if not 0 <= day < n_days():
        raise ScenarioError("--day", f"must be in 0..{n_days() - 1} for {NAME}", day)
    raw = json.loads(json.dumps(base()))                     # deep copy
    fam = raw.pop("family")
    p = params()
    h = raw["horizon"]
    date = date_of(day)
    times = gen.slot_times(date, h["slots"], h["slot_minutes"], fam["reference_tz"])
    rng = np.random.default_rng([int(fam["seed"]), day])
    site_rngs = dict(zip([s["name"] for s in raw["sites"]],
                         rng.spawn(len(raw["sites"])), strict=True))
    tz_of, level_of = {}, {}
    for site in raw["sites"]:
        r = site_rngs[site["name"]]
        region = p["regions"][fam["regions"][site["name"]]]
        loc = Location(**region["location"])
        tz_of[site["name"]] = loc.timezone
        level_of[site["name"]] = float(np.exp(r.normal(0.0, fam["daily_level_sigma"])))
        hourly_price = gen.price_hourly(region["price"], date, r)
        cloud = gen.to_slots(gen.cloud_hourly(region["cloud"], date, r), times, date,
                             loc.timezone)
        site["price"] = _round(gen.to_slots(hourly_price, times, date, loc.timezone), 3)
        site["renewable_kw"] = _round(gen.pv_slots(fam["pv_kwp"][site["name"]], loc, times,
                                                   cloud, h["slot_minutes"]), 4)
        site["carbon_intensity"] = _round(gen.to_slots(
            gen.carbon_hourly(region["carbon"], date, r), times, date, loc.timezone), 1)
    burst = p["arrivals"]
    for cl in raw["classes"]:
        home = cl["home"]
        cl["arrivals"] = gen.arrivals_slots(
            fam["peak_jobs"][cl["name"]], fam["arrival_shape"],
            gen.local_hours(times, tz_of[home]), level_of[home], burst["burst_sigma"],
            burst["burst_phi"], site_rngs[home]).tolist()
    split = "held-out test" if is_test_day(day) else "training"
    raw["name"] = f"{NAME}/day-{day:03d}"
    raw["description"] = (f"{raw['description']}; generated day {day} ({date.isoformat()}, "
                          f"{split} split)")
    return raw


def _round(a: np.ndarray, digits: int) -> list[float]:
    return [float(v) for v in np.round(a, digits)]


def jemas3(day: int | None = None) -> Scenario:
    """One day of the family; without `day`, the first held-out test day."""
    return scenario_from_dict(day_dict(test_days()[0] if day is None else day))
