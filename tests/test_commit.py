"""The environment and the policies with provisioning before arrivals (`Compiled.commit`,
docs/model.md "Provisioning before arrivals"): v1 unchanged with the mode off, a slot
computed by hand (committed GPUs, cold starts, the excess dropped, idle GPUs paid), an
observation and plans that never read the slot's own or later arrivals, rewards that sum
to the evaluator's utility for every policy, and oracle replays that pass unchanged."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from optsched.env import BatchedCore, DayBank, EnvConfig
from optsched.env.known import Known, knowing, provision_for, provisioning
from optsched.evaluator import TERMS, evaluate
from optsched.policies import POLICIES, Planner, get_policy, rollout
from optsched.policies.mpc_forecast import MPCForecast
from optsched.scenario import compile_scenario, get_scenario, scenario_from_dict
from optsched.scenario.compile import backlog_cap
from optsched.scenario.schema import Provisioning
from tests.conftest import TINY, small_scenario
from tests.test_provisioning import provisioned_small


def core_of(c, batch: int = 1, record: bool = True) -> BatchedCore:
    core = BatchedCore(DayBank.from_compiled([c]), batch, EnvConfig(record=record))
    core.reset(days=np.zeros(batch, dtype=np.int64))
    return core


# ---------------------------------------------------------------- v1 unchanged
# main's utilities (commit cbb8cd5, before provisioning existed) on small_scenario(11)
MAIN_SMALL_11 = {"local-fixed": 216.4590367075548, "greedy": 300.294336628206,
                 "dispatch": 327.1274905316036, "myopic-lp": 328.06034881184377}


@pytest.mark.parametrize("name", sorted(MAIN_SMALL_11))
def test_v1_unchanged_with_provisioning_off(name, monkeypatch):
    """`enabled = false` scores as no section at all, and both as main did."""
    import tests.conftest as conftest

    def disabled(sc):
        return compile_scenario(sc.model_copy(update={
            "provisioning": Provisioning(enabled=False)}))

    without = small_scenario(11)
    monkeypatch.setattr(conftest, "compile_scenario", disabled)
    off = small_scenario(11)
    assert not off.commit and off.cold_start_s == 0.0
    a, b = rollout(get_policy(name), [without])[0], rollout(get_policy(name), [off])[0]
    assert a[1].utility == MAIN_SMALL_11[name]
    assert b[1].utility == a[1].utility
    for key in ("x", "y", "n", "ch", "dis", "b"):
        np.testing.assert_array_equal(getattr(a[0], key), getattr(b[0], key), err_msg=key)


# ---------------------------------------------------------------- by hand
def hand_day(cold_start_s: float = 360.0):
    """TINY with 6 GPUs idling at 0.3 kW, one-hour slots: a job (10 steps, nominal clock)
    takes 1 GPU-second and 360 J, 300 J of it idle floor, so 60 J (1/60,000 kWh) busy;
    a GPU holds 3,600 jobs a slot. Arrivals 3,600 (one GPU's worth) then 18,000 (five)."""
    raw = copy.deepcopy(TINY)
    raw["models"][0]["gpu_idle_kw"] = 0.3
    raw["sites"][0]["gpus"] = 6
    raw["classes"][0]["arrivals"] = [3600.0, 18000.0]
    raw["provisioning"] = {"cold_start_s": cold_start_s}
    return compile_scenario(scenario_from_dict(raw))


def test_a_slot_by_hand_excess_dropped_idle_paid_cold_start_lost():
    """Slot 0 (warm): 2 GPUs committed for one GPU's worth of jobs, and an empty plan
    (nothing believed pending): the jobs take the fallback option (10 steps at nominal
    clock, the best value per GPU-second), the idle GPU is paid: IT 0.3 x 2 + 3,600 /
    60,000 = 0.66 kW, x PUE 1.5 x $0.1/kWh = $0.099. Slot 1: 3 GPUs, one started
    (360 s cold start): capacity 3 x 3,600 - 360 = 10,440 GPU-s against 18,000 jobs, so
    7,560 are dropped ($0.03 each: $226.80), revenue 10,440 x $0.02 = $208.80; IT 0.3 x
    (3 + 0.1) + 10,440 / 60,000 = 1.104 kW, x 1.5 x $0.2/kWh = $0.3312."""
    c = hand_day()
    o = c.option_index(0, 10, 1.0)
    core = core_of(c)
    _, _, _, info0 = core.step_plan(np.zeros((1, c.K, c.O)), np.zeros((1, 1)),
                                    gpus=np.array([[2.0]]))
    plan = np.zeros((1, c.K, c.O))
    plan[0, 0, o] = 5000.0                       # believed: 5,000 jobs, all at option o
    _, _, _, info1 = core.step_plan(plan, np.zeros((1, 1)), gpus=np.array([[3.0]]))
    s = core.schedule(0)
    np.testing.assert_array_equal(s.n, [[2.0, 3.0]])
    np.testing.assert_array_equal(s.start, [[0.0, 1.0]])
    assert s.x[0, o, 0] == 3600.0 and s.x[0, :, 0].sum() == 3600.0
    assert s.x[0, o, 1] == pytest.approx(10440.0, rel=1e-12)
    assert s.y[0].tolist() == pytest.approx([0.0, 7560.0], rel=1e-12)
    terms = dict(zip(TERMS, info1["terms"][0], strict=True))
    assert dict(zip(TERMS, info0["terms"][0], strict=True))["energy"] == pytest.approx(
        0.099, rel=1e-12)
    assert terms["energy"] == pytest.approx(0.3312, rel=1e-12)
    assert terms["drop"] == pytest.approx(226.8, rel=1e-12)
    assert terms["revenue"] == pytest.approx(208.8, rel=1e-12)
    ev = evaluate(c, s, milp=True)
    assert ev.feasible, ev.violations
    assert ev.jobs["dropped"] == pytest.approx(7560.0, rel=1e-12)
    assert ev.utility == pytest.approx(float(core.episode_utility[0]), rel=1e-12)


def test_the_repair_provisions_a_plan_with_its_cold_starts_by_hand():
    """After 2 GPUs in slot 0, a plan of 14,000 GPU-seconds: warm GPUs would need
    ceil(14,000 / 3,600) = 4, but each one started serves 3,600 - 360 = 3,240: 2 +
    ceil(6,800 / 3,240) = 5 (4 would hold 14,400 - 720 = 13,680). Without a cold start,
    4; in slot 0 (warm), 4."""
    o = hand_day().option_index(0, 10, 1.0)
    for cold, want_t0, want_t1 in ((360.0, 4.0, 5.0), (0.0, 4.0, 4.0)):
        c = hand_day(cold)
        core = core_of(c)
        plan = np.zeros((1, c.K, c.O))
        plan[0, 0, o] = 14000.0
        assert core.provision(plan)[0, 0] == want_t0
        core.step_plan(np.zeros((1, c.K, c.O)), np.zeros((1, 1)), gpus=np.array([[2.0]]))
        assert core.provision(plan)[0, 0] == want_t1


def test_committed_gpus_beyond_the_power_supply_are_cut():
    """An import cap of 1 kW at PUE 1.5 powers 1 / (1.5 x 0.3) = 2.2 idle GPUs: 5
    committed become 2 (and the schedule stays feasible)."""
    c = dataclasses.replace(hand_day(), import_cap=np.array([1.0]))
    core = core_of(c)
    core.step_plan(np.zeros((1, c.K, c.O)), np.array([[0.0]]), gpus=np.array([[5.0]]))
    assert core.n_prev[0, 0] == 2.0


# ---------------------------------------------------------------- knowledge
def test_observation_at_slot_t_ignores_slot_t_arrivals():
    c = provisioned_small(4, cold_start_s=120.0)
    t = 3
    later = c.arrivals.copy()
    later[:, t:] = later[:, t:] * 1.7 + 5.0
    c2 = dataclasses.replace(c, arrivals=later, backlog_cap=backlog_cap(later, c.max_wait))
    actions = np.random.default_rng(0).uniform(-1, 1, (t, 1, core_of(c).action_dim))

    def obs_at_t(day):
        core = core_of(day, record=False)
        for a in actions:                 # without provisioning: no GPU numbers
            obs = core.step(a[:, :core.action_dim])[0]
        return obs.copy(), core

    (a, core), (b, _) = obs_at_t(c), obs_at_t(c2)
    np.testing.assert_array_equal(a, b)
    # the arrival features are the last slot's; GPUs on last slot (/ G) come last
    np.testing.assert_allclose(a[0, :c.K] * core.arr_scale, c.arrivals[:, t - 1])
    np.testing.assert_allclose(a[0, -c.I:] * c.gpus, core.n_prev[:, 0])
    # with provisioning off the same change shows (the test can fail)
    a, b = (obs_at_t(dataclasses.replace(d, commit=False, cold_start_s=0.0))[0]
            for d in (c, c2))
    assert not np.array_equal(a, b)


def genai_day(day: int):
    sc = get_scenario("jemas-3-genai", day)
    return compile_scenario(sc.model_copy(update={"provisioning": Provisioning()}))


def decisions(policy, c, t: int, lag: int = 1) -> list[np.ndarray]:
    """What `policy` asks in slot t of day c (rolled through slots 0..t-1 as the rollout
    does), on the view of what is known (lag 1), or knowing the slot's arrivals (0)."""
    core = core_of(c, record=False)
    view = knowing(core, policy) if lag == 1 else Known(core, lag=0,
                                                        quantile=policy.provision_quantile)
    planner = isinstance(policy, Planner)
    obs = core.observe()
    for s in range(t + 1):
        out = policy.plan(view) if planner else policy.act(view, obs)
        if s == t:
            return [np.array(a, copy=True) for a in (out if planner else [out])]
        obs = core.step_plan(*out)[0] if planner else core.step(out)[0]
    raise AssertionError


@pytest.fixture(scope="module")
def day_and_future_changed():
    c = genai_day(44)
    t = 150
    later = c.arrivals.copy()
    later[:, t:] = later[:, t:] * 1.7 + 3.0
    c2 = dataclasses.replace(c, arrivals=later, backlog_cap=backlog_cap(later, c.max_wait))
    return c, c2, t


@pytest.mark.parametrize("name", ["local-fixed", "greedy", "dispatch", "mpc-forecast"])
def test_no_policy_reads_the_slots_arrivals_or_later(name, day_and_future_changed):
    """Arrivals of slots >= t changed: the plan of slot t is the same. Knowing slot t's
    arrivals (lag 0), it is not: the policies do read what they are given."""
    c, c2, t = day_and_future_changed
    make = (lambda: MPCForecast(horizon=12)) if name == "mpc-forecast" else \
        (lambda: get_policy(name))
    if name == "mpc-forecast":
        t = 4                                   # a window LP per slot: keep it short
    a, b = decisions(make(), c, t), decisions(make(), c2, t)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    if name != "mpc-forecast":
        a0, b0 = decisions(make(), c, t, lag=0), decisions(make(), c2, t, lag=0)
        assert any(not np.array_equal(u, v) for u, v in zip(a0, b0, strict=True))


def test_heuristics_provision_for_the_90th_percentile():
    """A planner plans the slot on the point forecast; its GPUs are provisioned at the
    fitted P90 of the forecast (the family's P90 ratio at lead < 1 h is above 1): at
    least the GPUs the point plan needs, more somewhere. An actor (local-fixed) sees the
    slot at the P90 itself."""
    c = genai_day(44)
    core = core_of(c, record=False)
    for _ in range(100):
        core.step(np.zeros((1, core.action_dim)))
    greedy = get_policy("greedy")
    point, p90 = knowing(core, greedy), provisioning(core, greedy)
    assert point.quantile is None and p90.quantile == 0.9
    assert knowing(core, get_policy("local-fixed")).quantile == 0.9
    qm = p90.quantile_model(0)
    ratio = qm.ratios[0, qm.levels.index(0.9)]
    assert ratio > 1
    np.testing.assert_allclose(p90.series_at("arrivals"), point.series_at("arrivals") * ratio)
    x, battery, _ = greedy.plan(point)
    need, high = core.provision(x, battery), provision_for(core, point, p90, x, battery)
    assert (high >= need).all() and (high > need).any()
    # the past is as observed, and `mpc` (perfect foresight) gets the real core
    np.testing.assert_array_equal(p90.compiled(0).arrivals[:, :100], c.arrivals[:, :100])
    assert knowing(core, get_policy("mpc")) is core
    assert provisioning(core, get_policy("mpc")) is None


# ---------------------------------------------------------------- exact scoring
@pytest.mark.parametrize("name", sorted(POLICIES))
@pytest.mark.parametrize("queueing", [None, {"model": "kingman", "pieces": 4}])
def test_every_policy_is_feasible_and_exactly_scored_with_provisioning(name, queueing):
    """rollout checks that the rewards sum to the evaluator's utility."""
    c = provisioned_small(11, cold_start_s=300.0, queueing=queueing)
    sched, ev, total = rollout(get_policy(name), [c])[0]
    assert ev.feasible, ev.violations[:3]
    assert total == pytest.approx(ev.utility, rel=1e-9, abs=1e-9)
    np.testing.assert_array_equal(sched.start[:, 0], 0.0)
    rise = np.maximum(np.diff(sched.n, axis=1), 0.0)
    np.testing.assert_array_equal(sched.start[:, 1:], rise)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_action_and_plan_paths_agree_with_provisioning(seed):
    """Random flat actions (their last I numbers commit GPUs); the schedule they leave,
    fed back as plans with its GPUs, passes unchanged and pays the same rewards."""
    c = provisioned_small(seed, cold_start_s=300.0, queueing={"pieces": 4})
    core = core_of(c, batch=2)
    rng = np.random.default_rng(seed)
    rewards = np.array([core.step(rng.uniform(-1, 1, (2, core.action_dim)))[1]
                        for _ in range(c.T)])
    for j in range(2):
        s = core.schedule(j)
        assert evaluate(c, s, milp=True).feasible
        twin = core_of(c)
        for t in range(c.T):
            r = twin.step_plan(s.x[None, :, :, t], (s.ch[:, t] - s.dis[:, t])[None],
                               s.y[None, :, t], gpus=s.n[None, :, t])[1]
            assert r[0] == pytest.approx(rewards[t, j], rel=1e-9, abs=1e-9)
        again = twin.schedule(0)
        for key in ("x", "y", "q", "n", "start", "ch", "dis", "b", "z"):
            np.testing.assert_allclose(getattr(again, key), getattr(s, key), rtol=1e-9,
                                       atol=1e-9, err_msg=key)


@pytest.mark.parametrize("seed", [1, 3, 5])
@pytest.mark.parametrize("queueing", [None, {"model": "kingman", "pieces": 4}])
def test_oracle_schedule_replays_exactly_with_its_gpus(seed, queueing):
    """step_plan(x, battery, drops, gpus = the oracle's n): the evaluator scores the
    replayed schedule at the oracle's utility (as test_env's replay, prices >= 0, no
    export)."""
    from optsched.oracle import solve

    c = provisioned_small(seed, cold_start_s=300.0, queueing=queueing)
    c = dataclasses.replace(c, price=np.abs(c.price), export_cap=np.zeros(c.I))
    sol = solve(c, "highs", relax=False, mip_gap=1e-9)
    s = sol.schedule
    assert s.start.sum() > 0                    # the oracle does start GPUs here
    core = core_of(c)
    for t in range(c.T):
        core.step_plan(s.x[None, :, :, t], (s.ch[:, t] - s.dis[:, t])[None], s.y[None, :, t],
                       gpus=s.n[None, :, t])
    ev = evaluate(c, core.schedule(0), milp=True)
    assert ev.feasible
    assert ev.utility == pytest.approx(sol.objective, rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(core.schedule(0).n, s.n, atol=1e-6)


def test_snapshot_restores_the_gpus_on():
    c = provisioned_small(2, cold_start_s=300.0)
    core = core_of(c, record=False)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (c.T, 1, core.action_dim))
    for a in actions[:3]:
        core.step(a)
    snap = core.snapshot()
    rest = [core.step(a)[1][0] for a in actions[3:]]
    twin = core_of(c, record=False)
    twin.restore(snap)
    np.testing.assert_array_equal(twin.n_prev, snap["n_prev"])
    assert [twin.step(a)[1][0] for a in actions[3:]] == rest


def test_scenario_mpc_shares_only_what_precedes_the_arrivals(monkeypatch):
    """With spread paths the decided slot's arrivals differ from path to path: tying its
    jobs across paths would make the LP infeasible. The GPUs (and battery) are shared,
    and committed: the plan hands them to the environment."""
    from optsched.forecast import QuantileModel
    from optsched.policies import mpc_scenarios

    spread = QuantileModel((0.1, 0.5, 0.9), (1.0,), np.array([[0.2, 1, 3]] * 2, float))
    monkeypatch.setattr(mpc_scenarios, "quantile_model", lambda _c: spread)
    c = provisioned_small(11, cold_start_s=300.0)
    policy = mpc_scenarios.MPCScenarios(horizon=6)
    core = core_of(c)
    view = knowing(core, policy)
    for _ in range(c.T):
        plan = policy.plan(view)
        assert len(plan) == 4
        gpus = plan[3]
        core.step_plan(*plan)
        np.testing.assert_array_equal(core.n_prev.T, np.minimum(gpus, c.gpus))
    ev = evaluate(c, core.schedule(0), milp=True)
    assert ev.feasible and ev.utility == pytest.approx(float(core.episode_utility[0]),
                                                       rel=1e-9)


def test_a_told_forecast_keeps_the_observed_slots_and_spreads_the_rest_by_profile():
    """benchmarks/forecast_ceiling.py's reference forecast, by hand: real arrivals
    [1, 2, 3, 4], profile [1, 1, 2, 0], slot 0 observed: the 9 jobs still to come go 1:2:0
    over slots 1..3; before any slot is observed the 10 go 1:1:2:0."""
    from benchmarks.forecast_ceiling import TotalKnown

    told = TotalKnown(np.array([[1.0, 2.0, 3.0, 4.0]]), np.array([[1.0, 1.0, 2.0, 0.0]]))
    np.testing.assert_allclose(told.point(np.array([[1.0]]), 4), [[1.0, 3.0, 6.0, 0.0]])
    np.testing.assert_allclose(told.point(np.zeros((1, 0)), 4), [[2.5, 2.5, 5.0, 0.0]])


def test_a_policys_forecaster_is_what_its_view_believes():
    """MPCForecast(forecaster=f): the rollout's view of what is known (and the view its
    GPUs are provisioned on) forecasts with f, not with the family's past: told each
    class's day total, the believed day holds exactly the real jobs of the day."""
    from benchmarks.forecast_ceiling import TotalKnown

    c = genai_day(44)
    flat = np.ones((c.K, c.T))
    told = MPCForecast(forecaster=lambda day: TotalKnown.for_day(day, flat))
    told.provision_quantile = 0.9          # as a planner provisioned at the P90 is
    core = core_of(c, record=False)
    view, high = knowing(core, told), provisioning(core, told)
    believed = view.compiled(0).arrivals
    np.testing.assert_allclose(believed.sum(axis=1), c.arrivals.sum(axis=1))
    even = np.repeat(c.arrivals.sum(axis=1, keepdims=True) / c.T, c.T, axis=1)
    np.testing.assert_allclose(believed, even)
    np.testing.assert_allclose(high.compiled(0).arrivals[:, 1:], even[:, 1:])  # slot 0: P90
    own = knowing(core, MPCForecast()).compiled(0).arrivals
    assert not np.allclose(own, believed)
