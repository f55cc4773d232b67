"""Benchmark instances: the default day, and larger ones built from jemas-3 days.

`scaled(sites, days)` repeats the three jemas-3 sites (with their classes) to `sites`
sites, and concatenates `days` consecutive generated days into one horizon. Every
instance goes through the scenario loader, like any user scenario.
"""

from __future__ import annotations

import copy

from optsched.scenario import Compiled, compile_scenario, scenario_from_dict
from optsched.scenario.jemas3 import day_dict, test_days


def scaled(sites: int, days: int, first_day: int | None = None) -> Compiled:
    first = test_days()[0] if first_day is None else first_day
    raws = [day_dict(first + d) for d in range(days)]
    base = copy.deepcopy(raws[0])
    n_base = len(base["sites"])
    base["horizon"]["slots"] = base["horizon"]["slots"] * days
    out_sites, out_classes = [], []
    for j in range(sites):
        src = j % n_base
        site = copy.deepcopy(base["sites"][src])
        name = site["name"] if sites == n_base else f"{site['name']}-{j}"
        site["name"] = name
        for key in ("price", "renewable_kw", "carbon_intensity"):
            site[key] = [v for r in raws for v in r["sites"][src][key]]
        out_sites.append(site)
        for k, cl in enumerate(base["classes"]):
            if cl["home"] != base["sites"][src]["name"]:
                continue
            cl = copy.deepcopy(cl)
            cl["name"] = cl["name"] if sites == n_base else f"{cl['name']}-{j}"
            cl["home"] = name
            cl["arrivals"] = [v for r in raws for v in r["classes"][k]["arrivals"]]
            out_classes.append(cl)
    lat, cost = base["network"]["transfer_latency_s"], base["network"]["transfer_cost"]
    far = [[0.0 if a == b else max(lat[a % n_base][b % n_base], 0.1) for b in range(sites)]
           for a in range(sites)]
    kappa = [[0.0 if a == b else max(cost[a % n_base][b % n_base], 0.0002)
              for b in range(sites)] for a in range(sites)]
    base.update(sites=out_sites, classes=out_classes, name=f"jemas-3x{sites}s{days}d",
                network={"transfer_latency_s": far, "transfer_cost": kappa})
    return compile_scenario(scenario_from_dict(base))


INSTANCES = {
    "default": (3, 1),
    "10 sites x 1 day": (10, 1),
    "3 sites x 7 days": (3, 7),
    "5 sites x 7 days": (5, 7),
    "10 sites x 7 days": (10, 7),
}


def instance(name: str) -> Compiled:
    sites, days = INSTANCES[name]
    return scaled(sites, days)
