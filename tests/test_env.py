"""The batched environment: rewards sum to the evaluator's utility, repair is always
feasible, resets reproduce, and the Gymnasium faces pass their checkers."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optsched.env import ENV_ID, BatchedCore, DayBank, EnvConfig
from optsched.env.gym import OptschedEnv, OptschedVectorEnv
from optsched.evaluator import evaluate
from optsched.policies import LocalFixed, rollout
from optsched.scenario import compile_scenario, get_scenario
from tests.conftest import small_scenario
from tests.test_queueing import queued_small


@pytest.fixture(scope="module")
def bank():
    return DayBank.from_family([4, 9])


def random_actions(rng, B, A, T, kind):
    if kind == "uniform":
        return rng.uniform(-1, 1, (T, B, A))
    if kind == "extreme":
        return rng.choice([-1.0, 1.0], (T, B, A))
    return rng.normal(0, 5, (T, B, A))          # out of range: clipped by the core


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), mode=st.sampled_from(["dense", "settlement",
                                                              "episode"]),
       kind=st.sampled_from(["uniform", "extreme", "wild"]))
def test_rewards_sum_to_the_evaluator_and_repair_is_feasible(seed, mode, kind):
    c = small_scenario(seed)
    bank = DayBank.from_compiled([c])
    core = BatchedCore(bank, 3, EnvConfig(reward=mode, settlement_slots=4, record=True))
    core.reset(seed=seed)
    rng = np.random.default_rng(seed)
    actions = random_actions(rng, 3, core.action_dim, core.T, kind)
    total = np.zeros(3)
    for t in range(core.T):
        _, r, done, _ = core.step(actions[t])
        total += r
        assert done == (t == core.T - 1)
    for j in range(3):
        ev = evaluate(core.compiled(j), core.schedule(j), milp=True)
        assert ev.feasible, ev.violations[:5]
        assert total[j] == pytest.approx(ev.utility, rel=1e-9, abs=1e-9)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(["uniform", "extreme", "wild"]),
       model=st.sampled_from(["kingman", "erlang-c"]))
def test_rewards_sum_to_the_evaluator_with_queueing_on(seed, kind, model):
    """Every policy pays for late jobs from waiting: the kernel's late term (and the GPUs
    its repair adds against them) is what the evaluator scores."""
    c = queued_small(seed, model=model, pieces=4)
    core = BatchedCore(DayBank.from_compiled([c]), 3, EnvConfig(record=True))
    core.reset(seed=seed)
    actions = random_actions(np.random.default_rng(seed), 3, core.action_dim, core.T, kind)
    total = np.zeros(3)
    for t in range(core.T):
        total += core.step(actions[t])[1]
    for j in range(3):
        ev = evaluate(core.compiled(j), core.schedule(j), milp=True)
        assert ev.feasible, ev.violations[:5]
        assert total[j] == pytest.approx(ev.utility, rel=1e-9, abs=1e-9)
        assert core.episode_terms[j, 2] == pytest.approx(ev.terms["late"], rel=1e-9,
                                                         abs=1e-12)


def test_default_days_random_actions_feasible_and_exact(bank):
    core = BatchedCore(bank, 4, EnvConfig(reward="settlement", record=True))
    core.reset(seed=1)
    rng = np.random.default_rng(1)
    total = np.zeros(4)
    done = False
    while not done:
        _, r, done, _ = core.step(rng.uniform(-1, 1, (4, core.action_dim)))
        total += r
    for j in range(4):
        ev = evaluate(core.compiled(j), core.schedule(j), milp=True)
        assert ev.feasible, ev.violations[:5]
        assert total[j] == pytest.approx(ev.utility, rel=1e-9)


def test_series_at_reads_each_copys_day_from_the_bank(bank):
    core = BatchedCore(bank, 3, EnvConfig())
    core.reset(days=[1, 0, 1])
    for key in ("arrivals", "backlog_cap", "price", "renewable", "pue", "ci"):
        for t in (0, 100, core.T - 1):
            np.testing.assert_array_equal(core.series_at(key, t),
                                          getattr(bank, key)[[1, 0, 1], :, t].T, err_msg=key)
    core.step(np.zeros((3, core.action_dim)))
    np.testing.assert_array_equal(core.series_at("price"), bank.price[[1, 0, 1], :, 1].T)


def test_settlement_pays_only_every_settlement_slots(bank):
    core = BatchedCore(bank, 1, EnvConfig(reward="settlement", settlement_slots=12))
    core.reset(days=[0])
    paid = []
    for _ in range(core.T):
        _, r, _, _ = core.step(np.zeros((1, core.action_dim)))
        paid.append(r[0] != 0.0)
    assert np.flatnonzero(paid).tolist() == list(range(11, core.T, 12))


def test_reset_restores_state_and_seeds_reproduce(bank):
    core = BatchedCore(bank, 5, EnvConfig())
    first = core.reset(seed=7)
    days = core.day.copy()
    rng = np.random.default_rng(0)
    trace = [core.step(rng.uniform(-1, 1, (5, core.action_dim)))[1] for _ in range(30)]
    again = core.reset(seed=7)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(days, core.day)
    assert core.t == 0 and not core.q.any() and not core.peak.any()
    np.testing.assert_array_equal(core.soc.T, np.broadcast_to(core.c.soc0, (5, core.I)))
    rng = np.random.default_rng(0)
    trace2 = [core.step(rng.uniform(-1, 1, (5, core.action_dim)))[1] for _ in range(30)]
    np.testing.assert_array_equal(np.array(trace), np.array(trace2))


def test_local_fixed_serves_at_home_with_30_steps_at_nominal_clock():
    c = compile_scenario(get_scenario("jemas-3"))
    sched, ev, total = rollout(LocalFixed(), [c])[0]
    used = np.flatnonzero(sched.x.sum(axis=(0, 2)) > 0)
    assert set(c.opt_steps[used]) == {30} and set(c.opt_clock[used]) == {1.0}
    assert ev.jobs["transferred"] == 0.0 and ev.terms["degradation"] == 0.0
    assert ev.feasible and total == pytest.approx(ev.utility, rel=1e-9)
    # GPUs bind at peak: local-fixed drops work, which the oracle shows is avoidable.
    assert ev.jobs["dropped"] > 0.02 * ev.jobs["arrived"]


def test_gymnasium_env_passes_check_env_without_warnings(bank):
    from gymnasium.utils.env_checker import check_env

    env = gym.make(ENV_ID, bank=bank).unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    assert [str(w.message) for w in caught] == []
    assert ENV_ID in gym.registry


def test_vector_env_steps_in_lockstep_and_autoresets(bank):
    env = OptschedVectorEnv(4, bank=bank, reward="episode")
    obs, info = env.reset(seed=3)
    assert obs.shape == (4, env.core.obs_dim) and env.observation_space.contains(obs)
    for t in range(env.core.T):
        obs, r, term, trunc, infos = env.step(env.action_space.sample())
        if t < env.core.T - 1:
            assert not term.any() and not r.any()
    assert term.all() and "final_obs" in infos
    np.testing.assert_allclose(r, infos["episode_utility"])
    assert env.core.t == 0                      # SAME_STEP autoreset


@pytest.mark.parametrize("algo", ["PPO", "SAC"])
def test_stable_baselines3_learns_unmodified_and_its_policy_scores_exactly(bank, algo):
    """SB3 trains on the env as it is: the steps are taken, the weights move, and the
    trained policy's actions lie in the action space and roll a day whose return (x the
    reward scale) is the evaluator's utility of the schedule it left."""
    import stable_baselines3

    scale = 100.0
    env = OptschedEnv(bank=bank, reward_scale=scale)
    steps, kwargs = ((128, {"n_steps": 64, "batch_size": 32}) if algo == "PPO"
                     else (64, {"learning_starts": 32, "batch_size": 32}))
    model = getattr(stable_baselines3, algo)("MlpPolicy", env, seed=0, device="cpu", **kwargs)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(steps)
    assert model.num_timesteps == steps
    moved = [not np.array_equal(a.numpy(), p.detach().numpy())
             for a, p in zip(before, model.policy.parameters(), strict=True)]
    assert all(moved), moved

    play = OptschedEnv(bank=bank, reward_scale=scale, record=True)
    obs, _ = play.reset(seed=1, options={"day": 9})
    total, done = 0.0, False
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        assert play.action_space.contains(action)
        obs, r, done, _, _ = play.step(action)
        total += r
    ev = evaluate(play.core.compiled(0), play.core.schedule(0), milp=True)
    assert ev.feasible, ev.violations[:3]
    assert np.isfinite(total) and total * scale == pytest.approx(ev.utility, rel=1e-9)


