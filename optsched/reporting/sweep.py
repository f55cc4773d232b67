"""Sensitivity sweeps: the oracle and every policy as one scenario parameter varies.

One row per (value, day, policy) of optsched.compare's table on that variant (the oracle
cached, keyed on the compiled scenario), with the gap and the share of the oracle's gain
over local-fixed captured. `sweep.csv` and `sweep.png`
(utility and gap against the value, medians over days) go to `out`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from optsched.oracle.cache import DEFAULT_CACHE

COLUMNS = ["param", "value", "day", "policy", "utility", "gap", "captured"]


def sweep(scenario: str, days: list, param: str, values: list, policies: list[str],
          out: Path | None = None, cache: Path | None = DEFAULT_CACHE, progress=None
          ) -> pd.DataFrame:
    """optsched.compare on every variant of the scenario (`param` set to each value)."""
    from optsched.api import compare
    from optsched.policies import get_policy

    for name in policies:
        get_policy(name)                                # bad names fail before any work
    variants = {v: _variant(scenario, days, param, v) for v in values}  # bad values too
    frames = []
    for v, comp in variants.items():
        say = (lambda msg, v=v: progress(f"{param} = {v}: {msg}")) if progress else None
        table = compare(comp, ["local-fixed", *policies], days, cache=cache, progress=say)
        frames.append(table.assign(param=param, value=v)[COLUMNS])
    frame = pd.concat(frames, ignore_index=True)
    if out is not None:
        from optsched.reporting.output import write_csv

        out.mkdir(parents=True, exist_ok=True)
        write_csv(frame, out / "sweep.csv")
        plot_sweep(frame, out / "sweep.png")
    return frame


def _variant(scenario: str, days: list, param: str, value) -> list:
    """The compiled days with `param` set to `value`; a value that makes the scenario
    invalid is reported as --values (the scenario's own key in brackets)."""
    import numpy as np

    from optsched.errors import ScenarioError
    from optsched.scenario import compile_scenario, get_scenario
    from optsched.scenario.sensitivity import vary

    try:
        with np.errstate(over="ignore", invalid="ignore"):   # the check below says it
            return [compile_scenario(vary(get_scenario(scenario, d), param, value))
                    for d in days]
    except ScenarioError as exc:
        if exc.path in ("--param", "--values", "SCENARIO", "--day", "--days"):
            raise
        raise ScenarioError("--values", f"{param} {value} makes the scenario invalid "
                            f"({exc})") from None


def plot_sweep(frame: pd.DataFrame, path: Path) -> None:
    from optsched.reporting.output import save_figure
    from optsched.reporting.plots import sweep_figure

    save_figure(sweep_figure(frame), path)
