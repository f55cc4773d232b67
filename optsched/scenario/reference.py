"""The scenario file reference (docs/scenario.md), generated from the pydantic schema.

Every section and key comes from `optsched.scenario.schema` (types, defaults, range rules)
and the series forms from the loader's own tables, so the reference cannot drift: a key
added to the schema without a description here (or a `Field(description=...)` in the
schema) makes `scenario_reference` raise, and tests/test_docs.py fails until
docs/scenario.md is regenerated with

    python -m optsched.scenario.reference --out docs/scenario.md
"""

from __future__ import annotations

import argparse
import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel

from optsched.io import atomic_write_text
from optsched.scenario.load import CLASS_SERIES, SERIES_TABLE_KEYS, SITE_SERIES
from optsched.scenario.schema import (
    Battery,
    Horizon,
    JobClass,
    ModelProfile,
    Network,
    Quality,
    Scenario,
    Site,
)

REGENERATE = "python -m optsched.scenario.reference --out docs/scenario.md"

# What each key means, with its unit and its symbol in docs/model.md. A `description`
# given in the schema (pydantic Field) takes precedence.
DESCRIPTIONS: dict[type[BaseModel], dict[str, str]] = {
    Scenario: {
        "name": "Name shown in summaries and reports; a file without one takes its file "
                "name (without `.toml`).",
        "description": "Free text shown by `optsched scenario show`.",
        "horizon": "The time grid and the option levels.",
        "models": "Diffusion-model profiles; sites refer to them by name. At least one.",
        "sites": "Data centres, one AIGC service provider each. Their order is the order "
                 "of the network matrices. At least one.",
        "network": "Transfer latency and cost between sites; omitted means zeros (free, "
                   "instant transfers).",
        "classes": "Job classes, each arriving at its home site. At least one.",
    },
    Horizon: {
        "slot_minutes": "Slot length in minutes: dt_h = slot_minutes / 60 hours, "
                        "dt_s = 60 slot_minutes seconds.",
        "slots": "Horizon length T in slots (288 slots of 5 minutes = one day). Every "
                 "series has T values.",
        "steps": "Denoising-step levels S a job may be served with; strictly increasing.",
        "clocks": "GPU clock levels F (fractions of the nominal clock, DVFS); strictly "
                  "increasing.",
        "carbon_price": "$ per tonne of CO2 emitted by grid imports (cost term `carbon`); "
                        "0 switches the term off.",
    },
    ModelProfile: {
        "name": "Name that `sites[].model` refers to.",
        "step_time_s": "l_m: GPU seconds per denoising step at the nominal clock "
                       "(l_m / f at clock f).",
        "fixed_time_s": "l0_m: GPU seconds per job that depend on neither steps nor clock "
                        "(text encoder, VAE decode).",
        "step_energy_j": "e_m: GPU energy per step at the nominal clock, J (a measured "
                         "total, idle draw while busy included).",
        "fixed_energy_j": "e0_m: GPU energy per job that depends on neither steps nor "
                          "clock, J.",
        "static_power_fraction": "sigma_m: share of step energy that is static power; "
                                 "at clock f a step costs e_m (sigma_m / f + "
                                 "(1 - sigma_m) f^2).",
        "gpu_idle_kw": "P0_m: draw of one powered-on, idle GPU, kW.",
        "quality": "The quality curve Q_m(s) (below).",
    },
    Quality: {
        "a": "Height of the logistic: Q(s) = a / (1 + exp(-b (phi(s) - c))) + d, clipped "
             "to [0, 1].",
        "b": "Slope of the logistic in phi(s).",
        "c": "Midpoint of the logistic in phi(s).",
        "d": "Offset added to the logistic.",
        "log_steps": "phi(s) = ln s when true, phi(s) = s when false.",
    },
    Site: {
        "name": "Site name (classes' `home` refers to it).",
        "model": "The model profile this site's provider runs (a `models[].name`).",
        "gpus": "G_i: GPUs installed, the upper bound on powered-on GPUs n[i, t].",
        "util_cap": "Usable share of a powered-on GPU's seconds in a slot: capacity is "
                    "util_cap dt_s n[i, t] GPU-seconds.",
        "pue": "Power usage effectiveness: facility kW per IT kW. A series, or one number "
               "for the whole horizon.",
        "import_cap_kw": "Grid import limit, kW.",
        "export_cap_kw": "Grid export limit, kW; 0 means no export.",
        "sell_factor": "Exported energy is paid sell_factor times the slot's price.",
        "demand_charge": "$ per kW of the horizon's peak grid import (a monthly tariff "
                         "prorated to the horizon by whoever writes the scenario).",
        "price": "Grid price, $/MWh, a series; negative prices are allowed.",
        "renewable_kw": "Renewable power available on site, kW, a series; omitted means "
                        "none.",
        "carbon_intensity": "Carbon intensity of grid imports, gCO2/kWh, a series; omitted "
                            "means 0.",
        "battery": "The site's battery (below); omitted means none.",
    },
    Battery: {
        "capacity_kwh": "Nameplate energy, kWh (soc_max_kwh may not exceed it).",
        "soc_min_kwh": "Lowest state of charge allowed, kWh.",
        "soc_max_kwh": "Highest state of charge allowed, kWh.",
        "soc0_kwh": "State of charge at the start of the horizon, kWh, in [soc_min_kwh, "
                    "soc_max_kwh]. Ending below it is charged at the horizon's top price "
                    "(cost term `terminal`).",
        "ch_max_kw": "Largest charging power, kW.",
        "dis_max_kw": "Largest discharging power, kW.",
        "eta_c": "Charging efficiency: a slot's charge adds eta_c ch dt_h kWh.",
        "eta_d": "Discharging efficiency: a slot's discharge removes dis dt_h / eta_d kWh.",
        "deg_cost": "Degradation, $ per kWh of throughput (charge plus discharge).",
    },
    Network: {
        "transfer_latency_s": "tau[h, i]: seconds added to a job of home h served at site "
                              "i. A square matrix in site order with a zero diagonal.",
        "transfer_cost": "kappa[h, i]: $ per job of home h served at site i. A square "
                         "matrix in site order with a zero diagonal.",
    },
    JobClass: {
        "name": "Class name.",
        "home": "The site where this class's jobs arrive (a `sites[].name`).",
        "kind": "`interactive` (served in the slot it arrives, or dropped) or "
                "`deferrable` (may wait up to max_wait_slots).",
        "deadline_s": "Interactive only, required there: latency budget delta_k, s. A "
                      "job whose transfer latency plus GPU time exceeds it is late.",
        "late_penalty": "Interactive only, required there: v_k, $ per late job.",
        "max_wait_slots": "Deferrable only, required there: D_k, the most slots a job may "
                          "wait; below `horizon.slots`.",
        "wait_cost": "Deferrable only, required there: w_k, $ per job per slot waited.",
        "revenue_per_job": "rho_k: $ per job at quality 1; a job served with an option of "
                           "quality Q earns rho_k Q.",
        "min_quality": "qmin_k: options of lower quality are not eligible for this class. "
                       "Some option must reach it.",
        "drop_penalty": "p_k: $ per dropped job.",
        "arrivals": "lam[k, t]: jobs arriving per slot, a series.",
    },
}

