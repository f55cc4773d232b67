"""Scenarios: the typed schema, the one loader, the compiled arrays, embedded defaults."""

from __future__ import annotations

from pathlib import Path

from optsched.errors import ScenarioError
from optsched.scenario.compile import Compiled, compile_scenario
from optsched.scenario.load import (
    dumps_scenario,
    load_scenario,
    loads_scenario,
    save_scenario,
    scenario_from_dict,
)
from optsched.scenario.schema import Scenario

EMBEDDED = ("jemas-3",)


def is_embedded(source: str | Path) -> bool:
    return str(source) in EMBEDDED


def get_scenario(source: str | Path, day: int | None = None) -> Scenario:
    """An embedded family's day (first held-out day by default) or a TOML file."""
    if is_embedded(source):
        from optsched.scenario.jemas3 import jemas3
        return jemas3(day)
    if day is not None:
        raise ScenarioError("--day", "only applies to embedded scenarios "
                            f"({', '.join(EMBEDDED)}); a TOML file is one horizon", day)
    return load_scenario(source)


__all__ = ["Compiled", "Scenario", "compile_scenario", "dumps_scenario", "get_scenario",
           "is_embedded", "load_scenario", "loads_scenario", "save_scenario",
           "scenario_from_dict", "EMBEDDED"]
