"""Scenarios: the typed schema, the one loader, the compiled arrays, embedded defaults."""

from __future__ import annotations

import datetime as dt
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from optsched.errors import ScenarioError
from optsched.scenario.compile import Compiled, compile_scenario
from optsched.scenario.load import (
    dumps_scenario,
    load_scenario,
    loads_scenario,
    read_toml,
    save_scenario,
    scenario_from_dict,
)
from optsched.scenario.schema import Scenario

EMBEDDED = ("jemas-3", "jemas-3-genai", "multisite-N")
# Each embedded family's module: n_days, is_test_day, train_days, test_days, date_of,
# fingerprint, day_dict and one constructor of a day's Scenario. `multisite-N` (N sites)
# is an object with that interface and the constructor `scenario` (scenario/multisite.py).
_MODULES = {"jemas-3": ("optsched.scenario.jemas3", "jemas3"),
            "jemas-3-genai": ("optsched.scenario.genai", "genai")}


def is_embedded(source: str | Path) -> bool:
    from optsched.scenario.multisite import size_of
    return str(source) in _MODULES or size_of(source) is not None


def family(source: str | Path) -> ModuleType | Any:
    """The module of an embedded family (see _MODULES for what it provides)."""
    if not is_embedded(source):
        raise ScenarioError("SCENARIO", f"not an embedded family ({', '.join(EMBEDDED)})",
                            str(source))
    if str(source) not in _MODULES:
        from optsched.scenario.multisite import Multisite, size_of
        return Multisite(size_of(source))
    return importlib.import_module(_MODULES[str(source)][0])


def check_source(source: str | Path) -> None:
    """Refuse a scenario argument that is not a name or path, or is empty (Path("")
    would read as the folder ".")."""
    if not isinstance(source, (str, Path)):
        raise ScenarioError("SCENARIO", "must be a family name or a TOML file's path",
                            type(source).__name__)
    if not str(source).strip():
        raise ScenarioError("SCENARIO", "empty: give a TOML file or an embedded family "
                            f"({', '.join(EMBEDDED)})", str(source))


def get_scenario(source: str | Path, day: int | None = None, allow_outside: bool = False
                 ) -> Scenario:
    """An embedded family's day (first held-out day by default) or a TOML file (whose CSV
    files must lie in its folder unless `allow_outside`)."""
    check_source(source)
    if is_embedded(source):
        from optsched.days import day_number

        day = None if day is None else day_number(day, "--day")
        module = family(source)
        make = (getattr(module, _MODULES[str(source)][1]) if str(source) in _MODULES
                else module.scenario)
        sc = make(day)
        from optsched.scenario.history import remember
        remember(sc, str(source), module.test_days()[0] if day is None else int(day))
        return sc
    if day is not None and not Path(source).is_file():     # a typo of a family's name
        raise ScenarioError("SCENARIO", "no such file or embedded scenario "
                            f"({', '.join(EMBEDDED)})", str(source))
    if day is not None:
        raise ScenarioError("--day", "only applies to embedded scenarios "
                            f"({', '.join(EMBEDDED)}); a TOML file is one horizon", day)
    return load_scenario(source, allow_outside)


def family_fingerprint(source: str | Path) -> str | None:
    """A digest of everything an embedded family's days are generated from (its files and
    the generator's code), for caches of its days; None for a TOML file."""
    if not is_embedded(source):
        return None
    return family(source).fingerprint()


def build_scenario(date: dt.date, base: str | Path = "jemas-3", *,
                   allow_outside: bool = False, **data: Any) -> Scenario:
    """A validated scenario for a real calendar day: `base` (an embedded family or a TOML
    file) with its series read from real files; `data` is passed to
    `optsched.data.build.build_day` (data_dir, prices, weather, carbon, pv_kwp, trace,
    price_clock, pattern)."""
    from optsched.data.build import build_day

    if is_embedded(base) and str(base) not in ("jemas-3", "jemas-3-genai"):
        raise ScenarioError("--base", "real-day builds take jemas-3, jemas-3-genai (with a "
                            f"GenTD26 --trace) or a TOML file (a {base} day is generated)",
                            base)
    if str(base) == "jemas-3-genai":
        from optsched.scenario import genai
        from optsched.workload.trace import is_genai_trace

        trace = data.get("trace")
        if trace is not None and not Path(trace).is_file():
            raise ScenarioError(str(trace), "file not found")
        if trace is None or not is_genai_trace(trace):
            raise ScenarioError("--trace", "a jemas-3-genai day is generated: a real-day "
                                "build of it replays a GenTD26 trace", str(trace))
        raw, base_dir = genai.replay_base(genai.day_of(date)), Path(".")
    elif is_embedded(base):
        from optsched.scenario.jemas3 import base as family_base
        raw, base_dir = family_base(), Path(".")
    else:
        path = Path(base)
        raw, base_dir = read_toml(path, "--base"), path.parent
        raw.setdefault("name", path.stem)
    return scenario_from_dict(build_day(raw, date, **data), base_dir, allow_outside)


__all__ = ["Compiled", "Scenario", "build_scenario", "compile_scenario", "dumps_scenario",
           "family", "family_fingerprint", "get_scenario", "is_embedded", "load_scenario",
           "loads_scenario", "read_toml", "save_scenario", "scenario_from_dict", "EMBEDDED"]
