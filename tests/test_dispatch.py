"""The per-slot capacity-price dispatch and the environment that acts through it."""

from __future__ import annotations

import dataclasses

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
    tau = core.dispatcher.tau[0]
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


def test_price_search_leaves_no_site_over_capacity_where_newton_points_uphill(genai_bank):
    """A slot met in training on jemas-3-genai (belief level up, a large deferrable
    tranche): Newton's system there is so badly conditioned (curvatures ~1e4 apart) that
    its direction points uphill, which once stalled the search for all its Newton steps
    with site 1 at 3.0x its capacity and site 2 priced but empty. The search must end
    with every priced site full and none over (the dual's optimality conditions)."""
    from optsched.env.dispatch_kernel import NEWTON_STEPS, dispatch

    core = DispatchCore(genai_bank, 1, waiting=False, provision=True)
    d, c = core.dispatcher, core.c
    pending = np.array([[270.9639220632092, 896.6574947844379, 143.09058799668495,
                         576.2456079834674, 2695.0037393719713, 17054.384217710238]])
    deferrable = np.array([0, 1, 0, 1, 0, 1.0])          # all of it may wait
    assert np.array_equal(np.ravel(core.defer) > 0, deferrable > 0)
    may_wait = pending * deferrable
    usd_kwh = np.array([[0.032465, 0.1743072, 0.024811650000000005]])
    cont = np.array([[-np.inf, -2e-05, -np.inf, -3e-05, -np.inf, -0.0001]])
    x = np.zeros((1, c.K, c.O))
    prices, iters = np.zeros((1, c.I)), np.zeros(1, dtype=np.int64)
    dispatch(pending, may_wait, usd_kwh, cont, d.tables, prices, x, iters)
    load = _slot_load(c, x)[0]
    assert iters[0] < NEWTON_STEPS
    assert np.all(load <= d.cap * (1 + CAP_RTOL))
    priced = prices[0] > 0
    assert priced[1:].all()                    # both scarce sites carry a price
    # Full to the tolerance, less the slivers under SLIVER jobs the plan leaves out.
    np.testing.assert_array_less(d.cap[priced] * (1 - 2 * CAP_RTOL), load[priced])


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
            x, battery_kw, drop, _ = core.plan_from_action(core, zero)
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


# --------------------------------------------------------------- the numpy dispatch
# The dispatch as it was written in numpy over the batch axis before it was compiled
# (optsched/env/dispatch_kernel.py): a second implementation of the same smoothed dual,
# projected Newton steps and line search, kept here to check the kernel against.

