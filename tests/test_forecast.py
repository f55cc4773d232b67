"""Forecasts from the past only: hand-computed values, no peeking, quantile coverage."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from optsched import forecast as fc
from optsched.scenario import genai

PAST = {d: np.array([[d, d, 2 * d, 2 * d], [0, d, 0, d]], float) for d in range(20)}


def past(d):
    return PAST.get(d)


def test_seasonal_naive_by_hand():
    assert fc.seasonal_naive(past, 0) is None                       # no past at all
    np.testing.assert_array_equal(fc.seasonal_naive(past, 3), PAST[2])   # yesterday
    np.testing.assert_array_equal(fc.seasonal_naive(past, 9), PAST[2])   # day 9 - 7
    # days 15 - 7 = 8 and 15 - 14 = 1: their mean
    np.testing.assert_array_equal(fc.seasonal_naive(past, 15), (PAST[8] + PAST[1]) / 2)
    # four weeks back at most: 29 -> 22 (unknown), 15, 8, 1
    np.testing.assert_array_equal(fc.seasonal_naive(past, 29),
                                  (PAST[15] + PAST[8] + PAST[1]) / 3)


def test_rescale_by_hand():
    naive = np.array([[2, 2, 4, 4], [0, 2, 0, 2], [5, 5, 5, 5]], float)
    observed = np.array([[3, 3], [1, 1], [5, 5]], float)
    out = fc.rescale(naive, observed, groups=[0, 0, 1], shrink=0.5)
    # group 0: observed 8, forecast so far 6, day 16, prior 0.5 x 16 = 8: r = 16 / 14
    r = 16 / 14
    np.testing.assert_allclose(out, [[3, 3, 4 * r, 4 * r], [1, 1, 0, 2 * r], [5, 5, 5, 5]])
    # nothing observed: the seasonal naive as it is
    np.testing.assert_array_equal(fc.rescale(naive, naive[:, :0], [0, 0, 1]), naive)


def test_persistence_without_a_past():
    f = fc.DayForecaster(None, np.array([0, 1]))
    out = f.point(np.array([[1.0, 4.0], [2.0, 0.0]]), 4)
    np.testing.assert_array_equal(out, [[1, 4, 4, 4], [2, 0, 0, 0]])


def test_weighted_quantile_by_hand():
    v, w = np.array([3.0, 1.0, 2.0]), np.array([1.0, 1.0, 2.0])
    # sorted 1 (w 1), 2 (w 2), 3 (w 1): cumulative 1, 3, 4 of 4
    np.testing.assert_array_equal(fc.weighted_quantile(v, w, [0.25, 0.5, 0.75, 1.0]),
                                  [1, 2, 2, 3])


def test_quantile_uses_the_lead_bucket():
    q = fc.QuantileModel((0.5, 0.9), (1.0,), np.array([[1.0, 2.0], [1.0, 3.0]]))
    point = np.full((1, 6), 10.0)
    # origin 2, slots of 0.5 h: leads -1, -0.5 (observed), 0, 0.5 (< 1 h), 1, 1.5 h
    np.testing.assert_allclose(q.quantile(point, 2, 0.9, 0.5), [[10, 10, 20, 20, 30, 30]])


def test_a_forecast_never_reads_the_future():
    day = genai.test_days()[8]                                   # day 44
    f = fc.DayForecaster.for_day(_compiled(day))
    actual = np.asarray(genai.arrivals(day), float)
    assert f.naive is not None
    for t in (0, 60, 200):
        later = actual.copy()
        later[:, t:] = later[:, t:] * 3 + 7                     # a different future
        np.testing.assert_array_equal(f.point(actual[:, :t], 288), f.point(later[:, :t], 288))
    # and the seasonal naive is the mean of days - 7, - 14, - 21, - 28
    want = np.mean([genai.arrivals(day - 7 * w) for w in range(1, 5)], axis=0)
    np.testing.assert_allclose(f.naive, want)


def test_quantile_coverage_on_training_days_is_near_nominal():
    q = fc.family_quantiles("jemas-3-genai")
    home = np.array([0, 0, 1, 1, 2, 2])
    below = {lv: [] for lv in q.levels}
    weights = []
    for day in genai.train_days()[40:80]:
        f = fc.DayForecaster(fc.seasonal_naive(genai.arrivals, day), home)
        actual = np.asarray(genai.arrivals(day), float)
        for origin in range(0, 288, 12):
            point = f.point(actual[:, :origin], 288)
            ok = point[:, origin:] >= fc.MIN_FORECAST
            weights.append(point[:, origin:][ok])
            for lv in q.levels:
                hi = q.quantile(point, origin, lv, 5 / 60)[:, origin:]
                below[lv].append((actual[:, origin:] <= hi)[ok])
    w = np.concatenate(weights)
    for lv in q.levels:
        share = float(np.sum(w * np.concatenate(below[lv])) / w.sum())
        assert share == pytest.approx(lv, abs=0.04), (lv, share)


def _compiled(day):
    from optsched.scenario import compile_scenario, get_scenario
    return compile_scenario(get_scenario("jemas-3-genai", day))


def test_mpc_forecast_plans_on_a_day_without_its_future():
    from optsched.policies.mpc_forecast import believed_day
    from optsched.scenario.compile import backlog_cap

    c = _compiled(44)
    f = fc.DayForecaster.for_day(c)
    for t in (0, 100, 287):
        later = c.arrivals.copy()
        later[:, t + 1:] = later[:, t + 1:] * 2 + 5
        c2 = dataclasses.replace(c, arrivals=later, backlog_cap=backlog_cap(later, c.max_wait))
        a, b = believed_day(c, t, f), believed_day(c2, t, fc.DayForecaster.for_day(c2))
        np.testing.assert_array_equal(a.arrivals, b.arrivals)
        np.testing.assert_array_equal(a.backlog_cap, b.backlog_cap)
        np.testing.assert_array_equal(a.arrivals[:, :t + 1], c.arrivals[:, :t + 1])


def test_scenario_mpc_with_equal_paths_is_mpc_forecast(monkeypatch):
    """Three identical paths tied by non-anticipativity: the same LP optimum as the one
    path of mpc-forecast (policies.mpc's own window model, a second implementation)."""
    from optsched.policies import mpc_scenarios, rollout
    from optsched.policies.mpc_forecast import MPCForecast
    from tests.conftest import small_scenario

    c = small_scenario(3)
    flat = fc.QuantileModel((0.1, 0.5, 0.9), (1.0,), np.ones((2, 3)))
    monkeypatch.setattr(mpc_scenarios, "quantile_model", lambda _c: flat)
    one = rollout(MPCForecast(horizon=6, replan_every=2), [c])[0][1]
    three = rollout(mpc_scenarios.MPCScenarios(horizon=6, replan_every=2), [c])[0][1]
    assert three.feasible and three.utility == pytest.approx(one.utility, rel=1e-6)
    spread = fc.QuantileModel((0.1, 0.5, 0.9), (1.0,), np.array([[0.2, 1, 3]] * 2, float))
    monkeypatch.setattr(mpc_scenarios, "quantile_model", lambda _c: spread)
    assert rollout(mpc_scenarios.MPCScenarios(horizon=6, replan_every=2), [c])[0][1].feasible


def test_non_anticipativity_ties_only_the_first_slot():
    from optsched.oracle.matrix import build_matrix
    from optsched.policies.mpc_scenarios import _non_anticipativity
    from tests.conftest import small_scenario

    m = build_matrix(small_scenario(3))
    na = _non_anticipativity(m, 3)
    rng = np.random.default_rng(0)
    v = rng.random(m.n_vars)
    same = np.concatenate([v, v, v])
    assert np.abs(na @ same).max() == 0
    other = v.copy()
    x = np.arange(m.n_vars)[m.blocks["x"]].reshape(m.shapes["x"])
    other[x[:, 1:]] += 1.0                          # later slots may differ
    assert np.abs(na @ np.concatenate([v, other, v])).max() == 0
    other[x[0, 0]] += 1.0                           # the first slot may not
    assert np.abs(na @ np.concatenate([v, other, v])).max() == 1.0