SERIES_KEYS: dict[type[BaseModel], dict[str, bool]] = {Site: SITE_SERIES,
                                                       JobClass: CLASS_SERIES}

PREAMBLE = f"""# Scenario file reference

<!-- Generated by optsched/scenario/reference.py from optsched/scenario/schema.py:
     do not edit by hand. Regenerate with `{REGENERATE}`. -->

A scenario is one TOML file that describes everything the model needs (docs/model.md):
the horizon, the diffusion models, the sites, the network and the job classes. Time
series (prices, renewables, PUE, carbon intensity, arrivals) are written inline or read
from CSV files next to the scenario file. `optsched scenario validate FILE` checks a file
without solving anything; `optsched scenario export jemas-3 --day N --out day.toml`
writes one day of the embedded family as a complete example.

## File layout

```
my-scenario/
  scenario.toml        # [horizon], [[models]], [[sites]], [network], [[classes]]
  prices.csv           # optional CSV series, referenced from scenario.toml
  arrivals.csv
```

Tables, in the order of this page: top-level keys, `[horizon]`, `[[models]]` (with an
inline `quality` table), `[[sites]]` (with an optional `battery` table), `[network]`,
`[[classes]]`. Unknown keys are errors (with a "did you mean" hint), as are missing
required keys and values of the wrong type (an integer is accepted where a float is
expected, not the reverse).

## Units

| quantity | unit |
|---|---|
| power | kW |
| energy | kWh (per-job GPU energy in J) |
| grid price | $/MWh |
| money | $ (per job, per kW, per kWh as the key says) |
| carbon intensity | gCO2/kWh; carbon price $/t |
| time | slots of `slot_minutes`; latencies and GPU times in seconds |

## Time series

A key marked *series* below takes one of:

- an inline list with one number per slot: `price = [31.2, 30.8, ...]` (`slots` values);
- an hourly list, repeated to the slot length, when the site or class sets
  `hourly = true` beside it (`slot_minutes` must divide 60; ceil(slots x slot_minutes /
  60) values);
- a table with keys {", ".join(f"`{k}`" for k in sorted(SERIES_TABLE_KEYS))}:
  `{{ values = [...], hourly = true }}` for one hourly series, or
  `{{ csv = "prices.csv", column = "price", scale = 1.0, start = 0 }}` for a CSV
  column. `column` may be left out when the file has exactly one numeric column; `start`
  is the first data row used (0 = the row after the header); `scale` multiplies every
  value read from the file (`column`, `start` and `scale` apply to a CSV only; beside
  `values` they are refused); lines starting with `#` are comments. The file needs
  `start` + (number of values) data rows, all numeric in the window used;
- for `pue` only, also a single number for the whole horizon.

CSV paths are resolved relative to the folder of the scenario file and may not leave
that folder (an absolute path or a `..` that points outside it is refused) unless the
user explicitly allows it; see docs/security.md. Error messages name the key and the
file, never the file's contents.

## Validation

Loading (`optsched scenario validate`, and every command that takes a SCENARIO) reads
the horizon first, resolves every series to one number per slot, then checks each key's
type and range (the tables below) and the rules that span keys:

- names of models, sites and classes are unique; each list has at least one entry;
- `horizon.steps` and `horizon.clocks` are strictly increasing;
- every series has `horizon.slots` values;
- `sites[].model` names a model, `classes[].home` names a site;
- battery: soc_min_kwh <= soc0_kwh <= soc_max_kwh <= capacity_kwh;
- network matrices are I x I in site order with a zero diagonal;
- interactive classes give `deadline_s` and `late_penalty`, deferrable classes
  `max_wait_slots` (< `horizon.slots`) and `wait_cost`;
- some option reaches each class's `min_quality`.

The first problem found is reported on one line naming the key path and the value, e.g.
`sites[1].battery.eta_c: must be in (0, 1], got 1.7`, and the command exits with code 2.

## Example

A two-site, four-hour scenario with hourly series and one CSV series
(`prices.csv` beside it, with a header line `hour,price` and four rows):

```toml
name = "two-sites"

[horizon]
slot_minutes = 15
slots = 16
steps = [10, 20, 30]
clocks = [0.8, 1.0]

[[models]]
name = "sd15"
step_time_s = 0.0323
fixed_time_s = 0.12
step_energy_j = 9.6
fixed_energy_j = 19.0
gpu_idle_kw = 0.06
quality = {{ a = 0.43, b = 2.555, c = 1.161, log_steps = true }}

[[sites]]
name = "east"
model = "sd15"
gpus = 4
pue = 1.25
import_cap_kw = 3.0
hourly = true
price = {{ csv = "prices.csv", column = "price" }}
renewable_kw = [0.0, 0.4, 0.8, 0.5]

[sites.battery]                 # the battery of the site above
capacity_kwh = 2.0
soc_min_kwh = 0.2
soc_max_kwh = 1.8
soc0_kwh = 1.0
ch_max_kw = 0.5
dis_max_kw = 0.5
eta_c = 0.92
eta_d = 0.92
deg_cost = 0.023

[[sites]]
name = "west"
model = "sd15"
gpus = 3
pue = 1.2
import_cap_kw = 2.5
hourly = true
price = [45.0, 38.0, 30.0, 52.0]

[network]
transfer_latency_s = [[0.0, 0.2], [0.2, 0.0]]
transfer_cost = [[0.0, 0.0002], [0.0002, 0.0]]

[[classes]]
name = "east-interactive"
home = "east"
kind = "interactive"
deadline_s = 2.0
late_penalty = 0.002
revenue_per_job = 0.0093
min_quality = 0.3
drop_penalty = 0.004
hourly = true
arrivals = [300.0, 420.0, 500.0, 380.0]

[[classes]]
name = "west-batch"
home = "west"
kind = "deferrable"
max_wait_slots = 4
wait_cost = 0.00002
revenue_per_job = 0.007
drop_penalty = 0.002
arrivals = {{ values = [100.0, 150.0, 200.0, 120.0], hourly = true }}
```

The embedded `jemas-3` family is written in the same format plus a `[family]` table
that only the day generator reads (docs/data.md).

## Keys
"""


