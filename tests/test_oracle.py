"""The oracle: backends agree with each other and with the evaluator; known optima."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optsched.oracle import solve
from optsched.scenario import compile_scenario, get_scenario, scenario_from_dict
from tests.conftest import small_scenario, two_sites
from tests.test_provisioning import provisioned_small
from tests.test_queueing import queued_small

BACKENDS = ("pyomo", "cvxpy", "highs")


def build(raw):
    return compile_scenario(scenario_from_dict(raw))


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_backends_agree_with_each_other_and_the_evaluator(seed):
    c = small_scenario(seed)
    lp = {b: solve(c, b, relax=True) for b in BACKENDS}
    milp = {b: solve(c, b, relax=False, mip_gap=1e-9) for b in BACKENDS}
    for sols in (lp, milp):
        objs = [s.objective for s in sols.values()]
        scale = max(1.0, abs(objs[0]))
        assert max(objs) - min(objs) <= 1e-6 * scale, objs
        for s in sols.values():
            assert s.status == "optimal"
            assert s.evaluation.feasible
            assert s.evaluation.utility == pytest.approx(s.objective, rel=1e-6, abs=1e-6)
    # The LP relaxation bounds the MILP from above.
    assert milp["highs"].objective <= lp["highs"].objective + 1e-6 * max(1.0, abs(
        lp["highs"].objective))


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), model=st.sampled_from(["kingman", "erlang-c"]),
       pieces=st.integers(1, 8), cs2=st.floats(0.0, 3.0))
def test_backends_agree_with_the_evaluator_with_queueing_on(seed, model, pieces, cs2):
    """The late jobs from waiting are a variable per site and slot in every backend and
    a max of cuts in the evaluator: at the optimum both are the same number."""
    backends_agree(queued_small(seed, model=model, pieces=pieces, cs2=cs2))


def backends_agree(c) -> dict[bool, list]:
    """LP and MILP solutions of every backend ({relax: [Solution]}), after checking that
    their objectives agree and each equals the evaluator's utility of its schedule."""
    out = {}
    for relax in (True, False):
        sols = out[relax] = [solve(c, b, relax=relax, mip_gap=1e-9) for b in BACKENDS]
        objs = [s.objective for s in sols]
        assert max(objs) - min(objs) <= 1e-6 * max(1.0, abs(objs[0])), objs
        for s in sols:
            assert s.status == "optimal" and s.evaluation.feasible
            assert s.evaluation.utility == pytest.approx(s.objective, rel=1e-6, abs=1e-6)
    return out


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), cold_start_s=st.floats(0.0, 3600.0),
       idle_kw=st.floats(0.0, 2.0), queueing=st.sampled_from([None, "kingman", "erlang-c"]))
def test_backends_agree_with_the_evaluator_with_provisioning_on(seed, cold_start_s, idle_kw,
                                                                queueing):
    """GPUs started are a variable per site and slot in every backend (prices go negative
    here, so starting more than the rise of n may pay): the evaluator scores the returned
    start, and its utility is the solver's objective, with queueing on or off."""
    c = provisioned_small(seed, cold_start_s, idle_kw,
                          None if queueing is None else {"model": queueing, "pieces": 4})
    assert c.commit and c.queueing == (queueing is not None)
    sols = backends_agree(c)
    for s in sols[True] + sols[False]:
        rise = np.diff(s.schedule.n, axis=1)
        assert (s.schedule.start[:, 1:] >= rise - 1e-6).all()
    milp, lp = sols[False][0].objective, sols[True][0].objective
    assert milp <= lp + 1e-6 * max(1.0, abs(lp))            # the LP bounds the MILP


def test_battery_arbitrage_when_the_spread_beats_the_losses(tiny):
    site = tiny["sites"][0]
    site.update(price=[10.0, 200.0], export_cap_kw=100.0, sell_factor=1.0)
    tiny["classes"][0]["arrivals"] = [0.0, 0.0]
    for backend in BACKENDS:
        sol = solve(build(tiny), backend, relax=False)
        s = sol.schedule
        # Charge 10 kW (adds 9 kWh), sell back what returns soc to soc0: 9 x 0.8 = 7.2 kW.
        assert s.ch[0].tolist() == pytest.approx([10.0, 0.0], abs=1e-6)
        assert s.dis[0].tolist() == pytest.approx([0.0, 7.2], abs=1e-6)
        assert sol.objective == pytest.approx((200 * 7.2 - 10 * 10) / 1000, rel=1e-6)
    site.update(price=[100.0, 110.0])       # 110 x 0.72 < 100: cycling loses money
    sol = solve(build(tiny), "highs", relax=False)
    assert sol.schedule.ch.max() == pytest.approx(0.0, abs=1e-9)
    assert sol.objective == pytest.approx(0.0, abs=1e-9)


def test_transfer_when_value_exceeds_cost(tiny):
    raw = two_sites(tiny)
    raw["sites"][0]["gpus"] = 0                # home has no capacity: serve remotely or drop
    c = build(raw)
    sol = solve(c, "pyomo", relax=False)
    assert sol.evaluation.jobs["transferred"] == pytest.approx(150.0)
    assert sol.evaluation.jobs["dropped"] == pytest.approx(0.0, abs=1e-6)
    raw["network"]["transfer_cost"] = [[0.0, 0.1], [0.1, 0.0]]  # 0.02 - 0.1 < -0.03 (drop)
    sol = solve(build(raw), "cvxpy", relax=False)
    assert sol.evaluation.jobs["transferred"] == pytest.approx(0.0, abs=1e-6)
    assert sol.evaluation.jobs["dropped"] == pytest.approx(150.0)


