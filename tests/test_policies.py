"""Baselines on the environment: every one feasible and scored exactly by the evaluator;
MPC with perfect forecasts within 1% of the oracle."""

from __future__ import annotations

import pytest

from optsched.oracle import solve
from optsched.policies import POLICIES, get_policy, rollout
from optsched.policies.mpc import MPC
from optsched.scenario import compile_scenario, get_scenario
from tests.conftest import small_scenario


@pytest.fixture(scope="module")
def default_day():
    c = compile_scenario(get_scenario("jemas-3"))
    return c, solve(c, "highs").objective


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_is_feasible_and_exactly_scored_on_small_scenarios(name):
    days = [small_scenario(11)]
    for _, ev, total in rollout(get_policy(name), days):
        assert ev.feasible, ev.violations[:3]
        assert total == pytest.approx(ev.utility, rel=1e-9, abs=1e-9)


def test_baselines_rank_as_expected_on_the_default_day(default_day):
    c, oracle = default_day
    u = {name: rollout(get_policy(name), [c])[0][1].utility
         for name in ("local-fixed", "greedy", "myopic-lp")}
    assert u["local-fixed"] < u["greedy"] < u["myopic-lp"] < oracle


def test_mpc_with_perfect_forecasts_is_within_1pct_of_the_oracle(default_day):
    c, oracle = default_day
    _, ev, _ = rollout(MPC(), [c])[0]
    assert ev.feasible
    assert (oracle - ev.utility) / oracle < 0.01
    # Nothing beats perfect foresight: the LP relaxation bounds every schedule. (The
    # MILP's incumbent at its 0.1% gap may not: MPC has landed $0.01 above it.)
    assert ev.utility <= solve(c, "highs", relax=True).objective * (1 + 1e-9)


def test_noisy_mpc_is_feasible_and_below_perfect(default_day):
    c, oracle = default_day
    _, ev, _ = rollout(MPC(error=0.3, seed=1, horizon=96, replan_every=24), [c])[0]
    assert ev.feasible and ev.utility < oracle


def test_planners_roll_several_days_in_one_batch():
    """Plans (greedy, MPC) act through step_plan on every copy of a batch at once."""
    days = [small_scenario(11), small_scenario(11)]
    for name in ("greedy", "myopic-lp"):
        results = rollout(get_policy(name), days)
        assert len(results) == 2
        for _, ev, total in results:
            assert ev.feasible and total == pytest.approx(ev.utility, rel=1e-9, abs=1e-9)
