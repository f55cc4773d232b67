"""The embedded `multisite-N` family (data card: defaults/multisite.md): N sites (2..200)
drawn from the four regions jemas-3 has fitted day generators for, for scaling the oracle.

The draw (region and coordinates of each site) is seeded by (family seed, N), so
`multisite-30` is one fixed set of sites. Each site copies the hardware, model and the two
job classes (one interactive, one deferrable) of its region's jemas-3 site; its day is the
region's generated day (prices, cloud, carbon, one draw per region and day) with a small
seeded per-site perturbation, PV computed at the site's own coordinates, and its own
arrivals. Transfer latency and cost grow with the great-circle distance between sites.
Day numbers, calendar and train/test split are jemas-3's.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from optsched.data import generator as gen
from optsched.data.readers import Location
from optsched.errors import ScenarioError
from optsched.scenario import jemas3
from optsched.scenario.load import scenario_from_dict
from optsched.scenario.schema import Scenario

PREFIX = "multisite-"
BASE_FILE = "multisite.toml"
_NAME = re.compile(r"^multisite-(0|[1-9]\d*)$")           # one spelling per family
_DEFAULTS = resources.files("optsched.scenario") / "defaults"


def size_of(source: object) -> int | None:
    """N of a family name `multisite-N`, None for anything else (N is checked later)."""
    m = _NAME.match(str(source))
    return int(m[1]) if m else None


@functools.cache
def base() -> dict:
    return tomllib.loads((_DEFAULTS / BASE_FILE).read_text())


@dataclass(frozen=True)
class Site:
    name: str
    region: str             # key of jemas3_params.json's regions
    template: str           # the jemas-3 site whose hardware and classes it copies
    latitude: float
    longitude: float


def _check_n(n: int) -> None:
    lo, hi = int(base()["min_sites"]), int(base()["max_sites"])
    if not lo <= n <= hi:
        raise ScenarioError("SCENARIO", f"multisite-N needs {lo} <= N <= {hi}", f"{PREFIX}{n}")


@functools.cache
def sites(n: int) -> tuple[Site, ...]:
    """The N sites of `multisite-N`: region uniformly among the four, coordinates the
    region's point plus a normal offset (degrees)."""
    _check_n(n)
    fam = base()
    regions = jemas3.params()["regions"]
    rng = np.random.default_rng([int(fam["seed"]), n])
    drawn = rng.integers(len(fam["regions"]), size=n)
    offset = rng.normal(0.0, float(fam["coord_sigma_deg"]), size=(n, 2))
    out = []
    for j, (r, (dlat, dlon)) in enumerate(zip(drawn, offset, strict=True)):
        region = fam["regions"][int(r)]
        loc = regions[region]["location"]
        out.append(Site(f"{region}-{j:03d}", region, fam["template"][region],
                        round(float(loc["latitude"] + dlat), 4),
                        round(float(loc["longitude"] + dlon), 4)))
    return tuple(out)


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
                 ) -> np.ndarray:
    """Great-circle distance (km) on a sphere of the family's Earth radius."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2.0 * float(base()["network"]["earth_radius_km"]) * np.arcsin(np.sqrt(a))


def network(site_list: tuple[Site, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Transfer latency (s) and cost ($ per job) between every pair of sites, 0 on the
    diagonal: a fixed part plus a part proportional to the great-circle distance."""
    net = base()["network"]
    lat = np.array([s.latitude for s in site_list])
    lon = np.array([s.longitude for s in site_list])
    km = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    off = ~np.eye(len(site_list), dtype=bool)
    latency = off * (net["fixed_latency_s"]
                     + net["route_factor"] * km / net["fibre_km_per_s"])
    cost = off * (net["fixed_cost"] + net["cost_per_km"] * km)
    return np.round(latency, 6), np.round(cost, 8)


def _round(a: np.ndarray, digits: int) -> list[float]:
    return [float(v) for v in np.round(a, digits)]