def _cells(func: Any) -> dict[str, Any]:
    code, closure = getattr(func, "__code__", None), getattr(func, "__closure__", None)
    if code is None or not closure:
        return {}
    return {name: cell.cell_contents for name, cell in zip(code.co_freevars, closure,
                                                           strict=True)}


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _rule_text(meta: Any) -> str | None:
    """One constraint (an annotated_types bound or an AfterValidator) as text."""
    for kind, sign in ((at.Gt, ">"), (at.Ge, ">="), (at.Lt, "<"), (at.Le, "<=")):
        if isinstance(meta, kind):
            return f"{sign} {_num(next(iter(vars(meta).values())))}"
    if isinstance(meta, at.MinLen):
        return f"at least {meta.min_length} item{'s' if meta.min_length != 1 else ''}"
    if isinstance(meta, at.MaxLen):
        return f"at most {meta.max_length} items"
    func = getattr(meta, "func", None)
    if func is None:
        return None
    cells = _cells(func)
    if isinstance(cells.get("text"), str):
        return cells["text"]
    if "lo" in cells and "hi" in cells:
        lo, hi = cells["lo"], cells["hi"]
        kind = "an integer" if isinstance(lo, int) and isinstance(hi, int) else "a number"
        return f"must be {kind} in [{_num(lo)}, {_num(hi)}]"
    doc = inspect.getdoc(func)
    return doc.splitlines()[0] if doc else f"checked by `{func.__name__}`"


