"""The evaluator against hand calculations, one MODEL.md term at a time."""

from __future__ import annotations

import numpy as np
import pytest

from optsched import physics
from optsched.evaluator import TERMS, evaluate, utility_of
from optsched.scenario import compile_scenario, scenario_from_dict
from optsched.schedule import Schedule, complete
from tests.conftest import two_sites


def build(raw):
    return compile_scenario(scenario_from_dict(raw))


def serve(c, plan, n=1.0, y=None, **battery):
    """A complete schedule from {(class, option, slot): jobs}."""
    x = np.zeros((c.K, c.O, c.T))
    for (k, o, t), v in plan.items():
        x[k, o, t] = v
    y = np.zeros((c.K, c.T)) if y is None else np.asarray(y, float)
    return complete(c, x, y, np.full((c.I, c.T), float(n)),
                    **{k: np.asarray(v, float) for k, v in battery.items()})


def test_revenue_energy_and_carbon_by_hand(tiny):
    tiny["horizon"]["carbon_price"] = 50.0
    c = build(tiny)
    o = c.option_index(0, 10, 1.0)
    ev = evaluate(c, serve(c, {(0, o, 0): 100, (0, o, 1): 50}))
    assert ev.feasible, ev.violations
    # 100 jobs x 1e-4 kWh in 1 h -> 0.01 kW IT, x PUE 1.5 -> 0.015 kW; slot 1 half that.
    assert ev.terms["revenue"] == pytest.approx(0.02 * 150, rel=1e-12)
    assert ev.terms["energy"] == pytest.approx((100 * 0.015 + 200 * 0.0075) / 1000, rel=1e-12)
    assert ev.terms["carbon"] == pytest.approx(50 * (400 * 0.015 + 200 * 0.0075) / 1e6,
                                               rel=1e-12)
    assert ev.utility == pytest.approx(3.0 - 0.003 - 3.75e-4, rel=1e-12)
    assert ev.sites["a"]["grid_import_kwh"] == pytest.approx(0.0225, rel=1e-12)
    assert ev.sites["a"]["emissions_kg"] == pytest.approx((400 * 0.015 + 200 * 0.0075) / 1000)
    assert ev.jobs["served"] == 150 and ev.jobs["dropped"] == 0 and ev.mean_quality == 1.0


def test_drop_penalty_by_hand(tiny):
    c = build(tiny)
    o = c.option_index(0, 10, 1.0)
    ev = evaluate(c, serve(c, {(0, o, 0): 60, (0, o, 1): 50}, y=[[40, 0]]))
    assert ev.feasible, ev.violations
    assert ev.terms["drop"] == pytest.approx(0.03 * 40)
    assert ev.jobs["dropped"] == 40


def test_late_penalty_and_dvfs_by_hand(tiny):
    c = build(tiny)
    slow = c.option_index(0, 30, 0.5)          # 30 * 0.1 / 0.5 = 6 s > 4 s deadline
    assert c.gpu_s[slow] == pytest.approx(6.0) and c.late[0, slow]
    assert not c.late[0, c.option_index(0, 30, 1.0)]        # 3 s
    # sigma = 0: energy per step scales f^2 -> 30 * 36 J * 0.25 = 270 J per job.
    assert c.energy_j[slow] == pytest.approx(270.0)
    ev = evaluate(c, serve(c, {(0, slow, 0): 100, (0, slow, 1): 50}))
    assert ev.feasible, ev.violations
    assert ev.terms["late"] == pytest.approx(0.01 * 150)
    assert ev.jobs["late"] == 150


def test_wait_cost_and_waiting_limit_by_hand(tiny):
    cl = tiny["classes"][0]
    cl.update(kind="deferrable", max_wait_slots=1, wait_cost=0.001)
    del cl["deadline_s"], cl["late_penalty"]
    c = build(tiny)
    o = c.option_index(0, 10, 1.0)
    ev = evaluate(c, serve(c, {(0, o, 0): 40, (0, o, 1): 110}))
    assert ev.feasible, ev.violations
    assert ev.terms["wait"] == pytest.approx(0.001 * 60)
    # Serving nothing in slot 0 keeps 100 waiting (allowed, D = 1), but 150 may not wait
    # past the horizon: the end-of-horizon backlog must be 0.
    late_ev = evaluate(c, serve(c, {(0, o, 1): 100}))
    assert "waiting limit" in late_ev.violation_counts


def test_transfer_cost_by_hand(tiny):
    c = build(two_sites(tiny))
    remote = c.option_index(1, 10, 1.0)
    assert c.latency_s[0, remote] == pytest.approx(1.5) and not c.late[0, remote]
    ev = evaluate(c, serve(c, {(0, remote, 0): 100, (0, remote, 1): 50}))
    assert ev.feasible, ev.violations
    assert ev.terms["transfer"] == pytest.approx(0.001 * 150)
    assert ev.jobs["transferred"] == 150
    assert ev.sites["b"]["jobs_served"] == 150 and ev.sites["a"]["jobs_served"] == 0


