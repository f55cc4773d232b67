"""The per-slot capacity-price dispatch and the environment that acts through it."""

from __future__ import annotations

import numpy as np
import pytest

from optsched.env.bank import DayBank
from optsched.env.core import EnvConfig
from optsched.env.dispatch import CAP_RTOL, TAU, DispatchCore, Dispatcher, continuation
from optsched.evaluator import evaluate
from optsched.policies import get_policy, rollout
from optsched.scenario import compile_scenario, scenario_from_dict
from tests.conftest import small_scenario, two_sites


def _slot_load(c, x: np.ndarray) -> np.ndarray:
    """GPU-seconds per site [B, I] of a plan x[B, K, O]."""
    return np.einsum("bko,o,io->bi", x, c.gpu_s, c.site_of)


def test_ample_capacity_serves_every_job_at_its_best_net_option(tiny):
    """With room for everything, jobs take the option of highest value net of energy;
    the choice temperature costs at most tau * ln(options) per job (softmax bound)."""
    tiny["sites"][0]["gpus"] = 1000
    c = compile_scenario(scenario_from_dict(tiny))
    core = DispatchCore(DayBank.from_compiled([c]), 1)
    core.reset(days=[0])
    x = core.dispatcher(core, np.full((c.K, 1), -np.inf))[0]
    assert x.sum() == pytest.approx(c.arrivals[0, 0], rel=1e-6)
    usd_kwh = c.pue[0, 0] * c.price[0, 0] / 1000
    net = np.where(c.eligible[0], c.value[0] - usd_kwh * core.dispatcher.kwh, -np.inf)
    assert x.argmax() == net.argmax()
    tau = core.dispatcher.tau[0, 0]
    mean_net = (x * np.where(np.isfinite(net), net, 0.0)).sum() / x.sum()
    assert net.max() - tau * np.log(c.eligible[0].sum()) <= mean_net <= net.max()


def test_scarce_capacity_is_filled_not_exceeded():
    """A site with too few GPUs for its arrivals is priced until its load meets the
    capacity: fewer steps first, then remote sites, then waiting or dropping."""
    for seed in range(5):
        c = small_scenario(seed)
        bank = DayBank.from_compiled([c])
        core = DispatchCore(bank, 1)
        core.reset(days=[0])
        for _ in range(c.T):
            x = core.dispatcher(core, continuation(c, np.zeros((c.K, 1))))
            load = _slot_load(c, x)[0]
            cap = c.gpus * c.util_cap * c.dt_s
            assert np.all(load <= cap * (1 + 1e-4))
            pending = core.q[:, 0] + c.arrivals[:, core.t]
            short = load < cap * (1 - 1e-3)
            # A site left with room serves every job that is worth serving there.
            if short.all():
                assert x[0].sum(axis=1) == pytest.approx(pending, rel=1e-3, abs=1e-6)
            core.step(np.zeros((1, core.action_dim)))


def test_continuation_maps_the_action_range_onto_drop_wait_and_best_value():
    c = small_scenario(0)
    a = np.array([[-1.0], [0.0], [1.0]]).repeat(c.K, axis=1).T[None]       # [1, K, 3]
    out = np.stack([continuation(c, a[0][:, [j]])[:, 0] for j in range(3)], axis=1)
    best = np.where(c.eligible, c.value, -np.inf).max(axis=1)
    np.testing.assert_allclose(out[:, 0], -c.drop_penalty)
    np.testing.assert_allclose(out[:, 1], -c.wait_cost)
    np.testing.assert_allclose(out[:, 2], best)


@pytest.mark.parametrize("reward", ["dense", "settlement", "episode"])
def test_dispatch_core_rewards_sum_to_the_evaluator_utility(reward):
    bank = DayBank.from_compiled([small_scenario(3)])
    core = DispatchCore(bank, 4, EnvConfig(reward=reward, record=True))
    core.reset(days=np.zeros(4, dtype=int))
    rng = np.random.default_rng(0)
    total, done = np.zeros(4), False
    while not done:
        _, r, done, _ = core.step(rng.uniform(-1.5, 1.5, (4, core.action_dim)))
        total += r
    for j in range(4):
        ev = evaluate(bank.day(int(core.day[j])), core.schedule(j), milp=True)
        assert ev.feasible, ev.violations[:3]
        assert total[j] == pytest.approx(ev.utility, rel=1e-9, abs=1e-9)


def test_dispatch_transfers_when_home_is_full(tiny):
    """One GPU at home, ample GPUs one hop away: the overflow is served remotely."""
    raw = two_sites(tiny)
    raw["sites"][0]["gpus"] = 1                    # 3,600 GPU-s: 3,600 jobs at 10 steps
    raw["sites"][1]["gpus"] = 1000
    raw["classes"][0]["arrivals"] = [9000.0, 50.0]
    c = compile_scenario(scenario_from_dict(raw))
    core = DispatchCore(DayBank.from_compiled([c]), 1)
    core.reset(days=[0])
    x = core.dispatcher(core, np.full((c.K, 1), -np.inf))[0]
    served_at = x.sum(axis=0) @ c.site_of.T
    assert served_at.sum() == pytest.approx(c.arrivals[0, 0], rel=1e-6)
    assert served_at[1] > served_at[0] > 0
    assert (x.sum(axis=0) * c.gpu_s) @ c.site_of[0] == pytest.approx(3600.0, rel=2e-4)


def test_dispatch_baseline_beats_myopic_lp_on_the_default_day():
    from optsched.scenario import get_scenario

    c = compile_scenario(get_scenario("jemas-3"))
    ev = {n: rollout(get_policy(n), [c])[0][1] for n in ("dispatch", "myopic-lp")}
    assert ev["dispatch"].feasible, ev["dispatch"].violations[:3]
    assert ev["dispatch"].utility > ev["myopic-lp"].utility


