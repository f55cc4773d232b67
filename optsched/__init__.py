"""optsched: energy-aware scheduling of diffusion-model jobs across data centres.

The Python API (optsched.api) is importable from here: load_scenario, solve, evaluate,
rollout, compare, make_env. `import optsched` stays light (the API's modules load on first
use) and registers the Gymnasium environment `optsched/Jemas3-v0`.
"""

from __future__ import annotations

from typing import Any

from optsched.errors import OptschedError, ScenarioError

ENV_ID = "optsched/Jemas3-v0"
_API = ("build_scenario", "compare", "compare_runs", "compiled", "days_of", "evaluate",
        "evaluate_policy", "load_scenario", "make_env", "report", "rollout", "simulate",
        "solve", "solve_days", "solve_decomposed", "sweep", "Comparison", "DaySolution",
        "Run")                                   # optsched.api.__all__ (tests/test_api.py)


def _register_env() -> None:
    """Register the env by entry-point string: gymnasium imports optsched.env.gym (and
    numba) only when someone makes it."""
    try:
        import gymnasium
    except ImportError:                      # the env is optional for the rest of optsched
        return
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point="optsched.env.gym:OptschedEnv")


_register_env()


def __getattr__(name: str) -> Any:
    if name in _API:
        from optsched import api

        return getattr(api, name)
    if name == "MIP_GAP":
        from optsched.oracle import MIP_GAP

        return MIP_GAP
    raise AttributeError(f"module 'optsched' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API, "MIP_GAP"])


__all__ = ["ENV_ID", "OptschedError", "ScenarioError", *_API]