def test_demand_charge_books_when_the_peak_rises(tiny):
    tiny["sites"][0]["demand_charge"] = 2.0
    c = build(tiny)
    o = c.option_index(0, 10, 1.0)
    ev = evaluate(c, serve(c, {(0, o, 0): 50, (0, o, 1): 100}))
    assert ev.terms["demand"] == pytest.approx(2.0 * 0.015)
    frame = ev.slots_frame()
    assert frame["demand"].tolist() == pytest.approx([2.0 * 0.0075, 2.0 * 0.0075])
    assert ev.sites["a"]["peak_import_kw"] == pytest.approx(0.015)


def test_battery_degradation_terminal_and_export_by_hand(tiny):
    site = tiny["sites"][0]
    site["export_cap_kw"] = 10.0
    site["battery"]["deg_cost"] = 0.05
    c = build(tiny)
    o = c.option_index(0, 10, 1.0)
    s = serve(c, {(0, o, 0): 100, (0, o, 1): 50}, ch=[[10, 0]], dis=[[0, 8]])
    # soc: 10 + 1 h * 0.9 * 10 = 19, then 19 - 8 / 0.8 = 9 kWh: 1 kWh short of soc0.
    assert s.soc[0].tolist() == pytest.approx([19.0, 9.0])
    ev = evaluate(c, s)
    assert ev.feasible, ev.violations
    assert ev.terms["degradation"] == pytest.approx(0.05 * 18)
    assert ev.terms["terminal"] == pytest.approx(1.0 * 200 / 1000 / 0.9)
    # Slot 0 imports 10.015 kW; slot 1 exports 8 - 0.0075 kW at half price.
    assert s.b[0].tolist() == pytest.approx([10.015, 0.0])
    assert s.z[0].tolist() == pytest.approx([0.0, 7.9925])
    assert ev.terms["energy"] == pytest.approx((100 * 10.015 - 0.5 * 200 * 7.9925) / 1000)
    assert ev.slots_frame()["terminal"].tolist() == pytest.approx([0.0, 0.2 / 0.9])


def test_charging_10kw_for_an_hour_at_eta_09_adds_9kwh():
    assert physics.soc_next(10.0, 10.0, 0.0, 1.0, 0.9, 0.8) == pytest.approx(19.0)
    assert physics.soc_next(10.0, 0.0, 8.0, 1.0, 0.9, 0.8) == pytest.approx(0.0)
    path = physics.soc_path(np.array([10.0]), np.array([[10.0, 0.0]]),
                            np.array([[0.0, 8.0]]), 1.0, np.array([0.9]), np.array([0.8]))
    assert path[0].tolist() == pytest.approx([19.0, 9.0])


def test_terminal_rule_charges_only_a_shortfall(tiny):
    c = build(tiny)
    o = c.option_index(0, 10, 1.0)
    fuller = serve(c, {(0, o, 0): 100, (0, o, 1): 50}, ch=[[1, 0]], dis=[[0, 0]])
    assert evaluate(c, fuller).terms["terminal"] == 0.0
    emptier = serve(c, {(0, o, 0): 100, (0, o, 1): 50}, ch=[[0, 0]], dis=[[0, 2]])
    # 2 kW for 1 h at eta_d 0.8 draws 2.5 kWh, bought back at the horizon's top price.
    assert evaluate(c, emptier).terms["terminal"] == pytest.approx(2.5 * 0.2 / 0.9)


def test_energy_balance_holds_with_renewables_and_battery(tiny):
    site = tiny["sites"][0]
    site["renewable_kw"] = [0.005, 3.0]
    c = build(tiny)
    o = c.option_index(0, 10, 1.0)
    s = serve(c, {(0, o, 0): 100, (0, o, 1): 50}, ch=[[0, 2]], dis=[[0, 0]],
              r=c.renewable.copy())
    ev = evaluate(c, s)
    assert ev.feasible, ev.violations
    fac = ev.site_series["facility_kw"]
    lhs = s.b - s.z
    rhs = fac + s.ch - s.dis - s.r
    np.testing.assert_allclose(lhs, rhs, atol=1e-12)
    # Renewables beyond the site's use and export cap (0) are curtailed, not exported.
    assert s.z[0, 1] == 0.0 and s.r[0, 1] == pytest.approx(fac[0, 1] + 2.0)