def replay(c, schedule):
    """Feed a schedule to the environment slot by slot as a detailed plan."""
    core = BatchedCore(DayBank.from_compiled([c]), 1, EnvConfig(record=True))
    core.reset(days=[0])
    total = 0.0
    for t in range(c.T):
        _, r, _, _ = core.step_plan(schedule.x[None, :, :, t],
                                    (schedule.ch[:, t] - schedule.dis[:, t])[None],
                                    schedule.y[None, :, t])
        total += r[0]
    return core.schedule(0), total


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(["uniform", "extreme"]))
def test_action_and_plan_paths_of_the_kernel_agree(seed, kind):
    """The flat action and the detailed plan are two entries to one compiled slot: the
    schedule an action episode leaves, fed back as plans, passes unchanged and pays the
    same rewards, slot by slot."""
    c = small_scenario(seed)
    core = BatchedCore(DayBank.from_compiled([c]), 2, EnvConfig(record=True))
    core.reset(days=[0, 0])
    actions = random_actions(np.random.default_rng(seed), 2, core.action_dim, c.T, kind)
    rewards = np.array([core.step(actions[t])[1] for t in range(c.T)])
    for j in range(2):
        sched = core.schedule(j)
        again, _ = replay(c, sched)
        twin = BatchedCore(DayBank.from_compiled([c]), 1, EnvConfig())
        twin.reset(days=[0])
        for t in range(c.T):
            _, r, _, _ = twin.step_plan(sched.x[None, :, :, t],
                                        (sched.ch[:, t] - sched.dis[:, t])[None])
            assert r[0] == pytest.approx(rewards[t, j], rel=1e-9, abs=1e-9)
        for name in ("x", "y", "q", "n", "ch", "dis", "soc", "b", "z"):
            np.testing.assert_allclose(getattr(again, name), getattr(sched, name),
                                       rtol=1e-9, atol=1e-9, err_msg=name)


