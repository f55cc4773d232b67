"""Shared fixtures: tiny scenarios whose utilities can be computed by hand."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from optsched.scenario import compile_scenario, scenario_from_dict

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# One site, one class, two slots of one hour. At 10 steps and nominal clock a job takes
# 1 GPU-second and 360 J (1e-4 kWh) above a zero idle floor; quality is exactly 1.
TINY = {
    "horizon": {"slot_minutes": 60, "slots": 2, "steps": [10, 30], "clocks": [0.5, 1.0]},
    "models": [{
        "name": "m", "step_time_s": 0.1, "fixed_time_s": 0.0, "step_energy_j": 36.0,
        "fixed_energy_j": 0.0, "static_power_fraction": 0.0, "gpu_idle_kw": 0.0,
        "quality": {"a": 0.0, "b": 1.0, "c": 0.0, "d": 1.0},
    }],
    "sites": [{
        "name": "a", "model": "m", "gpus": 2, "util_cap": 1.0, "pue": 1.5,
        "import_cap_kw": 100.0, "export_cap_kw": 0.0, "sell_factor": 0.5,
        "demand_charge": 0.0, "price": [100.0, 200.0],
        "renewable_kw": [0.0, 0.0], "carbon_intensity": [400.0, 200.0],
        "battery": {"capacity_kwh": 20.0, "soc_min_kwh": 0.0, "soc_max_kwh": 20.0,
                    "soc0_kwh": 10.0, "ch_max_kw": 10.0, "dis_max_kw": 10.0,
                    "eta_c": 0.9, "eta_d": 0.8, "deg_cost": 0.0},
    }],
    "classes": [{
        "name": "c", "home": "a", "kind": "interactive", "deadline_s": 4.0,
        "late_penalty": 0.01, "revenue_per_job": 0.02, "min_quality": 0.0,
        "drop_penalty": 0.03, "arrivals": [100.0, 50.0],
    }],
}


@pytest.fixture
def tiny() -> dict:
    return copy.deepcopy(TINY)


def two_sites(raw: dict) -> dict:
    """TINY plus a second site 'b' (same model), 0.5 s and $0.001 per job away."""
    raw = copy.deepcopy(raw)
    b = copy.deepcopy(raw["sites"][0])
    b["name"] = "b"
    raw["sites"].append(b)
    raw["network"] = {"transfer_latency_s": [[0.0, 0.5], [0.5, 0.0]],
                      "transfer_cost": [[0.0, 0.001], [0.001, 0.0]]}
    return raw


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def small_scenario(seed: int):
    """Two sites, an interactive and a deferrable class, six 30-minute slots."""
    rng = np.random.default_rng(seed)
    raw = two_sites(TINY)
    T = 6
    raw["horizon"].update(slot_minutes=30, slots=T)
    for site in raw["sites"]:
        site.update(price=rng.uniform(-20, 300, T).round(2).tolist(),
                    renewable_kw=rng.uniform(0, 3, T).round(3).tolist(),
                    carbon_intensity=rng.uniform(0, 600, T).round(1).tolist(),
                    import_cap_kw=1e4, export_cap_kw=1e4, gpus=int(rng.integers(1, 4)),
                    demand_charge=float(rng.uniform(0, 2)))
    cls = copy.deepcopy(raw["classes"][0])
    cls.update(name="d", home="b", kind="deferrable", max_wait_slots=2, wait_cost=0.001)
    del cls["deadline_s"], cls["late_penalty"]
    raw["classes"].append(cls)
    for cl in raw["classes"]:
        cl["arrivals"] = rng.integers(0, 3000, T).astype(float).tolist()
    return compile_scenario(scenario_from_dict(raw))