def _rules(metadata: list[Any]) -> list[str]:
    return [text for text in map(_rule_text, metadata) if text]


def _unwrap(annotation: Any) -> tuple[Any, list[Any], bool]:
    """(inner type, its constraints, optional) of `Annotated[X, ...] | None`."""
    optional = False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) < len(args)
        annotation = rest[0] if len(rest) == 1 else annotation
    metadata: list[Any] = []
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *metadata = typing.get_args(annotation)
    return annotation, metadata, optional


def _type_text(annotation: Any) -> tuple[str, list[str]]:
    """A readable type and the rules of its elements ("each value ...")."""
    inner, metadata, _ = _unwrap(annotation)
    rules = _rules(metadata)
    origin = typing.get_origin(inner)
    if origin is list:
        (item,) = typing.get_args(inner)
        text, item_rules = _type_text(item)
        each = [r if r.startswith("each value") else f"each value {r}" for r in item_rules]
        return f"list of {text}", rules + each
    if origin is Literal:
        return " or ".join(f'`"{v}"`' for v in typing.get_args(inner)), rules
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return "table", rules
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return names.get(inner, getattr(inner, "__name__", str(inner))), rules


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return _num(v)


def _default_text(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default is None:
        return "omitted"
    if isinstance(field.default, BaseModel):
        return "all defaults"
    return f"`{_toml_value(field.default)}`"


def _submodels(annotation: Any) -> list[tuple[type[BaseModel], bool]]:
    """Tables inside a field's annotation: (model, is an array of tables)."""
    inner, _, _ = _unwrap(annotation)
    if typing.get_origin(inner) is list:
        (item,) = typing.get_args(inner)
        item, _, _ = _unwrap(item)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return [(item, True)]
        return []
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return [(inner, False)]
    return []


def _description(model: type[BaseModel], name: str, field: Any, path: str,
                 descriptions: dict[type[BaseModel], dict[str, str]]) -> str:
    text = field.description or descriptions.get(model, {}).get(name)
    if not text:
        for base in model.__mro__[1:]:
            text = descriptions.get(base, {}).get(name)
            if text:
                break
    if not text:
        raise KeyError(f"{path}: no description; add one to DESCRIPTIONS in "
                       f"optsched/scenario/reference.py (or a Field description in the "
                       f"schema) and run `{REGENERATE}`")
    return " ".join(text.split())


def _section(model: type[BaseModel], path: str, heading: str,
             descriptions: dict[type[BaseModel], dict[str, str]], out: list[str]) -> None:
    """One table of keys under `heading`, then the tables nested in it."""
    out += ["", f"### {heading}", ""]
    doc = model.__dict__.get("__doc__")
    if doc:
        out += [" ".join(doc.split()), ""]
    out += ["| key | type | default | rules | meaning |", "|---|---|---|---|---|"]
    nested: list[tuple[type[BaseModel], str, str]] = []
    series = SERIES_KEYS.get(model, {})
    for name, field in model.model_fields.items():
        key = f"{path}.{name}" if path else name
        text = _description(model, name, field, key, descriptions)
        kind, rules = _type_text(field.annotation)
        rules = _rules(field.metadata) + rules
        if name in series:
            kind = "series or number" if series[name] else "series"
        for sub, array in _submodels(field.annotation):
            child = f"{key}[]" if array else key
            kind = f"array of tables (`{child}`)" if array else f"table (`{key}`)"
            top = f"`[[{key}]]`" if array else f"`[{key}]`"
            nested.append((sub, child, top if not path else f"`{child}`"))
        cell = "; ".join(rules).replace("|", "\\|")
        out.append(f"| `{name}` | {kind} | {_default_text(field)} | {cell} | {text} |")
    for sub, child, sub_heading in nested:
        _section(sub, child, sub_heading, descriptions, out)


def scenario_reference(root: type[BaseModel] = Scenario,
                       descriptions: dict[type[BaseModel], dict[str, str]] | None = None,
                       ) -> str:
    """docs/scenario.md: the preamble, then every table and key of `root`.

    Raises KeyError naming the key path when a key has no description."""
    out = [PREAMBLE.rstrip("\n")]
    _section(root, "", "Top level", DESCRIPTIONS if descriptions is None else descriptions, out)
    return "\n".join(out) + "\n"


def write_generated(generate: Callable[[], str], description: str,
                    argv: list[str] | None = None) -> None:
    """The command line of a docs generator: `--out FILE` (written atomically) or stdout."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, help="Markdown file (default: stdout)")
    args = parser.parse_args(argv)
    text = generate()
    if args.out is None:
        print(text, end="")
    else:
        atomic_write_text(args.out, text)


def main(argv: list[str] | None = None) -> None:
    write_generated(scenario_reference, "Write the scenario file reference.", argv)


if __name__ == "__main__":
    main()