def test_oracle_schedule_replayed_as_a_plan_reproduces_its_utility():
    """The action space (one step level per class, routing shares) cannot express the
    oracle's mixtures of options, so the oracle replays through `step_plan`, the same
    repair with a detailed plan: it must pass unchanged."""
    from optsched.oracle import solve

    c = compile_scenario(get_scenario("jemas-3"))
    sol = solve(c, "highs", relax=False)
    sched, total = replay(c, sol.schedule)
    assert total == pytest.approx(sol.objective, rel=1e-6)
    ev = evaluate(c, sched, milp=True)
    assert ev.feasible and ev.utility == pytest.approx(total, rel=1e-9)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_oracle_replay_on_random_small_scenarios(seed):
    """At negative prices MODEL.md's oracle may import and export at once, or power idle
    GPUs, to be paid for consuming; the environment nets import against export and powers
    only the GPUs that work, so those plans are not replayable. With prices >= 0 and no
    export they are, exactly."""
    import dataclasses

    from optsched.oracle import solve

    c = small_scenario(seed)
    c = dataclasses.replace(c, price=np.abs(c.price), export_cap=np.zeros(c.I))
    sol = solve(c, "highs", relax=False, mip_gap=1e-9)
    sched, total = replay(c, sol.schedule)
    assert evaluate(c, sched, milp=True).feasible
    assert total == pytest.approx(sol.objective, rel=1e-6, abs=1e-6)