def test_violations_are_named_with_slot_and_site(tiny):
    c = build(tiny)
    o = c.option_index(0, 10, 1.0)
    s = serve(c, {(0, o, 0): 5000, (0, o, 1): 50}, y=[[-4900, 0]])
    ev = evaluate(c, s)
    assert not ev.feasible
    names = {v.constraint for v in ev.violations}
    assert {"gpu capacity", "nonnegative y"} <= names
    cap = next(v for v in ev.violations if v.constraint == "gpu capacity")
    assert (cap.where, cap.slot) == ("a", 0) and cap.amount == pytest.approx(5000 - 3600)
    assert "gpu capacity at a, slot 0" in str(cap)


def test_milp_mode_demands_integers_and_one_battery_mode(tiny):
    c = build(tiny)
    o = c.option_index(0, 10, 1.0)
    s = serve(c, {(0, o, 0): 100, (0, o, 1): 50}, n=0.5, ch=[[1, 0]], dis=[[1, 0]])
    assert evaluate(c, s).feasible
    counts = evaluate(c, s, milp=True).violation_counts
    assert {"integer gpus", "battery mode"} <= set(counts)


def test_slot_terms_sum_to_totals_and_frames_convert(tiny):
    tiny["sites"][0]["demand_charge"] = 1.0
    c = build(tiny)
    o = c.option_index(0, 30, 1.0)
    ev = evaluate(c, serve(c, {(0, o, 0): 100, (0, o, 1): 20}, y=[[0, 30]]))
    frame = ev.slots_frame()
    assert list(frame.columns) == [*TERMS, "utility"]
    assert frame["utility"].sum() == pytest.approx(ev.utility, rel=1e-12)
    for term in TERMS:
        assert frame[term].sum() == pytest.approx(ev.terms[term], rel=1e-12, abs=1e-15)
    sites = ev.sites_frame()
    assert sites.shape[0] == c.I * c.T and "grid_import_kw" in sites
    assert '"utility"' in ev.to_json()


def test_schedule_save_and_load_round_trip(tiny, tmp_path):
    c = build(tiny)
    s = serve(c, {(0, c.option_index(0, 10, 1.0), 0): 100}, y=[[0, 50]])
    s.save(tmp_path / "s.npz")
    back = Schedule.load(tmp_path / "s.npz")
    assert evaluate(c, back).utility == evaluate(c, s).utility


def test_utility_of_is_revenue_less_costs_and_independent_of_batching():
    one = dict(zip(TERMS, [3.0, 0.5, 0.25, 0.125, 0, 0, 0, 0, 0, 1.0], strict=True))
    assert utility_of(one) == 3.0 - 0.5 - 0.25 - 0.125 - 1.0
    rows = np.random.default_rng(0).normal(0, 1, (500, len(TERMS))) * np.logspace(-3, 6, 10)
    batched = utility_of(rows)
    # A day's ten totals and a row of a batch give the same bits (no pairwise summing).
    assert [utility_of(dict(zip(TERMS, r, strict=True))) for r in rows] == batched.tolist()
    assert utility_of(rows.T.copy().T[:3]).tolist() == batched[:3].tolist()
    with pytest.raises(ValueError, match="last axis of 10"):
        utility_of(rows[:, :9])


def test_schedule_save_appends_npz_like_numpy_and_leaves_no_temporary(tiny, tmp_path):
    c = build(tiny)
    s = serve(c, {(0, c.option_index(0, 10, 1.0), 0): 100}, y=[[0, 50]])
    s.save(tmp_path / "plain")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.npz"]
    np.testing.assert_array_equal(Schedule.load(tmp_path / "plain.npz").x, s.x)


def test_the_gap_is_relative_to_the_oracle_and_undefined_at_zero():
    """(U_oracle - U_policy) / |U_oracle| by hand; NaN where the oracle earns exactly 0 (a
    day without jobs), where the division was an internal error before."""
    from optsched.evaluator import gap

    assert gap(90.0, 100.0) == pytest.approx(0.1)
    assert gap(-110.0, -100.0) == pytest.approx(0.1)
    assert np.isnan(gap(0.0, 0.0)) and np.isnan(gap(-3.0, 0.0))


def test_the_evaluators_and_solvers_switches_take_only_their_values():
    """tol NaN passed every check (a schedule of negated jobs was feasible), tol -1 failed
    a feasible one, and relax="no" (truthy) solved the LP relaxation."""
    from optsched import api
    from optsched.errors import ScenarioError

    c = api.compiled("jemas-3", 4)
    run = api.rollout(c, "greedy")
    for kwargs, key in (({"tol": float("nan")}, "tol"), ({"tol": -1.0}, "tol"),
                        ({"tol": "x"}, "tol"), ({"milp": "no"}, "milp")):
        with pytest.raises(ScenarioError, match=f"^{key}: must be"):
            api.evaluate(c, run.schedule, **kwargs)
    with pytest.raises(ScenarioError, match="^--relax: must be True or False"):
        api.solve(c, relax="no")
    assert api.evaluate(c, run.schedule, tol=1e-6).feasible
