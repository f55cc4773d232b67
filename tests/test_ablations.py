"""The paper's ablation switches: each removes its lever and never raises the optimum."""

from __future__ import annotations

import pytest

from optsched.oracle import solve
from optsched.scenario import compile_scenario, get_scenario
from optsched.scenario.ablations import ABLATIONS, ablate


@pytest.fixture(scope="module")
def day():
    c = compile_scenario(get_scenario("jemas-3"))
    return c, solve(c, "highs", relax=True)


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablation_removes_its_lever_and_costs_utility(day, name):
    c, full = day
    ca = ablate(c, [name])
    sol = solve(ca, "highs", relax=True)
    assert sol.objective <= full.objective * (1 + 1e-9)
    s = sol.schedule
    used = s.x.sum(axis=(0, 2)) > 1e-6
    if name == "no-transfer":
        assert sol.evaluation.jobs["transferred"] == pytest.approx(0.0, abs=1e-6)
    elif name == "fixed-steps":
        assert set(c.opt_steps[used]) == {30}
    elif name == "no-dvfs":
        assert set(c.opt_clock[used]) == {1.0}
    elif name == "no-renewables":
        assert s.r.max() == 0.0
    else:
        assert s.ch.max() == 0.0 and s.dis.max() == 0.0
    # Scored on the full scenario, the ablated schedule is still feasible.
    from optsched.evaluator import evaluate
    if name in ("no-transfer", "fixed-steps", "no-dvfs", "no-battery"):
        assert evaluate(c, s).feasible


def test_unknown_ablation_is_rejected(day):
    with pytest.raises(ValueError, match="unknown ablation"):
        ablate(day[0], ["no-gpus"])