def test_forecasts_in_the_observation_are_exact_without_error(bank):
    core = BatchedCore(bank, 2, EnvConfig(forecast_slots=(12, 36)))
    obs = core.reset(days=[0, 1])
    K, I = core.K, core.I
    base = 2 * K + 4 * I + 2
    assert obs.shape == (2, base + 2 * (K + I))
    np.testing.assert_allclose(obs[:, base:base + K] * core.arr_scale,
                               bank.arrivals[[0, 1], :, 12])
    np.testing.assert_allclose(obs[:, base + K:base + K + I] * 100.0, bank.price[[0, 1], :, 12])
    noisy = BatchedCore(bank, 2, EnvConfig(forecast_slots=(12,), forecast_error=0.2))
    o2 = noisy.reset(days=[0, 1], seed=0)
    assert not np.allclose(o2[:, base:base + K] * core.arr_scale, bank.arrivals[[0, 1], :, 12])
    from gymnasium.utils.env_checker import check_env

    env = gym.make(ENV_ID, bank=bank, forecast_slots=(12,), forecast_error=0.1).unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    assert [str(w.message) for w in caught] == []


def test_a_tampered_day_bank_cache_is_built_again_with_a_warning(tmp_path, monkeypatch):
    """The day bank's disk cache was read unchecked: a truncated file stopped training, a
    NaN price made it fail deep in torch, and cut or inflated series trained on wrong data
    without a word. Each is now noticed (one warning) and the days are built again."""
    from optsched.env.bank import SERIES, _cache_path

    monkeypatch.setenv("OPTSCHED_CACHE", str(tmp_path))
    days = [0, 1, 2]
    fresh = DayBank.from_family(days, cache=False)
    DayBank.from_family(days)                                   # writes the cache
    path = _cache_path("jemas-3", days)
    good = path.read_bytes()
    arrays = {k: getattr(fresh, k) for k in SERIES}

    def tampered(**change):
        np.savez(path.with_suffix(".tmp.npz"), **(arrays | change))
        path.with_suffix(".tmp.npz").replace(path)

    cases = [lambda: path.write_bytes(good[: len(good) // 2]),
             lambda: tampered(price=np.where(fresh.price > 0, np.nan, fresh.price)),
             lambda: tampered(price=fresh.price[:, :, :5]),
             lambda: tampered(arrivals=fresh.arrivals * np.array([1, 1, 1e12])[:, None, None])]
    for spoil in cases:
        spoil()
        with pytest.warns(UserWarning, match="day bank cache .* not used"):
            bank = DayBank.from_family(days)
        for k in SERIES:
            np.testing.assert_array_equal(getattr(bank, k), getattr(fresh, k))
    path.write_bytes(good)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        bank = DayBank.from_family(days)
    assert not [w for w in seen if "day bank cache" in str(w.message)]  # a good file
    np.testing.assert_array_equal(bank.price, fresh.price)


def test_the_env_refuses_steps_outside_an_episode_and_non_finite_actions(bank):
    """Past the last slot the kernel read beyond the day's series (rewards of -1e197, no
    error); a step before reset failed on a missing attribute; one NaN action made every
    later reward NaN; options['day'] was a position in the bank (day 9 of the bank
    [4, 9] raised IndexError) and is now the day, as info['day'] reports it."""
    from optsched.env.dispatch import DispatchCore
    from optsched.errors import ScenarioError

    env = OptschedEnv(bank=bank)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(env.core.action_dim))
    _, info = env.reset(seed=0, options={"day": 9})
    assert info["day"] == 9
    with pytest.raises(ScenarioError, match=r"^options\['day'\]: must be one of"):
        env.reset(options={"day": 1})
    with pytest.raises(ValueError, match="finite"):
        env.step(np.full(env.core.action_dim, np.nan))
    done = False
    while not done:
        _, r, done, _, _ = env.step(np.zeros(env.core.action_dim))
        assert np.isfinite(r)
    with pytest.raises(RuntimeError, match="episode ended"):
        env.step(np.zeros(env.core.action_dim))
    core = DispatchCore(bank, 1)
    with pytest.raises(RuntimeError, match="reset"):
        core.step(np.zeros((1, core.action_dim)))