def test_dispatcher_accepts_plain_cores():
    """The learned policy dispatches on the plain core of `rollout`."""
    from optsched.env.core import BatchedCore

    c = small_scenario(2)
    core = BatchedCore(DayBank.from_compiled([c]), 2)
    core.reset(days=[0, 0])
    x = Dispatcher(core)(core, np.zeros((c.K, 2)))
    assert x.shape == (2, c.K, c.O) and np.all(x >= 0)


def slot_lp(c, t: int, pending: np.ndarray, cap_scale: float = 1.0) -> float:
    """MODEL.md's one-slot problem as a plain LP (scipy's HiGHS), a second implementation
    of what the dispatch approximates: serve jobs x[k, o] at their value net of energy
    (busy energy plus the idle draw of the GPU-time they take, at the slot's price x PUE),
    let deferrable jobs wait up to the backlog cap at -wait_cost each, drop the rest at
    -drop_penalty; each site's GPU-seconds are capped. Returns the optimal value ($)."""
    from scipy.optimize import linprog

    site = c.opt_site
    kwh = c.busy_kwh + c.idle_kw[site] * c.gpu_s / (3600.0 * c.util_cap[site])
    net = c.revenue - c.transfer - c.late_cost - kwh * c.pue[site, t] * c.price[site, t] / 1e3
    may_wait = np.where(c.interactive, 0.0, np.minimum(pending, c.backlog_cap[:, t]))
    ko = np.argwhere(c.eligible)                     # variables: x[k, o], wait[k], drop[k]
    n = len(ko) + 2 * c.K
    a_eq, a_ub = np.zeros((c.K, n)), np.zeros((c.I, n))
    a_eq[ko[:, 0], np.arange(len(ko))] = 1.0
    a_eq[np.arange(c.K), len(ko) + np.arange(c.K)] = 1.0
    a_eq[np.arange(c.K), len(ko) + c.K + np.arange(c.K)] = 1.0
    a_ub[site[ko[:, 1]], np.arange(len(ko))] = c.gpu_s[ko[:, 1]]
    cost = np.concatenate([-net[ko[:, 0], ko[:, 1]], c.wait_cost, c.drop_penalty])
    bounds = [(0, None)] * len(ko) + [(0, m) for m in may_wait] + [(0, None)] * c.K
    res = linprog(cost, a_ub, cap_scale * c.gpus * c.util_cap * c.dt_s, a_eq, pending,
                  bounds=bounds, method="highs")
    assert res.status == 0, res.message
    return -res.fun


@pytest.mark.parametrize("waiting", [True, False])
def test_zero_action_dispatches_within_the_softmax_bound_of_the_slot_lp(waiting):
    """The zero action is the `dispatch` baseline: battery idle, a waiting job worth minus
    one slot's wait cost. Its plan is then a near-optimum of the one-slot LP: no better
    than the LP with the capacity tolerance, no worse than the LP less the choice
    temperature's bound tau * ln(choices) per pending job."""
    for seed in range(4):
        c = small_scenario(seed)
        core = DispatchCore(DayBank.from_compiled([c]), 1, waiting=waiting)
        assert core.action_dim == (int((~c.interactive).sum()) if waiting else 0) + c.I
        core.reset(days=[0])
        zero = np.zeros((1, core.action_dim))
        site = c.opt_site
        for t in range(c.T):
            x, battery_kw, drop = core.plan_from_action(core, zero)
            assert not battery_kw.any() and not drop.any()
            x = x[0]
            pending = core.q[:, 0] + c.arrivals[:, t]
            left = pending - x.sum(axis=1)
            assert left.min() >= -1e-9 * pending.max()
            wait = np.minimum(left, np.where(c.interactive, 0.0,
                                             np.minimum(pending, c.backlog_cap[:, t])))
            kwh = c.busy_kwh + c.idle_kw[site] * c.gpu_s / (3600.0 * c.util_cap[site])
            usd = c.pue[site, t] * c.price[site, t] / 1e3
            got = (x * (c.value - kwh * usd)).sum() - c.wait_cost @ wait \
                - c.drop_penalty @ (left - wait)
            bound = (TAU * c.revenue_per_job * pending
                     * np.log(c.eligible.sum(axis=1) + 2)).sum()
            assert got <= slot_lp(c, t, pending, 1 + CAP_RTOL) + 1e-9
            assert got >= slot_lp(c, t, pending) - bound, (seed, t)
            core.step(zero)


def test_one_option_per_class_dispatches_feasibly_in_a_mixed_batch():
    """With one option per class (no transfer, fixed steps, no DVFS) a site's curvature
    vanishes wherever its jobs are all certainly served; light, normal and overloaded
    copies in one batch still get feasible plans."""
    import dataclasses

    from optsched.scenario.ablations import ablate

    for seed in (0, 1, 2):
        c = ablate(small_scenario(seed), ["no-transfer", "fixed-steps", "no-dvfs"])
        days = [dataclasses.replace(c, arrivals=c.arrivals * f, backlog_cap=c.backlog_cap * f)
                for f in (0.3, 1.0, 3.0)]                     # light, as is, overloaded
        core = DispatchCore(DayBank.from_compiled(days), 3, EnvConfig(record=True))
        core.reset(days=np.arange(3))
        done = False
        while not done:
            _, _, done, _ = core.step(np.zeros((3, core.action_dim)))
        for j in range(3):
            assert evaluate(days[j], core.schedule(j), milp=True).feasible