def numpy_dispatch(core, cont: np.ndarray) -> np.ndarray:
    """Jobs x[B, K, O] of the core's current slot; cont[K, B] as for `Dispatcher`."""
    from optsched.env.dispatch_kernel import LINE_SEARCH, NEWTON_STEPS, SLIVER

    c = core.c
    site = c.opt_site
    kwh = c.busy_kwh + c.idle_kw[site] * c.gpu_s / (3600.0 * c.util_cap[site])
    value_ko = np.where(c.eligible, c.value, -np.inf)[:, :, None]          # [K, O, 1]
    cap = (c.gpus * c.util_cap * c.dt_s)[:, None]                          # [I, 1]
    ratio = np.where(c.eligible, (c.value + c.drop_penalty[:, None]) / c.gpu_s, 0.0)
    mu_max = np.array([max(ratio[:, site == i].max(), 0.0) for i in range(c.I)]
                      )[:, None] * 1.01 + 1e-9
    tau = (TAU * c.revenue_per_job)[:, None]                               # [K, 1]
    g_tau = c.gpu_s[None, :, None] / tau[..., None]
    G = c.site_of * c.gpu_s[None]
    G2 = G * c.gpu_s[None]
    curv_floor = 1e-9 * cap / mu_max
    pending = core.q + core.series_at("arrivals")
    may_wait = np.minimum(pending, core.series_at("backlog_cap")) * core.defer
    usd_kwh = core.series_at("pue") * core.series_at("price") / 1000.0
    net = (value_ko - kwh[None, :, None] * usd_kwh[site][None]) / tau[..., None]
    stay = np.stack([np.broadcast_to(-c.drop_penalty[:, None], cont.shape), cont]) / tau[None]
    amount = np.stack([pending - may_wait, may_wait])

    def dual(mu, second=True):
        score = net - g_tau * mu[site][None]
        best = score.max(axis=1)
        best = np.where(np.isfinite(best), best, 0.0)
        top = np.maximum(best[None], stay)
        w = np.exp(score - best[:, None])
        share = np.exp(best[None] - top)
        z = w.sum(axis=1)[None] * share + np.exp(stay - top)
        value = (tau * (amount * (np.log(z) + top)).sum(axis=0)).sum(axis=0) \
            + (mu * cap).sum(axis=0)
        x = w * (amount * share / z).sum(axis=0)[:, None]
        load = np.einsum("io,kob->ib", G, x)
        if not second:
            return value, load, None, x
        pz = (share / z)[:, :, None]
        m1 = np.einsum("io,kob->kib", G, w)[None] * pz
        m2 = np.einsum("io,kob->kib", G2, w)[None] * pz
        a = (amount / tau[None])[:, :, None]
        hess = -np.einsum("jkib,jkhb->bih", a * m1, m1)
        idx = np.arange(c.I)
        hess[:, idx, idx] += (a * m2).sum(axis=(0, 1)).T
        return value, load, hess, x

    B = net.shape[-1]
    mu = np.zeros((c.I, B))
    eye = np.eye(c.I)[None]
    for _ in range(NEWTON_STEPS):
        value, load, hess, _ = dual(mu)
        grad = cap - load
        priced = mu > 0
        ok = np.where(priced, np.abs(grad) <= CAP_RTOL * cap, grad >= -CAP_RTOL * cap)
        if ok.all():
            break
        free = (priced | (grad < 0)).T
        h = np.where(free[:, :, None] & free[:, None, :], hess, 0.0)
        diag = np.diagonal(h, axis1=1, axis2=2)
        floor = np.maximum(diag, curv_floor.T) - diag
        ridge = 1e-12 * np.abs(diag).max(axis=1)
        h = h + eye * (floor + ridge[:, None])[:, :, None] + eye * (~free)[:, :, None]
        step = -np.linalg.solve(h, np.where(free, grad.T, 0.0)[..., None])[..., 0].T
        uphill = ~((grad * step).sum(axis=0) < 0)              # scaled gradient instead
        hdiag = np.maximum(np.diagonal(hess, axis1=1, axis2=2).T, curv_floor)
        step = np.where(uphill, np.where(free.T, -grad / hdiag, 0.0), step)
        step = step / np.maximum(np.abs(step / mu_max).max(axis=0), 1.0)
        alpha, todo, new = np.ones(B), ~ok.all(axis=0), mu
        for _ in range(LINE_SEARCH):
            cand = np.maximum(mu + alpha * step, 0.0)
            good = dual(cand, False)[0] <= value + 1e-4 * (grad * (cand - mu)).sum(axis=0)
            new = np.where(good & todo, cand, new)
            todo = todo & ~good
            if not todo.any():
                break
            alpha = np.where(todo, alpha * 0.5, alpha)
        mu = new
    x = dual(mu, False)[3]
    x[x < SLIVER] = 0.0
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def _compare_along_a_day(bank, B: int, waiting: bool, seed: int, every: int = 1):
    """Play random actions (a zero action, the `dispatch` baseline, for half the copies
    every fourth slot) through DispatchCore; every `every` slots, the kernel's plan and
    the numpy dispatch's plan of the same state. Returns the largest differences per
    copy-slot, relative to the copy's pending jobs."""
    from optsched.env.dispatch import continuation as cont_of

    core = DispatchCore(bank, B, waiting=waiting)
    rng = np.random.default_rng(seed)
    core.reset(seed=seed)
    out = []
    for t in range(core.T):
        a = rng.uniform(-1.2, 1.2, (B, core.action_dim))
        if t % 4 == 0:
            a[: B // 2] = 0.0
        x, battery_kw, drop, _ = core.plan_from_action(core, a)
        if t % every == 0:
            n = len(core.deferrable_rows)
            wait = np.zeros((core.K, B))
            wait[core.deferrable_rows] = np.clip(a.T, -1, 1)[:n]
            cont = np.where(core.defer > 0, cont_of(core.c, wait), -np.inf)
            want = numpy_dispatch(core, cont)
            pending = (core.q + core.series_at("arrivals")).sum(axis=0)
            out.append(np.abs(x - want).max(axis=(1, 2)) / np.maximum(pending, 1.0))
        core.step_plan(x, battery_kw, drop)
    return np.concatenate(out)


@pytest.mark.parametrize("waiting", [True, False])
def test_kernel_plans_equal_the_numpy_dispatch_on_small_days(waiting):
    """`dispatch` and `dispatch-battery`: on two-site days the compiled dispatch gives
    the numpy version's plans, slot after slot, to rounding."""
    for seed in range(6):
        diff = _compare_along_a_day(DayBank.from_compiled([small_scenario(seed)]), 8,
                                    waiting, seed)
        assert diff.max() <= 1e-9, (seed, diff.max())


@pytest.mark.parametrize("waiting", [True, False])
def test_kernel_plans_equal_the_numpy_dispatch_on_jemas3(waiting):
    """On jemas-3 (three sites that serve each other's classes) Newton's systems are
    nearly singular, so rounding (numpy's reduction order, which changes with the batch
    size) can end the price search at another point within CAP_RTOL of full: most plans
    agree to rounding, and every plan to the tolerance."""
    from optsched.scenario import jemas3

    bank = DayBank.from_family(jemas3.train_days()[:8])
    diff = _compare_along_a_day(bank, 8, waiting, 1, every=16)
    assert np.mean(diff <= 1e-9) >= 0.9, np.sort(diff)[-10:]
    assert diff.max() <= 1e-3


def test_the_dispatch_baseline_plans_equal_the_numpy_dispatch():
    """The `dispatch` policy (zero look-ahead, idle battery) on plain cores."""
    from optsched.env.core import BatchedCore

    policy = get_policy("dispatch")
    for seed in range(4):
        c = small_scenario(seed)
        core = BatchedCore(DayBank.from_compiled([c]), 1)
        core.reset(days=[0])
        for _ in range(c.T):
            x, battery_kw, drop = policy.plan(core)
            cont = np.where(c.interactive[:, None], -np.inf,
                            continuation(c, np.zeros((c.K, 1))))
            np.testing.assert_allclose(x, numpy_dispatch(core, cont), rtol=0, atol=1e-9)
            assert not battery_kw.any() and not drop.any()
            core.step_plan(x, battery_kw, drop)


def test_a_copy_gets_the_same_plan_alone_and_in_any_batch():
    """Each copy's prices are searched on their own: its plan does not depend on the
    other copies or the batch size, to the last bit (the numpy version's did, through
    numpy's reduction order: up to 3e-7 of a plan on jemas-3)."""
    from optsched.env.core import BatchedCore
    from optsched.scenario import jemas3

    bank = DayBank.from_family(jemas3.train_days()[:6])
    core, one = BatchedCore(bank, 6), BatchedCore(bank, 1)
    dispatcher = Dispatcher(core)
    core.reset(days=np.arange(6))
    rng = np.random.default_rng(0)
    for t in range(core.T):
        cont = np.where(core.defer > 0, continuation(core.c, rng.uniform(-1, 1, (core.K, 6))),
                        -np.inf)
        x = dispatcher(core, cont)
        if t % 48 == 0:
            for b in range(6):
                one.t, one.day, one._q = t, core.day[b:b + 1], core._q[b:b + 1].copy()
                np.testing.assert_array_equal(dispatcher(one, cont[:, b:b + 1])[0], x[b])
        core.step_plan(x, np.zeros((6, core.I)))


def test_warm_start_takes_fewer_newton_steps_to_plans_within_the_tolerance():
    """With warm_start each copy's search starts from its previous slot's prices: fewer
    Newton steps, sites still within CAP_RTOL of capacity, plans within 1e-3 of the
    pending jobs of the cold start's from the same state."""
    from optsched.scenario import jemas3

    bank = DayBank.from_family(jemas3.train_days()[:4])
    core = DispatchCore(bank, 4, waiting=False, warm_start=True)
    core.reset(days=np.arange(4))
    c0 = core.c
    cap = c0.gpus * c0.util_cap * c0.dt_s
    rng = np.random.default_rng(0)
    warm_its, cold_its = [], []
    for t in range(core.T):
        a = rng.uniform(-1, 1, (4, core.action_dim))
        cont = np.where(core.defer > 0, continuation(core.c, np.zeros((core.K, 4))), -np.inf)
        cold = core.dispatcher(core, cont)
        cold_its.append(core.dispatcher.iterations.copy())
        x, battery_kw, drop, _ = core.plan_from_action(core, a, core.prices)
        warm_its.append(core.dispatcher.iterations.copy())
        assert np.all(_slot_load(c0, x) <= cap * (1 + CAP_RTOL)), t
        pending = (core.q + core.series_at("arrivals")).sum(axis=0)
        assert np.all(np.abs(x - cold).max(axis=(1, 2)) <= 1e-3 * np.maximum(pending, 1)), t
        core.step_plan(x, battery_kw, drop)
    assert np.mean(warm_its) < np.mean(cold_its) / 2


def test_warm_started_runs_resume_exactly_from_a_snapshot():
    """The prices a warm start carries are part of the episode state."""
    from optsched.scenario import jemas3

    bank = DayBank.from_family(jemas3.train_days()[:3])
    dim = DispatchCore(bank, 3).action_dim
    actions = np.random.default_rng(1).uniform(-1, 1, (140, 3, dim))
    runs = []
    for resume in (False, True):
        core = DispatchCore(bank, 3, warm_start=True)
        core.reset(seed=2)
        for a in actions[:120]:
            core.step(a)
        if resume:
            state = core.snapshot()
            core = DispatchCore(bank, 3, warm_start=True)
            core.reset(seed=5)
            core.restore(state)
        runs.append([core.step(a)[1] for a in actions[120:]])
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.fixture(scope="module")
def genai_bank():
    """Two jemas-3-genai days (provisioning on: the slot's arrivals come after the plan)."""
    return DayBank.from_family([40, 41], source="jemas-3-genai")


def _plans(core, actions, slots: int) -> list[tuple]:
    """The plans `core.step` hands the repair over its first `slots` slots: those of
    `plan_from_action` on `known()` and `high()` (what `step` computes in one compiled
    pass: test_step_is_plan_from_action_then_step_plan)."""
    seen = []
    core.reset(days=np.arange(core.B))
    for _ in range(slots):
        plan = core.plan_from_action(core.known(), actions, None, core.high())
        seen.append([None if p is None else np.array(p) for p in plan])
        core.step(actions)
    return seen


@pytest.mark.parametrize("family,provision,warm,quantile", [
    ("jemas-3-genai", True, False, 0.9), ("jemas-3-genai", True, True, 0.9),
    ("jemas-3-genai", True, False, None), ("jemas-3-genai", False, False, 0.9),
    ("jemas-3", False, True, 0.9)])
def test_step_is_plan_from_action_then_step_plan(family, provision, warm, quantile):
    """`DispatchCore.step` (one compiled pass: dispatch, provisioning, the plan meeting
    the real arrivals, repair) gives, slot after slot over a whole day, the very numbers
    of the two-step path it replaced: `plan_from_action` on what is known at the slot's
    start, then `step_plan` (random actions, the zero action for half the copies every
    fourth slot; with provisioning, levels up to +-1.2, clipped; GPUs for the P90 or,
    without a quantile, for the plan)."""
    from optsched.scenario import jemas3

    days = [40, 41] if family == "jemas-3-genai" else jemas3.train_days()[:2]
    bank = DayBank.from_family(days, source=family)
    cores = [DispatchCore(bank, 3, EnvConfig(record=True), waiting=family == "jemas-3",
                          provision=provision, warm_start=warm, quantile=quantile)
             for _ in range(2)]
    fast, ref = cores
    for core in cores:
        core.reset(seed=4)
    rng = np.random.default_rng(5)
    for t in range(fast.T):
        a = rng.uniform(-1.2, 1.2, (3, fast.action_dim))
        if t % 4 == 0:
            a[:2] = 0.0
        obs, reward, done, info = fast.step(a)
        obs = obs.copy()
        plan = ref.plan_from_action(ref.known(), a, ref.prices if warm else None, ref.high())
        obs_r, reward_r, done_r, info_r = ref.step_plan(*plan)
        np.testing.assert_array_equal(reward, reward_r)
        np.testing.assert_array_equal(obs, obs_r)
        np.testing.assert_array_equal(info["terms"], info_r["terms"])
        np.testing.assert_array_equal(fast.prices, ref.prices)
        np.testing.assert_array_equal(fast.dispatcher.iterations, ref.dispatcher.iterations)
        assert done == done_r
    for b in range(3):
        mine, theirs = fast.schedule(b), ref.schedule(b)
        for key in ("x", "y", "q", "n", "ch", "dis", "soc", "start"):
            np.testing.assert_array_equal(getattr(mine, key), getattr(theirs, key))
    assert fast.episode_utility.sum() != 0


def test_the_fused_steps_cache_follows_the_repair_kernel():
    """numba's cache sees a change of dispatch_kernel.py only: `step_dispatch` inlines
    kernel.py's repair, so dispatch_kernel.KERNEL_SHA256 must be kernel.py's digest
    (update it whenever kernel.py changes: then the cached step is compiled again)."""
    import hashlib
    from pathlib import Path

    from optsched.env import dispatch_kernel, kernel

    digest = hashlib.sha256(Path(kernel.__file__).read_bytes()).hexdigest()
    assert digest == dispatch_kernel.KERNEL_SHA256, (
        f"kernel.py changed: set dispatch_kernel.KERNEL_SHA256 = {digest!r}")


def test_pairwise_sum_adds_up_as_numpy():
    """The fused step's row sums are numpy's, bit for bit, at every length (blocks of 8
    partial sums up to 128, halves above), so the repair sees `step_plan`'s numbers."""
    from optsched.env.dispatch_kernel import _pairwise

    rng = np.random.default_rng(0)
    for n in [*range(1, 140), 255, 256, 257, 1000, 4099]:
        x = rng.uniform(0, 1, (2, n)) * 10.0 ** rng.uniform(-8, 8, (2, n))
        for row in x:
            assert _pairwise(row, n) == row.sum(), n


def test_commit_mode_plans_without_the_slots_arrivals(genai_bank):
    """With provisioning the slot is decided before its arrivals: the same day with the
    arrivals of slot 5 on tripled gets the same plans and GPUs in slots 0..5 (the
    dispatch used to read the real arrivals of the slot it planned)."""
    c = genai_bank.day(0)
    assert c.commit
    arr = c.arrivals.copy()
    arr[:, 5:] *= 3.0
    other = DayBank.from_compiled([c, dataclasses.replace(c, arrivals=arr)], [40, 40])
    for provision in (False, True):
        core = DispatchCore(other, 2, waiting=False, provision=provision)
        zero = np.zeros((2, core.action_dim))
        plans = _plans(core, zero, 6)
        for x, bkw, _drop, gpus in plans:
            np.testing.assert_allclose(x[0], x[1], rtol=0, atol=1e-9)
            np.testing.assert_array_equal(bkw[0], bkw[1])
            if gpus is not None:
                np.testing.assert_array_equal(gpus[0], gpus[1])
        assert plans[5][0][0].sum() > 0


def test_zero_action_in_commit_mode_is_the_dispatch_baseline(genai_bank):
    """The `dispatch` baseline plans on `Known` (forecasts from the past, computed per
    copy) at the point forecast and gets GPUs for the P90 (`provision_for`, as the
    rollout does); DispatchCore reads its own tables of the same beliefs: the zero action
    of both action spaces gives the baseline's plans and GPUs."""
    from optsched.env.known import Known, provision_for

    baseline = get_policy("dispatch")
    for provision in (False, True):
        core = DispatchCore(genai_bank, 2, waiting=False, provision=provision)
        zero = np.zeros((2, core.action_dim))
        core.reset(days=np.arange(2))
        for _ in range(24):
            point = Known(core, lag=1)
            want = baseline.plan(point)
            high = Known(core, lag=1, quantile=baseline.provision_quantile)
            x, bkw, drop, gpus = core.plan_from_action(core.known(), zero, high=core.high())
            np.testing.assert_allclose(x, want[0], rtol=1e-9, atol=1e-9)
            np.testing.assert_array_equal(bkw, want[1])
            np.testing.assert_allclose(gpus, provision_for(core, point, high, want[0],
                                                           want[1]), rtol=0, atol=1e-9)
            core.step(zero)


def test_provision_levels_scale_the_belief_and_the_gpus(genai_bank):
    """Belief level -1 plans for a quarter of the believed interactive jobs (BELIEF = 4),
    so at most that many are planned; headroom +1 doubles the GPUs committed (capped at
    the site's GPUs), -1 halves them (rounded)."""
    from optsched.env import dispatch

    core = DispatchCore(genai_bank, 2, waiting=False, provision=True)
    core.reset(days=np.arange(2))
    for _ in range(100):                    # to the busy hours
        core.step(np.zeros((2, core.action_dim)))
    I, inter = core.I, core.c.interactive
    seen = core.known()
    believed = (core.q + seen.series_at("arrivals"))[inter].T          # [B, Ki]
    a = np.zeros((2, core.action_dim))
    x0, _, _, g0 = core.plan_from_action(seen, a)
    a[:, I:2 * I] = -1.0
    x1, _, _, _ = core.plan_from_action(seen, a)
    assert dispatch.BELIEF == 4.0
    planned = x1[:, inter].sum(axis=2)
    assert (planned <= believed / 4.0 + 1e-6).all() and planned.sum() > 0
    assert x0[:, inter].sum() > 2 * planned.sum()
    a[:, I:2 * I] = 0.0
    for h, factor in ((1.0, 2.0), (-1.0, 0.5)):
        a[:, 2 * I:] = h
        _, _, _, g = core.plan_from_action(seen, a)
        np.testing.assert_array_equal(g, np.minimum(np.floor(g0 * factor + 0.5),
                                                     core.c.gpus[None, :]))
    assert (g0 > 0).any() and (g0 < core.c.gpus).any()


def test_provision_battery_needs_provisioning(tiny):
    c = compile_scenario(scenario_from_dict(tiny))
    with pytest.raises(ValueError, match="provisioning"):
        DispatchCore(DayBank.from_compiled([c]), 1, provision=True)