def day_dict(n: int, day: int) -> dict:
    """The raw scenario mapping of day `day` of `multisite-n` (validated by the loader)."""
    if not 0 <= day < jemas3.n_days():
        raise ScenarioError("--day", f"must be in 0..{jemas3.n_days() - 1} for "
                            f"{PREFIX}{n}", day)
    fam, jb, params = base(), jemas3.base(), jemas3.params()
    jfam, h = jb["family"], jb["horizon"]
    site_list = sites(n)
    date = jemas3.date_of(day)
    times = gen.slot_times(date, h["slots"], h["slot_minutes"], jfam["reference_tz"])
    seed = int(fam["seed"])
    regional = {}
    for r, region in enumerate(fam["regions"]):          # one draw per region and day
        p, rr = params["regions"][region], np.random.default_rng([seed, day, r])
        regional[region] = (gen.price_hourly(p["price"], date, rr),
                            gen.cloud_hourly(p["cloud"], date, rr),
                            gen.carbon_hourly(p["carbon"], date, rr),
                            float(np.exp(rr.normal(0.0, jfam["daily_level_sigma"]))))
    templates = {s["name"]: s for s in jb["sites"]}
    out_sites, out_classes = [], []
    for j, site in enumerate(site_list):
        rs = np.random.default_rng([seed, n, day, j])
        price_h, cloud_h, carbon_h, level = regional[site.region]
        region = params["regions"][site.region]["location"]
        loc = Location(site.latitude, site.longitude, float(region["elevation_m"]),
                       region["timezone"])
        price_h = (price_h * np.exp(rs.normal(0.0, fam["price_level_sigma"]))
                   * np.exp(rs.normal(0.0, fam["price_hourly_sigma"], len(price_h))))
        cloud_h = np.clip(cloud_h + rs.normal(0.0, fam["cloud_sd_pct"], len(cloud_h)), 0, 100)
        carbon_h = carbon_h * np.exp(rs.normal(0.0, fam["carbon_level_sigma"]))
        raw_site = json.loads(json.dumps(templates[site.template]))
        raw_site["name"] = site.name
        raw_site["price"] = _round(gen.to_slots(price_h, times, date, loc.timezone), 3)
        raw_site["renewable_kw"] = _round(gen.pv_slots(
            fam["pv_kwp"][site.region], loc, times,
            gen.to_slots(cloud_h, times, date, loc.timezone), h["slot_minutes"]), 4)
        raw_site["carbon_intensity"] = _round(gen.to_slots(carbon_h, times, date,
                                                           loc.timezone), 1)
        out_sites.append(raw_site)
        hours = gen.local_hours(times, loc.timezone)
        for cl in jb["classes"]:
            if cl["home"] != site.template:
                continue
            raw_cl = dict(cl, name=site.name + cl["name"].removeprefix(site.template),
                          home=site.name)
            raw_cl["arrivals"] = gen.arrivals_slots(
                jfam["peak_jobs"][cl["name"]], jfam["arrival_shape"], hours, level,
                params["arrivals"]["burst_sigma"], params["arrivals"]["burst_phi"],
                rs).tolist()
            out_classes.append(raw_cl)
    latency, cost = network(site_list)
    split = "held-out test" if jemas3.is_test_day(day) else "training"
    return {
        "name": f"{PREFIX}{n}/day-{day:03d}",
        "description": f"{fam['description']} (N = {n}); generated day {day} "
                       f"({date.isoformat()}, {split} split)",
        "horizon": dict(h), "sites": out_sites,
        "models": [m for m in jb["models"] if m["name"] in {s["model"] for s in out_sites}],
        "network": {"transfer_latency_s": latency.tolist(), "transfer_cost": cost.tolist()},
        "classes": out_classes,
    }


@dataclass(frozen=True)
class Multisite:
    """One `multisite-N` family, with the interface of an embedded family's module
    (optsched.scenario._MODULES): split, calendar, fingerprint, day_dict, scenario."""

    n: int

    def __post_init__(self) -> None:
        _check_n(self.n)

    @staticmethod
    def n_days() -> int:
        return jemas3.n_days()

    @staticmethod
    def is_test_day(day: int) -> bool:
        return jemas3.is_test_day(day)

    @staticmethod
    def train_days() -> list[int]:
        return jemas3.train_days()

    @staticmethod
    def test_days() -> list[int]:
        return jemas3.test_days()

    @staticmethod
    def date_of(day: int):
        return jemas3.date_of(day)

    def fingerprint(self) -> str:
        """sha256 of jemas-3's definition, this family's base and code, and N."""
        digest = hashlib.sha256(jemas3.fingerprint().encode())
        digest.update((_DEFAULTS / BASE_FILE).read_bytes())
        digest.update(Path(__file__).read_bytes())
        digest.update(str(self.n).encode())
        return digest.hexdigest()

    def day_dict(self, day: int) -> dict:
        return day_dict(self.n, day)

    def scenario(self, day: int | None = None) -> Scenario:
        """One day; without `day`, the first held-out test day."""
        return scenario_from_dict(self.day_dict(self.test_days()[0] if day is None
                                                else int(day)))
