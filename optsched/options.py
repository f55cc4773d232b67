"""Checks of the choices a user passes (CLI options, API arguments): each bad one is a
ScenarioError naming the option and the value (CLI exit 2), raised before any work."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from optsched.errors import ScenarioError


def choice(key: str, value, allowed: Sequence) -> None:
    if value not in allowed:
        raise ScenarioError(key, f"must be one of {', '.join(map(str, allowed))}", value)


def check_backend(backend: str, key: str = "--backend") -> str:
    from optsched.oracle import BACKENDS

    choice(key, backend, BACKENDS)
    return backend


def check_levers(names: Sequence[str] | None, key: str = "--ablate") -> list[str]:
    """`names` if every one is a lever the scenario can lose (scenario.ablations)."""
    from optsched.scenario.ablations import ABLATIONS

    for name in names or ():
        choice(key, name, ABLATIONS)
    return list(names or ())


def check_policies(names: Sequence[str], key: str = "--policy") -> list[str]:
    """`names` if every one is a known policy (loading learned ones checks their files);
    a refusal names the option `key`."""
    from optsched.policies import get_policy

    for name in names:
        try:
            get_policy(name)
        except ScenarioError as e:
            if e.path != "--policy":
                raise
            raise ScenarioError(key, e.message, e.value, e.more) from None
    return list(names)


def check_files(paths: Sequence[Path], key: str) -> list[Path]:
    for path in paths:
        if not Path(path).is_file():
            raise ScenarioError(key, "file not found", str(path))
    return list(paths)


def day_selection(scenario: str, day: int | None, days: str | None) -> list[int | None]:
    """`--day N` or `--days SPEC` (not both) as a list of days, checked."""
    from optsched.days import parse_days

    if day is not None and days is not None:
        raise ScenarioError("--days", "give --day or --days, not both", days)
    if day is None:
        return parse_days(days, scenario)
    from optsched.scenario import get_scenario

    get_scenario(scenario, day)                       # checks the day before any work
    return [day]


def sweep_values(param: str, values: str) -> list[str]:
    """`--values` split (';' between model mixes, ',' otherwise), for a known `param`."""
    from optsched.scenario.sensitivity import PARAMS

    choice("--param", param, PARAMS)
    vals = [v.strip() for v in values.split(";" if param == "model-mix" else ",")]
    if not any(vals):
        raise ScenarioError("--values", "give at least one value", values)
    if not all(vals):              # `1,,2` is a typo, not the two values 1 and 2
        raise ScenarioError("--values", "has an empty item", values)
    if param != "model-mix":       # a number each (NaN was reported as the scenario's key)
        for v in vals:
            try:
                x = float(v)
            except ValueError:
                raise ScenarioError("--values", f"{param} takes float values", v) from None
            if not math.isfinite(x):
                raise ScenarioError("--values", f"{param} takes finite values", v)
    return vals


def train_days(spec: str, source: str = "jemas-3") -> list[int]:
    """Training days of the embedded family `source` from a day spec; held-out test days
    are refused."""
    from optsched.days import parse_days
    from optsched.scenario import family

    fam = family(source)              # a TOML file: "not an embedded family (...)"
    days = parse_days(spec, source)
    held_out = [d for d in days if fam.is_test_day(d)]
    if held_out:
        raise ScenarioError("--days", "held-out test days may not be trained on", held_out)
    return days


def check_out(path: Path | None, key: str = "--out", folder: bool = True) -> Path | None:
    """An output location that can be written, checked before any work: a folder (or, with
    `folder=False`, a file) whose nearest existing ancestor is a folder."""
    if path is None:
        return None
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise ScenarioError(key, f"must be a {'folder' if folder else 'file'}, and this is "
                            f"{'a file' if folder else 'a folder'}", str(path))
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ScenarioError(key, f"{str(parent)!r} is a file, not a folder", str(path))
    return path
