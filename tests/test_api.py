"""The Python API end to end, as a notebook would use it (the README's example), and on a
tiny scenario whose numbers are known by hand."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import optsched
from optsched.scenario import compile_scenario, scenario_from_dict
from tests.conftest import TINY


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The README's example, with the oracle cache in a temporary folder."""
    cache = tmp_path_factory.mktemp("cache")
    sc = optsched.load_scenario("jemas-3", day=4)
    lp = optsched.solve(sc, relax=True)
    ev = optsched.evaluate(sc, lp.schedule)
    run = optsched.rollout(sc, "greedy", seed=0)
    table = optsched.compare("jemas-3", ["local-fixed", "greedy"], days="4", cache=cache)
    env = optsched.make_env("jemas-3", days="train:4")
    obs, info = env.reset(seed=0)
    return locals()


def test_evaluator_agrees_with_the_solver(example):
    assert example["ev"].utility == pytest.approx(example["lp"].objective, rel=1e-6)
    assert example["ev"].feasible


def test_the_table_holds_the_oracle_bound_and_the_baseline(example):
    t = example["table"].set_index("policy")
    oracle = t.loc["oracle"]
    assert oracle.gap == 0.0 and oracle.captured == 1.0
    assert t.loc["local-fixed", "captured"] == 0.0
    # The LP relaxation bounds the MILP oracle, which bounds every policy (to its gap).
    assert example["lp"].objective >= oracle.utility
    assert (t.utility <= oracle.utility * (1 + optsched.MIP_GAP)).all()
    assert 0.0 < t.loc["greedy", "captured"] < 1.0
    # Same policy, day and seed: the same number through rollout and compare.
    assert t.loc["greedy", "utility"] == pytest.approx(
        example["run"].evaluation.utility, rel=1e-9)


def test_make_env_gives_training_days(example):
    assert example["info"]["day"] in (0, 1, 2, 3)
    assert example["obs"].shape == example["env"].observation_space.shape


def arbitrage():
    """TINY without jobs and with a price spread worth one battery cycle: the oracle earns
    (200 $/MWh x 7.2 kW - 10 $/MWh x 10 kW) x 1 h = $1.34; local-fixed leaves the battery
    idle and, with no jobs and no idle draw, earns exactly $0."""
    raw = json.loads(json.dumps(TINY))
    raw["sites"][0].update(price=[10.0, 200.0], export_cap_kw=100.0, sell_factor=1.0)
    raw["classes"][0]["arrivals"] = [0.0, 0.0]
    return compile_scenario(scenario_from_dict(raw))


def test_compare_on_a_scenario_known_by_hand():
    t = optsched.compare(arbitrage(), ["local-fixed"], cache=None).set_index("policy")
    assert t.loc["oracle", "utility"] == pytest.approx(1.34, rel=1e-9)
    assert t.loc["local-fixed", "utility"] == pytest.approx(0.0, abs=1e-12)
    assert t.loc["local-fixed", "gap"] == pytest.approx(1.0, rel=1e-9)
    assert t.loc["local-fixed", "captured"] == 0.0


def test_solve_refuses_unknown_backends():
    with pytest.raises(optsched.ScenarioError, match="--backend"):
        optsched.solve(arbitrage(), backend="gurobi")


def test_import_is_light_and_registers_the_env():
    code = ("import sys, optsched, gymnasium; "
            "heavy = [m for m in ('torch', 'numba', 'pandas', 'pyomo', 'cvxpy') "
            "if m in sys.modules]; "
            "env = gymnasium.make('optsched/Jemas3-v0'); env.reset(seed=0); print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_top_level_api_names_stay_functions_after_any_submodule_loads():
    """`optsched.report` was the API function until a sweep or report imported the
    subpackage of that name, which took its place (`'module' object is not callable`):
    no subpackage shares a name with the API."""
    import importlib
    import pkgutil

    from optsched import api

    assert set(optsched.__all__) - {"ENV_ID", "OptschedError", "ScenarioError"} == \
        set(api.__all__)                     # build_scenario, compiled, days_of were missing
    subpackages = {m.name for m in pkgutil.iter_modules(optsched.__path__)}
    assert not subpackages & set(optsched.__all__)
    for name in sorted(subpackages - {"__main__"}):
        importlib.import_module(f"optsched.{name}")
    for name in ("compare", "evaluate", "report", "rollout", "simulate", "solve", "sweep"):
        assert callable(getattr(optsched, name)) and \
            getattr(optsched, name).__module__ == "optsched.api", name


def test_compare_takes_one_name_as_one_policy_and_refuses_other_things():
    """compare("jemas-3", "greedy") compared the policies "g", "r", ... (the first was
    refused as unknown); evaluate_policy with a list failed on an unhashable type."""
    from optsched.api import compare, evaluate_policy
    from optsched.errors import ScenarioError

    table = compare("jemas-3", "greedy", days="4", oracle=False)
    assert table.policy.tolist() == ["greedy"]
    with pytest.raises(ScenarioError, match="^policies: must be policy names"):
        compare("jemas-3", ["greedy", 3], days="4", oracle=False)
    with pytest.raises(ScenarioError, match="^policy: must be one policy name"):
        evaluate_policy("jemas-3", ["greedy"], "4", oracle=False)
    summary, _ = evaluate_policy("jemas-3", "greedy", "4", oracle=False)
    assert summary["gap"] is None and summary["gap_iqr"] is None     # the key was missing
