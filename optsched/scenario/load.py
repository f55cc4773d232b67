"""The one scenario parser: TOML (or a dict) -> validated `Scenario`, and back to TOML.

Order of work: read the horizon first (series lengths depend on it), resolve every time
series (inline list, hourly list, scalar PUE, CSV reference) to one float per slot, then
validate field types and ranges (pydantic, strict) and cross-field rules. Every failure is
a `ScenarioError` naming the key path and the value.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import re
import tomllib
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomli_w
from pydantic import BaseModel, ValidationError

from optsched.data.readers import read_csv_file
from optsched.errors import ScenarioError
from optsched.io import atomic_write_text
from optsched.scenario.schema import Horizon, Scenario, check_semantics

# Series keys per table, and whether a single number is accepted for the whole horizon.
SITE_SERIES = {"price": False, "renewable_kw": False, "carbon_intensity": False, "pue": True}
CLASS_SERIES = {"arrivals": False}
SERIES_TABLE_KEYS = {"values", "hourly", "csv", "column", "scale", "start"}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _expand(values: list[float], hourly: bool, slots: int, slot_minutes: int, path: str,
            ) -> list[float]:
    if not hourly:
        if len(values) != slots:
            hint = "" if 60 % slot_minutes else " (or hourly values with hourly = true)"
            raise ScenarioError(path, f"must have {slots} values, one per slot{hint}", values)
        return values
    if 60 % slot_minutes:
        raise ScenarioError(path, f"hourly series need slot_minutes dividing 60, "
                            f"got slot_minutes = {slot_minutes}")
    per_hour = 60 // slot_minutes
    hours = math.ceil(slots / per_hour)
    if len(values) != hours:
        raise ScenarioError(path, f"must have {hours} hourly values for {slots} slots "
                            f"of {slot_minutes} min", values)
    return [v for v in values for _ in range(per_hour)][:slots]


# Set to 1 (the CLI's --allow-outside-paths does) to allow CSV files outside the scenario's
# folder in every load of this process.
ALLOW_OUTSIDE_ENV = "OPTSCHED_ALLOW_OUTSIDE_PATHS"


def csv_path(csv: Any, path: str, base_dir: Path, allow_outside: bool = False) -> Path:
    """A series' CSV reference -> the file, relative to the scenario's folder. A path that
    is absolute or leaves that folder (through `..` or a symbolic link) is refused unless
    `allow_outside`: a scenario shared with you should not read your other files."""
    if not isinstance(csv, str) or not csv:
        raise ScenarioError(f"{path}.csv", "must be a file path (string)", csv)
    base = Path(base_dir).resolve()
    file = (base / csv).resolve()
    allow_outside = allow_outside or os.environ.get(ALLOW_OUTSIDE_ENV) == "1"
    if not allow_outside and (Path(csv).is_absolute() or not file.is_relative_to(base)):
        raise ScenarioError(f"{path}.csv", "must be a path inside the scenario's folder "
                            f"({str(base)!r}); allow files elsewhere explicitly "
                            "(allow_outside=True, --allow-outside-paths)", csv)
    if not file.is_file():
        raise ScenarioError(f"{path}.csv", f"file not found (looked for {str(file)!r})", csv)
    return file


def _read_csv_column(spec: dict, path: str, base_dir: Path, rows: int,
                     allow_outside: bool = False) -> list[float]:
    """One column of a CSV file. Errors name the key, the file and a row, never the file's
    contents (not even its header: a scenario may point at any file)."""
    csv = spec.get("csv")
    file = csv_path(csv, path, base_dir, allow_outside)
    column = spec.get("column")
    if column is not None and not isinstance(column, str):
        raise ScenarioError(f"{path}.column", "must be a column name (string)", column)
    start = spec.get("start", 0)
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise ScenarioError(f"{path}.start", "must be a row index >= 0", start)
    scale = spec.get("scale", 1.0)
    if not _is_number(scale) or not math.isfinite(scale):
        raise ScenarioError(f"{path}.scale", "must be a finite number", scale)
    frame = read_csv_file(file, f"{path}.csv", comment="#")
    if column is None:
        numeric = frame.select_dtypes("number").columns
        if len(numeric) != 1:
            raise ScenarioError(f"{path}.column", f"missing; {file.name} has {len(numeric)} "
                                "numeric columns, so name one")
        column = numeric[0]
    if column not in frame.columns:
        raise ScenarioError(f"{path}.column", f"no such column in {file.name} (it has "
                            f"{len(frame.columns)} columns)", column)
    col = pd.to_numeric(frame[column], errors="coerce")
    if len(col) < start + rows:
        raise ScenarioError(f"{path}.start", f"{file.name} has {len(col)} rows, {rows} "
                            f"needed from row {start}", start)
    window = col.iloc[start:start + rows]
    bad = window[~np.isfinite(window.to_numpy(float))]
    if len(bad):
        raise ScenarioError(f"{path}.column", f"non-numeric or missing value in "
                            f"{file.name} row {int(bad.index[0])} (rows count from 0, "
                            "as start does)")
    return [float(v) * float(scale) for v in window]


def resolve_series(raw: Any, path: str, horizon: Horizon, base_dir: Path,
                   scalar_ok: bool = False, hourly: bool = False,
                   allow_outside: bool = False) -> list[float] | Any:
    """One series in any accepted form -> one float per slot. Bad types are left for
    pydantic to name, except inside the forms this function owns."""
    T, minutes = horizon.slots, horizon.slot_minutes
    if scalar_ok and _is_number(raw):
        return [float(raw)] * T
    if isinstance(raw, list):
        for j, v in enumerate(raw):
            if not _is_number(v):
                raise ScenarioError(f"{path}[{j}]", "must be a number", v)
        return _expand([float(v) for v in raw], hourly, T, minutes, path)
    if isinstance(raw, dict):
        for key in raw:
            if key not in SERIES_TABLE_KEYS:
                raise ScenarioError(f"{path}.{key}", _unknown_hint(key, SERIES_TABLE_KEYS))
        hourly = raw.get("hourly", hourly)
        if not isinstance(hourly, bool):
            raise ScenarioError(f"{path}.hourly", "must be true or false", hourly)
        if "values" in raw:
            if "csv" in raw:
                raise ScenarioError(path, "give either values or csv, not both")
            for key in ("column", "scale", "start"):    # were silently ignored
                if key in raw:
                    raise ScenarioError(f"{path}.{key}", "applies to a csv table, not to "
                                        "values (give the numbers as they are)", raw[key])
            return resolve_series(raw["values"], f"{path}.values", horizon, base_dir,
                                  scalar_ok, hourly, allow_outside)
        if "csv" not in raw:
            raise ScenarioError(path, "a series table needs values = [...] or csv = \"file\"")
        rows = math.ceil(T * minutes / 60) if hourly else T
        values = _read_csv_column(raw, path, base_dir, rows, allow_outside)
        return _expand(values, hourly, T, minutes, path)
    return raw  # a wrong type: pydantic reports it with the path


def _unknown_hint(key: str, known: set[str] | list[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return "unknown key" + (f" (did you mean '{close[0]}'?)" if close else "")


def _resolve_all(raw: dict, base_dir: Path, allow_outside: bool = False) -> dict:
    data = copy.deepcopy(raw)
    try:
        horizon = Horizon.model_validate(data.get("horizon", {}))
    except ValidationError as exc:
        raise _translate(exc, prefix=("horizon",)) from None
    for key, series_keys in (("sites", SITE_SERIES), ("classes", CLASS_SERIES)):
        items = data.get(key)
        if not isinstance(items, list):
            continue
        for j, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            hourly = item.pop("hourly", False)
            if not isinstance(hourly, bool):
                raise ScenarioError(f"{key}[{j}].hourly", "must be true or false", hourly)
            for skey, scalar_ok in series_keys.items():
                if skey in item:
                    item[skey] = resolve_series(item[skey], f"{key}[{j}].{skey}", horizon,
                                                base_dir, scalar_ok, hourly, allow_outside)
    return data


def _translate(exc: ValidationError, prefix: tuple = ()) -> ScenarioError:
    errors = exc.errors(include_url=False)
    err = errors[0]
    loc = prefix + tuple(err["loc"])
    path = _path(loc)
    kind = err["type"]
    if kind == "missing":
        return ScenarioError(path, "missing required key", more=len(errors) - 1)
    if kind == "extra_forbidden":
        return ScenarioError(path, _unknown_hint(str(loc[-1]), _fields_at(loc[:-1])),
                             more=len(errors) - 1)
    msg = err["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    if kind == "finite_number":
        msg = "must be a finite number"
    return ScenarioError(path, msg, err.get("input", ...), more=len(errors) - 1)


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as `list[Site] | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _fields_at(loc: tuple) -> list[str]:
    """Known keys of the table at `loc`, for 'did you mean' hints."""
    model: type[BaseModel] | None = Scenario
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _submodel(field.annotation) if field else None
    return list(model.model_fields) if model else []


def scenario_from_dict(raw: dict, base_dir: Path | str = ".", allow_outside: bool = False
                       ) -> Scenario:
    """Validate a raw mapping (as TOML parses it) into a Scenario, or raise ScenarioError.
    CSV references resolve against `base_dir` and must stay inside it unless
    `allow_outside` (see `csv_path`)."""
    if not isinstance(raw, dict):
        raise ScenarioError("", "a scenario must be a table of keys", raw)
    data = _resolve_all(raw, Path(base_dir), allow_outside)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc) from None
    check_semantics(scenario)
    return scenario


def revalidated(sc: Scenario) -> Scenario:
    """`sc` checked again, as a new Scenario: pydantic's `model_copy(update=...)` and
    attribute assignment skip validation, and a battery efficiency of 1.7 or negative
    GPUs then solved and scored without a word."""
    try:
        again = Scenario.model_validate(sc.model_dump())
    except ValidationError as exc:
        raise _translate(exc) from None
    check_semantics(again)
    return again


def read_toml(source: str | Path, key: str = "SCENARIO") -> dict:
    """A TOML file's raw mapping, with a one-line error (the parser's position, never the
    file's text) if it is missing or not TOML."""
    path = Path(source)
    if not path.is_file():
        raise ScenarioError(key, "no such file or embedded scenario", str(source))
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ScenarioError(str(path), "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(path), f"not valid TOML ({_one_line(exc)})") from None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def load_scenario(source: str | Path, allow_outside: bool = False) -> Scenario:
    """A TOML file path -> Scenario. Embedded names are resolved by `optsched.scenario.get`.
    CSV files it names must lie in its folder unless `allow_outside`."""
    path = Path(source)
    raw = read_toml(path)
    raw.setdefault("name", path.stem)
    return scenario_from_dict(raw, path.parent, allow_outside)


def loads_scenario(text: str, base_dir: Path | str = ".", allow_outside: bool = False
                   ) -> Scenario:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError("", f"not valid TOML ({_one_line(exc)})") from None
    return scenario_from_dict(raw, base_dir, allow_outside)


def scenario_to_dict(sc: Scenario) -> dict:
    """Plain data for TOML: None dropped, a constant PUE written as one number."""
    data = sc.model_dump(exclude_none=True)
    for site in data["sites"]:
        if len(set(site["pue"])) == 1:
            site["pue"] = site["pue"][0]
    if not data["network"]:
        del data["network"]
    return data


def _inline_array(values: list) -> str:
    """A TOML array of scalars (or of such arrays) on one line, each scalar as tomli_w
    writes it."""
    return "[" + ", ".join(_inline_array(v) if isinstance(v, list)
                           else tomli_w.dumps({"v": v})[4:].rstrip("\n")
                           for v in values) + "]"


def dumps_scenario(sc: Scenario) -> str:
    """The scenario as TOML, every array of values on one line (tomli_w would write one
    value a line: 4,584 lines for a day of 5-minute slots). Arrays are swapped for unique
    placeholder strings, tomli_w writes the rest, and the placeholders are swapped back."""
    token = uuid.uuid4().hex
    arrays: list[str] = []

    def swap(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list) and node and all(isinstance(v, dict) for v in node):
            return [swap(v) for v in node]                    # an array of tables
        if isinstance(node, list):
            arrays.append(_inline_array(node))
            return f"{token}-{len(arrays) - 1}"
        return node

    text = tomli_w.dumps(swap(scenario_to_dict(sc)))
    return re.sub(f'"{token}-(\\d+)"', lambda m: arrays[int(m.group(1))], text)


def save_scenario(sc: Scenario, path: str | Path) -> None:
    """Write atomically: a failed write leaves no half-written file behind."""
    atomic_write_text(path, dumps_scenario(sc))