def test_quality_floor_binds_against_cheaper_options(tiny):
    """Low quality earns nearly as much per job but is 3x cheaper in GPU time: at tight
    capacity the oracle prefers 10 steps, unless the floor forbids them."""
    tiny["models"][0]["quality"] = {"a": 0.1, "b": 1.0, "c": 20.0, "d": 0.9}
    tiny["sites"][0]["gpus"] = 1
    tiny["classes"][0]["arrivals"] = [4000.0, 4000.0]   # > 3,600 GPU-s at 10 steps
    c = build(tiny)
    free = solve(c, "highs", relax=False)
    assert free.evaluation.mean_steps == pytest.approx(10.0)
    tiny["classes"][0]["min_quality"] = 0.95
    floored = solve(build(tiny), "pyomo", relax=False)
    assert floored.evaluation.mean_steps == pytest.approx(30.0)
    assert floored.schedule.x[:, c.opt_steps == 10].sum() == 0.0
    assert floored.objective < free.objective


def test_infeasibility_is_diagnosed_by_family_site_and_slot(tiny):
    c = build(tiny)
    # Bypass the loader: soc0 below a raised floor and too little charging power to climb.
    bad = dataclasses.replace(c, soc_min=np.array([15.0]), ch_max=np.array([1.0]))
    for backend in BACKENDS:
        sol = solve(bad, backend, relax=True)
        assert sol.schedule is None and sol.status == "infeasible"
        assert sol.diagnosis.startswith("soc recursion at site a, slots 0"), sol.diagnosis


def test_default_day_lp_agrees_across_backends():
    c = compile_scenario(get_scenario("jemas-3"))
    objs = {b: solve(c, b, relax=True).objective for b in BACKENDS}
    ref = objs["highs"]
    assert all(abs(v - ref) <= 1e-6 * abs(ref) for v in objs.values()), objs


def test_solve_cli_json_contract(tmp_path):
    out = subprocess.run([sys.executable, "-m", "optsched.cli", "solve", "jemas-3", "--backend",
                          "highs", "--relax", "--json", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for key in ("utility", "terms", "status", "backend", "relaxed", "mip_gap", "build_s",
                "solve_s", "jobs", "evaluator_utility"):
        assert key in data
    assert data["relaxed"] and data["status"] == "optimal"
    assert data["evaluator_utility"] == pytest.approx(data["utility"], rel=1e-6)
    for name in ("jobs.parquet", "sites.csv", "dispatch.png", "decisions.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_cvxpy_resolves_another_day_by_updating_parameters():
    """DPP: a second day with the same structure re-solves without re-canonicalising."""
    from optsched.oracle.cvxpy_model import CvxpyOracle

    c1, c2 = (compile_scenario(get_scenario("jemas-3", d)) for d in (4, 9))
    oracle = CvxpyOracle(c1, relax=True)
    assert oracle.problem.is_dpp()
    first = oracle.solve(c1)
    first_compile = oracle.problem.compilation_time
    oracle.update(c2)
    second = oracle.solve(c2)
    assert oracle.problem.compilation_time < 0.25 * first_compile
    assert second.objective == pytest.approx(solve(c2, "highs", relax=True).objective,
                                             rel=1e-6)
    assert first.objective != pytest.approx(second.objective, rel=1e-6)


def test_time_limit_without_a_schedule_is_reported_not_diagnosed():
    c = compile_scenario(get_scenario("jemas-3"))
    sol = solve(c, "highs", relax=True, time_limit=0.01)
    assert sol.schedule is None and sol.status == "time_limit"
    assert "time limit of 0.01 s" in sol.diagnosis


@pytest.mark.parametrize("backend", ["cvxpy", "highs"])
def test_a_time_limited_milp_is_reported_as_such(backend):
    """The default day's MILP needs seconds; stopped at 0.05 s it is a time-limited solve
    (never an objective mismatch), and its record is valid JSON (no infinite gap)."""
    c = compile_scenario(get_scenario("jemas-3"))
    sol = solve(c, backend, relax=False, time_limit=0.05)
    assert sol.status == "time_limit"
    json.dumps(sol.to_dict(), allow_nan=False)
    if sol.schedule is None:
        assert "time limit of 0.05 s" in sol.diagnosis
    else:                      # an incumbent: scored by the evaluator, below the bound
        assert sol.evaluation.feasible
        assert sol.bound is None or sol.bound >= sol.objective


def test_milp_reports_its_gap_and_best_bound_on_every_backend():
    """Seed 1 stops inside the default 0.1% gap, short of proven optimality: the bound
    lies above the incumbent by the reported gap and below the LP relaxation's optimum."""
    c = small_scenario(1)
    lp = solve(c, "highs", relax=True)
    assert lp.bound is None and lp.mip_gap is None
    for backend in BACKENDS:
        sol = solve(c, backend, relax=False)
        assert 0 < sol.mip_gap <= 1e-3, backend
        assert sol.objective < sol.bound <= lp.objective * (1 + 1e-9), backend
        assert (sol.bound - sol.objective) / abs(sol.objective) == pytest.approx(
            sol.mip_gap, rel=1e-6), backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_loose_mip_gap_returns_its_incumbent_scored_by_the_evaluator(tiny, backend):
    """At a 50% gap the MILP stops at an incumbent whose helper variables may be slack
    (its objective $2.96875 on TINY, where the optimum is about $3.00): the evaluator
    recomputes them from the decisions and scores the schedule between that objective
    and the solver's bound (a feasible schedule cannot beat the bound), instead of the
    command failing on the mismatch."""
    sol = solve(build(tiny), backend, relax=False, mip_gap=0.5)
    tol = 1e-6 * max(1.0, abs(sol.objective))
    assert sol.evaluation.feasible
    assert sol.objective - tol <= sol.evaluation.utility <= sol.bound + tol
