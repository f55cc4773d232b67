"""Sensitivity parameters: one scenario varied along one axis the paper's readers ask about.

Each variation edits the scenario (not the compiled arrays) and goes back through the one
loader, so derived quantities (options, eligibility, energy per job) follow and a value
that makes the scenario invalid fails with the loader's one-line message.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from optsched.errors import ScenarioError
from optsched.scenario.load import scenario_from_dict, scenario_to_dict
from optsched.scenario.schema import Scenario


def _price_level(raw: dict, f: float) -> None:
    for s in raw["sites"]:
        s["price"] = (np.asarray(s["price"]) * f).tolist()


def _price_volatility(raw: dict, f: float) -> None:
    """Deviations from each site's mean price scaled by f (1 = as is, 0 = flat)."""
    for s in raw["sites"]:
        p = np.asarray(s["price"])
        s["price"] = (p.mean() + f * (p - p.mean())).tolist()


def _load(raw: dict, f: float) -> None:
    for k in raw["classes"]:
        k["arrivals"] = (np.asarray(k["arrivals"]) * f).tolist()


def _battery(raw: dict, f: float) -> None:
    """Energy and power of every battery scaled by f (0 removes them)."""
    for s in raw["sites"]:
        b = s.get("battery")
        if b is None:
            continue
        if f == 0:
            s["battery"] = None
            continue
        for key in ("capacity_kwh", "soc_min_kwh", "soc_max_kwh", "soc0_kwh", "ch_max_kw",
                    "dis_max_kw"):
            if b.get(key) is not None:
                b[key] = b[key] * f


def _renewable(raw: dict, f: float) -> None:
    for s in raw["sites"]:
        if s.get("renewable_kw") is not None:
            s["renewable_kw"] = (np.asarray(s["renewable_kw"]) * f).tolist()


def _carbon_price(raw: dict, v: float) -> None:
    raw["horizon"]["carbon_price"] = v


def _model_mix(raw: dict, mix: str) -> None:
    """Models per site, comma-separated in site order (e.g. 'sd3,sd3,sd3': homogeneous)."""
    names = [m.strip() for m in mix.split(",")]
    if len(names) != len(raw["sites"]):
        raise ScenarioError("--values", f"a model mix names one model per site "
                            f"({len(raw['sites'])})", mix)
    for s, m in zip(raw["sites"], names, strict=True):
        s["model"] = m


PARAMS: dict[str, tuple[Callable, type, str]] = {
    "price-level": (_price_level, float, "prices x factor"),
    "price-volatility": (_price_volatility, float, "price deviations from the mean x factor"),
    "load": (_load, float, "arrivals x factor"),
    "battery": (_battery, float, "battery energy and power x factor"),
    "renewable": (_renewable, float, "renewable power x factor"),
    "carbon-price": (_carbon_price, float, "carbon price $/t"),
    "model-mix": (_model_mix, str, "models per site, comma-separated"),
}


def vary(sc: Scenario, param: str, value: float | str) -> Scenario:
    if param not in PARAMS:
        raise ScenarioError("--param", f"unknown parameter (known: {', '.join(PARAMS)})",
                            param)
    fn, kind, _ = PARAMS[param]
    try:
        value = kind(value)
    except ValueError:
        raise ScenarioError("--values", f"{param} takes {kind.__name__} values",
                            value) from None
    if kind is float and param != "carbon-price" and value < 0:
        raise ScenarioError("--values", f"{param} factors must be >= 0", value)
    raw = scenario_to_dict(sc)
    fn(raw, value)
    raw["name"] = f"{sc.name} [{param}={value}]"
    return scenario_from_dict(raw)
