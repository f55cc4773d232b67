"""The embedded `jemas-3-genai` family (data card: defaults/jemas3-genai.md): jemas-3's day
of the same number (prices, weather, carbon, sites, models, classes) with its arrivals
replaced by a day of the GenTD26 workload model, and GPUs sized by a production rule.

Per site and day, one workload day is sampled (`optsched.workload.sample_day`, seeded by
(family seed, day, site), weekday from the day's date), scaled to the jemas-3 site's mean
daily jobs, read on the site's local clock and rotated onto the reference clock. A job is
one image: the interactive class counts one-image requests, the batch class (deferrable,
`batch_max_wait_slots`) the images of requests for several. GPUs per site come from the
sizing rule in the base (`size_gpus`, written by `python -m optsched.scenario.genai
--size`); each site's grid connection, battery and PV scale with its GPU count, so the
energy side keeps jemas-3's proportions. Training and held-out days are jemas-3's.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import re
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np

from optsched import physics
from optsched.errors import ScenarioError
from optsched.scenario import jemas3
from optsched.scenario.load import scenario_from_dict
from optsched.scenario.schema import Scenario
from optsched.workload import CLASSES, load_default, sample_day

NAME = "jemas-3-genai"
BASE_FILE = "jemas3-genai.toml"
_DEFAULTS = resources.files("optsched.scenario") / "defaults"
BATTERY_KW_KWH = ("capacity_kwh", "soc_min_kwh", "soc_max_kwh", "soc0_kwh", "ch_max_kw",
                  "dis_max_kw")

# The split, the calendar and the day count are jemas-3's (same day numbers, same rule).
n_days, is_test_day = jemas3.n_days, jemas3.is_test_day
train_days, test_days, date_of = jemas3.train_days, jemas3.test_days, jemas3.date_of


@functools.cache
def base() -> dict:
    return tomllib.loads((_DEFAULTS / BASE_FILE).read_text())


@functools.cache
def fingerprint() -> str:
    """sha256 of everything a day is generated from: jemas-3's fingerprint, this family's
    base, the workload model's parameters and code, and this module."""
    digest = hashlib.sha256(jemas3.fingerprint().encode())
    digest.update((_DEFAULTS / BASE_FILE).read_bytes())
    work = resources.files("optsched.workload")
    for name in ("genai_params.json", "model.py", "sampler.py"):
        digest.update(work.joinpath(name).read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()


def _check_day(day: int) -> None:
    if not 0 <= day < n_days():
        raise ScenarioError("--day", f"must be in 0..{n_days() - 1} for {NAME}", day)


def site_jobs_per_day() -> dict[str, float]:
    """jemas-3's expected jobs a day per site (both classes): peak x mean diurnal shape x
    slots (its level and burst multipliers have mean 1)."""
    fam = jemas3.base()["family"]
    slots = jemas3.base()["horizon"]["slots"]
    shape = float(np.mean(fam["arrival_shape"]))
    out: dict[str, float] = {}
    for cl in jemas3.base()["classes"]:
        out[cl["home"]] = out.get(cl["home"], 0.0) + fam["peak_jobs"][cl["name"]] * shape * slots
    return out


def site_arrivals(day: int, site: int) -> np.ndarray:
    """Jobs (images) per slot of one site's classes, [CLASSES, T], on the reference clock."""
    h = jemas3.base()["horizon"]
    T, minutes = int(h["slots"]), int(h["slot_minutes"])
    if T * minutes != 1440:
        raise ScenarioError("horizon", f"{NAME} needs a one-day horizon", (minutes, T))
    work = base()["workload"]
    name = jemas3.base()["sites"][site]["name"]
    model = load_default()
    sizes = model.sizes
    images_per_request = float(np.dot(sizes.prob, sizes.images) / np.sum(sizes.prob))
    seed = int(np.random.SeedSequence([int(work["seed"]), day, site]).generate_state(1)[0])
    w = sample_day(model, seed, date_of(day).weekday(), minutes, T,
                   site_jobs_per_day()[name] / images_per_request)
    jobs = w.counts(minutes, weights=w.images)            # images: one job each
    # Local time = reference time - behind: local slot s is reference slot s + behind.
    return np.roll(jobs, int(work["behind_reference_h"][name]) * 60 // minutes, axis=1)


@functools.cache
def arrivals(day: int) -> np.ndarray:
    """Jobs per class (jemas-3's class order) and slot of one day, [K, T]; cheap (no
    prices or weather), so forecasts read earlier days from here."""
    _check_day(day)
    sites = [s["name"] for s in jemas3.base()["sites"]]
    per_site = {name: site_arrivals(day, i) for i, name in enumerate(sites)}
    rows = []
    for cl in jemas3.base()["classes"]:
        kind = 0 if cl["kind"] == "interactive" else CLASSES.index("batch")
        rows.append(per_site[cl["home"]][kind])
    out = np.asarray(rows)
    out.setflags(write=False)
    return out


def day_dict(day: int) -> dict:
    """The raw scenario mapping of one day (validated by the one loader in `genai`)."""
    _check_day(day)
    raw = jemas3.day_dict(day)
    fam = base()
    gpus = fam["sizing"]["gpus"]
    for site in raw["sites"]:
        scale = gpus[site["name"]] / site["gpus"]
        site["gpus"] = int(gpus[site["name"]])
        site["import_cap_kw"] = round(site["import_cap_kw"] * scale, 4)
        if "battery" in site:
            for key in BATTERY_KW_KWH:
                site["battery"][key] = round(site["battery"][key] * scale, 4)
        if "renewable_kw" in site:
            site["renewable_kw"] = [round(v * scale, 4) for v in site["renewable_kw"]]
    for cl, series in zip(raw["classes"], arrivals(day), strict=True):
        cl["arrivals"] = series.tolist()
        if cl["kind"] == "deferrable":
            cl["max_wait_slots"] = int(fam["workload"]["batch_max_wait_slots"])
    for section in ("queueing", "provisioning"):
        if section in fam:
            raw[section] = dict(fam[section])
    split = "held-out test" if is_test_day(day) else "training"
    raw["name"] = f"{NAME}/day-{day:03d}"
    raw["description"] = (f"{fam['description']}; day {day} ({date_of(day).isoformat()}, "
                          f"{split} split)")
    return raw


@functools.cache
def mean_train_arrivals() -> np.ndarray:
    """The family's mean training day, jobs per class and slot [K, T] (~12 s, once)."""
    out = np.mean([arrivals(d) for d in train_days()], axis=0)
    out.setflags(write=False)
    return out


def replay_base(day: int) -> dict:
    """The base of a real trace day replayed on family day `day`: that day (sites, GPUs,
    prices, weather, modes) with each class's arrivals the family's mean training day.
    A GenTD26 build keeps a base class's mean volume and takes shape and day level from
    the trace, so the replay's volume is the trace day's level alone, not times this
    day's own random level as well."""
    raw = day_dict(day)
    for cl, series in zip(raw["classes"], mean_train_arrivals(), strict=True):
        cl["arrivals"] = [float(v) for v in np.round(series, 3)]
    return raw


def day_of(date) -> int:
    """The family day of a calendar date (its days are jemas-3's, 2023)."""
    day = (date - date_of(0)).days
    if not 0 <= day < n_days():
        raise ScenarioError("--day", f"{NAME} covers {date_of(0)}..{date_of(n_days() - 1)}",
                            date.isoformat())
    return day


def genai(day: int | None = None) -> Scenario:
    """One day of the family; without `day`, the first held-out test day."""
    return scenario_from_dict(day_dict(test_days()[0] if day is None else day))


def size_gpus(days: list[int] | None = None) -> dict[str, int]:
    """The sizing rule of the base's [sizing] over `days` (default: every training day):
    per site, the quantile of per-slot GPU-seconds demanded at home at the reference option
    (steps, clock) divided by the usable GPU-seconds of one GPU in a slot, rounded up."""
    rule = base()["sizing"]
    jb = jemas3.base()
    models = {m["name"]: m for m in jb["models"]}
    dt_s = 60.0 * jb["horizon"]["slot_minutes"]
    days = train_days() if days is None else days
    stack = np.stack([arrivals(d) for d in days])                  # [D, K, T]
    homes = [cl["home"] for cl in jb["classes"]]
    out = {}
    for site in jb["sites"]:
        m = models[site["model"]]
        gpu_s = float(physics.gpu_seconds(np.array([rule["reference_steps"]]),
                                          np.array([rule["reference_clock"]]),
                                          m["step_time_s"], m.get("fixed_time_s", 0.0))[0])
        mine = [k for k, h in enumerate(homes) if h == site["name"]]
        demand = stack[:, mine].sum(axis=1) * gpu_s                 # [D, T] GPU-seconds
        need = np.quantile(demand, rule["quantile"]) / (site.get("util_cap", 1.0) * dt_s)
        out[site["name"]] = int(math.ceil(need))
    return out


def write_sizing(path: Path | None = None) -> dict[str, int]:
    """Rewrite the base's `gpus = {...}` line with `size_gpus()` (the only line changed)."""
    from optsched.io import atomic_write_text

    gpus = size_gpus()
    target = path or Path(__file__).parent / "defaults" / BASE_FILE
    text = target.read_text()
    line = "gpus = { " + ", ".join(f"{k} = {v}" for k, v in gpus.items()) + " }"
    new, n = re.subn(r"(?m)^gpus = \{.*\}$", line, text)
    if n != 1:
        raise ScenarioError(str(target), "expected one `gpus = {...}` line under [sizing]")
    atomic_write_text(target, new)
    return gpus


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", action="store_true", help="apply the sizing rule to the base")
    args = ap.parse_args(argv)
    if args.size:
        print(json.dumps(write_sizing()))


if __name__ == "__main__":
    main()
