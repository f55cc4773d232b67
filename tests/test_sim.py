"""The per-job simulator: hand-computed queues, agreement with the fluid model where it is
exact, job conservation, cold starts, load monotonicity and reproducibility."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from optsched.errors import ScenarioError
from optsched.evaluator import evaluate
from optsched.policies import get_policy, rollout
from optsched.scenario import compile_scenario, save_scenario, scenario_from_dict
from optsched.schedule import complete
from optsched.sim import ColdStart, Jobs, poisson_jobs, simulate, simulate_policy
from optsched.sim.engine import DROPPED, QUEUED_END
from tests.conftest import TINY, small_scenario, two_sites

WARM = ColdStart.none()


def tiny(arrivals: list[float], deferrable: bool = False, idle_kw: float = 0.0,
         **site) -> tuple:
    """TINY with the given arrivals (one class, one site, one-hour slots)."""
    raw = copy.deepcopy(TINY)
    raw["models"][0]["gpu_idle_kw"] = idle_kw
    T = len(arrivals)
    raw["horizon"]["slots"] = T
    s = raw["sites"][0]
    s.update(price=[100.0] * T, renewable_kw=[0.0] * T, carbon_intensity=[0.0] * T, **site)
    cl = raw["classes"][0]
    cl["arrivals"] = arrivals
    if deferrable:
        cl.update(kind="deferrable", max_wait_slots=2, wait_cost=0.001)
        del cl["deadline_s"], cl["late_penalty"]
    else:
        cl["deadline_s"] = 2.0
    sc = scenario_from_dict(raw)
    return sc, compile_scenario(sc)


def plan(c, served: list[float], option: int, n: list[float]):
    """Serve `served[t]` jobs of class 0 with one option, drop the rest of each slot's
    arrivals, battery idle."""
    x = np.zeros((c.K, c.O, c.T))
    x[0, option] = served
    y = np.maximum(c.arrivals - x.sum(axis=1), 0.0)
    return complete(c, x, y, np.array([n], float))


def one_second(c) -> int:
    """10 steps at the nominal clock: exactly 1 GPU-second in TINY."""
    o = c.option_index(0, 10, 1.0)
    assert c.gpu_s[o] == 1.0
    return o


def test_hand_computed_queue_on_one_gpu():
    sc, c = tiny([4.0, 0.0])
    o = one_second(c)
    jobs = Jobs.of([0.0, 0.5, 0.6, 3.0], [0, 0, 0, 0])
    res = simulate(c, plan(c, [4, 0], o, [1, 1]), jobs, cold_start=WARM)
    # starts 0, 1, 2, 3 (FCFS on one GPU): finishes 1, 2, 3, 4
    np.testing.assert_allclose(res.latency_s, [1.0, 1.5, 2.4, 1.0])
    assert (res.served[0], res.late[0], res.dropped[0], res.queued_end[0]) == (4, 1, 0, 0)
    assert res.latency_pct[0, 0] == pytest.approx(1.25)                 # median of 1,1,1.5,2.4
    # revenue 4 x 0.02, one late job 0.01; 4 x 1e-4 kWh x PUE 1.5 at $0.1/kWh
    assert res.terms["late"] == pytest.approx(0.01)
    assert res.terms["energy"] == pytest.approx(6e-5)
    assert res.utility == pytest.approx(0.08 - 0.01 - 6e-5)


def test_interactive_jobs_go_before_waiting_deferrable_ones():
    raw = copy.deepcopy(TINY)
    s = raw["sites"][0]
    s.update(renewable_kw=[0.0, 0.0], carbon_intensity=[0.0, 0.0])
    inter = raw["classes"][0]
    inter.update(arrivals=[1.0, 0.0], deadline_s=10.0)
    batch = copy.deepcopy(inter)
    batch.update(name="d", kind="deferrable", max_wait_slots=1, wait_cost=0.0,
                 arrivals=[2.0, 0.0])
    del batch["deadline_s"], batch["late_penalty"]
    raw["classes"].append(batch)
    sc = scenario_from_dict(raw)
    c = compile_scenario(sc)
    o = one_second(c)
    x = np.zeros((2, c.O, 2))
    x[0, o, 0], x[1, o, 0] = 1, 2
    sched = complete(c, x, np.zeros((2, 2)), np.ones((1, 2)))
    jobs = Jobs.of([0.0, 0.2, 0.5], [1, 1, 0])           # d at 0 and 0.2, interactive at 0.5
    res = simulate(c, sched, jobs, cold_start=WARM)
    # d0 runs 0-0.5 and pauses at a step boundary for the interactive job (0.5-1.5), then
    # resumes (1.5-2); d1 waits for it (2-3)
    np.testing.assert_allclose(res.latency_s, [2.0, 2.8, 1.0])


def test_surplus_deferrable_jobs_wait_for_later_capacity_interactive_ones_are_dropped():
    for deferrable, served, dropped in ((True, 30, 0), (False, 25, 5)):
        sc, c = tiny([10.0, 10.0, 10.0], deferrable=deferrable, gpus=20)
        o = one_second(c)
        arrivals = np.r_[np.linspace(0, 3000, 15), 3600 + np.linspace(0, 3000, 5),
                         7200 + np.linspace(0, 3000, 10)]
        res = simulate(c, plan(c, [10, 10, 10], o, [20, 20, 20]), Jobs.of(arrivals, [0] * 30),
                       cold_start=WARM)
        assert (res.served[0], res.dropped[0]) == (served, dropped)
        assert res.deferred[0] == (5 if deferrable else 0)
        np.testing.assert_array_equal(res.slot_served[0], [10, 10 if deferrable else 5, 10])


@pytest.mark.parametrize("seed", [0, 1])
def test_ample_capacity_without_cold_starts_matches_the_fluid_model(seed):
    raw = two_sites(TINY)                              # site b is 0.5 s away
    for site in raw["sites"]:
        site["gpus"] = 400
    raw["classes"][0]["deadline_s"] = 3.75
    sc = scenario_from_dict(raw)
    c = compile_scenario(sc)
    sched = rollout(get_policy("greedy"), [c])[0][0]
    assert np.array_equal(sched.x, np.round(sched.x))                   # integer plan
    x = sched.x.copy()
    at_a = np.flatnonzero(c.opt_site == 0)
    half = np.floor(x[:, at_a] / 2)                    # half of site a's jobs go to b
    x[:, at_a] -= half
    x[:, at_a + at_a.size] += half
    full = complete(c, x, sched.y, np.full((c.I, c.T), 400.0))       # battery idle
    res = simulate(c, full, seed=seed, cold_start=ColdStart.default())
    ev = evaluate(c, full)
    assert ev.feasible and ev.jobs["transferred"] > 0
    served = res.option >= 0
    np.testing.assert_allclose(res.latency_s[served], c.latency_s[0, res.option[served]],
                               rtol=0, atol=1e-9)
    assert res.late.sum() == ev.jobs["late"]
    assert res.served.sum() == ev.jobs["served"] and res.dropped.sum() == ev.jobs["dropped"]
    assert res.utility == pytest.approx(ev.utility, rel=1e-12)
    assert res.energy["it_kwh"] == pytest.approx(sum(s["it_kwh"] for s in ev.sites.values()),
                                                 rel=1e-12)


def test_late_jobs_grow_with_load_beyond_capacity():
    rates, p95 = [], []
    for load in (0.5, 0.9, 1.2, 2.0):
        n = round(load * 3600)
        sc, c = tiny([float(n), 0.0])
        sched = plan(c, [n, 0], one_second(c), [1, 1])
        res = simulate(c, sched, seed=3, cold_start=WARM)
        assert res.served[0] == n                       # the queue drains in slot 2
        rates.append(res.late_rate[0])
        p95.append(res.latency_pct[0, 1])
        if load > 1:                                   # the queue grows over the slot
            lat = res.latency_s
            assert lat[-100:].mean() > lat[:100].mean() + 0.2 * (load - 1) * 3600
    assert np.all(np.diff(rates) > 0) and np.all(np.diff(p95) > 0)
    assert rates[0] < 0.25 and rates[-1] > 0.9


def test_waiting_on_one_gpu_follows_the_m_d_1_queue():
    # Poisson arrivals at rate 0.5/s, 1 s service: P(wait <= 1) = (1 - rho) e^rho (Erlang)
    T = 24
    sc, c = tiny([1800.0] * T)
    res = simulate(c, plan(c, [1800] * T, one_second(c), [1] * T), seed=0, cold_start=WARM)
    assert res.late_rate[0] == pytest.approx(1 - 0.5 * np.exp(0.5), abs=0.01)


def test_cold_start_delays_the_first_jobs_on_a_gpu_switched_on():
    sc, c = tiny([0.0, 2.0, 1.0], idle_kw=0.36)
    o = one_second(c)
    jobs = Jobs.of([3600.0, 3605.0, 7200.0], [0, 0, 0])
    cold = ColdStart(10.0, 10.0)                      # a fixed 10 s delay
    res = simulate(c, plan(c, [0, 2, 1], o, [0, 1, 1]), jobs, cold_start=cold)
    # ready at 3610: job 0 runs 3610-3611, job 1 3611-3612; slot 2's GPU is already warm
    np.testing.assert_allclose(res.latency_s, [11.0, 7.0, 1.0])
    assert res.energy["cold_starts"] == 1
    assert res.energy["cold_start_kwh"] == pytest.approx(0.36 * 10 / 3600)
    warm = simulate(c, plan(c, [0, 2, 1], o, [1, 1, 1]), jobs, cold_start=cold)
    np.testing.assert_allclose(warm.latency_s, [1.0, 1.0, 1.0])       # on since slot 0
    assert warm.energy["cold_starts"] == 0


def test_a_job_draining_past_its_slot_keeps_its_gpu_busy():
    sc, c = tiny([1.0, 0.0, 1.0])
    jobs = Jobs.of([0.0, 7200.0], [0, 0], [8000.0, 1.0])   # the first runs 0 - 8000 s
    res = simulate(c, plan(c, [1, 0, 1], one_second(c), [1, 0, 1]), jobs, cold_start=WARM)
    np.testing.assert_allclose(res.latency_s, [8000.0, 801.0])     # waits for the GPU


def test_jobs_sent_to_a_site_without_gpus_are_still_queued_at_the_end():
    sc, c = tiny([4.0, 0.0], gpus=0)
    res = simulate(c, plan(c, [4, 0], one_second(c), [0, 0]))
    assert (res.served[0], res.dropped[0], res.queued_end[0]) == (0, 0, 4)


def test_cold_start_distribution_matches_the_trace():
    delay = ColdStart.default().sample(np.random.default_rng(0), 200_000)
    assert np.median(delay) == pytest.approx(22.7, rel=0.01)
    assert np.quantile(delay, 0.9) == pytest.approx(42.0, rel=0.01)
    with pytest.raises(ScenarioError, match="cold_start.p90_s"):
        ColdStart(30.0, 20.0)


@pytest.mark.parametrize("seed", range(4))
def test_every_job_is_counted_once_on_random_scenarios(seed):
    c = small_scenario(seed)
    rng = np.random.default_rng(seed)
    for policy in ("local-fixed", "greedy", "dispatch"):
        sched = rollout(get_policy(policy), [c])[0][0]
        base = poisson_jobs(c, seed, burstiness=float(rng.uniform(0, 3)),
                            counts="poisson" if seed % 2 else "exact")
        jobs = Jobs.of(base.arrival_s, base.k, rng.lognormal(0, 0.5, len(base)))
        res = simulate(c, sched, jobs, seed=seed)
        arrived = np.bincount(jobs.k, minlength=c.K)
        np.testing.assert_array_equal(res.arrived, arrived)
        np.testing.assert_array_equal(res.served + res.dropped + res.queued_end, arrived)
        outcome = np.where(res.option >= 0, 0, res.option)
        for code, count in ((0, res.served), (DROPPED, res.dropped),
                            (QUEUED_END, res.queued_end)):
            np.testing.assert_array_equal(np.bincount(jobs.k[outcome == code],
                                                      minlength=c.K), count)
        assert np.array_equal(np.isfinite(res.latency_s), res.option >= 0)
        np.testing.assert_array_equal(res.slot_served.sum(axis=1), res.served)
        np.testing.assert_array_equal(res.slot_late.sum(axis=1), res.late)
        e = res.energy
        assert e["it_kwh"] == pytest.approx(e["busy_kwh"] + e["idle_kwh"] + e["cold_start_kwh"])
        json.loads(res.to_json())                     # JSON-safe: no NaN anywhere


def test_same_seed_same_result_other_seed_other_result():
    c = small_scenario(5)
    sched = rollout(get_policy("greedy"), [c])[0][0]
    a, b = (simulate(c, sched, seed=7) for _ in range(2))
    other = simulate(c, sched, seed=8)
    parent = np.random.SeedSequence(7)
    first, second = parent.spawn(2)
    runs = [simulate(c, sched, seed=ss).to_dict() for ss in (first, first, second)]
    assert runs[0] == runs[1] != runs[2]
    assert a.to_dict() == b.to_dict()
    np.testing.assert_array_equal(a.latency_s, b.latency_s)
    assert not np.array_equal(np.nan_to_num(a.latency_s), np.nan_to_num(other.latency_s))


def test_poisson_jobs_exact_counts_and_slots():
    c = small_scenario(2)
    jobs = poisson_jobs(c, 0, burstiness=2.0, counts="exact")
    np.testing.assert_array_equal(jobs.counts(c), c.arrivals)
    assert np.all(np.diff(jobs.arrival_s) >= 0)
    drawn = poisson_jobs(c, 0).counts(c)
    assert abs(drawn.sum() - c.arrivals.sum()) < 4 * np.sqrt(c.arrivals.sum())


def test_burstiness_makes_arrivals_within_a_slot_overdispersed():
    _, c = tiny([36000.0] * 4)
    def dispersion(burstiness: float) -> float:
        jobs = poisson_jobs(c, 1, burstiness=burstiness, counts="exact")
        n = np.bincount((jobs.arrival_s // 360).astype(int), minlength=40)   # per tenth
        return n.var() / n.mean()
    # uniform times: multinomial counts, var/mean = 1 - 1/10; Gamma intensity of variance
    # 0.5: var/mean about 1 + 0.5 x 3600 jobs per tenth
    assert dispersion(0.0) < 2.0
    assert dispersion(0.5) > 500.0


def test_bad_jobs_and_deadlines_are_one_line_errors():
    sc, c = tiny([4.0, 0.0])
    sched = plan(c, [4, 0], one_second(c), [1, 1])
    with pytest.raises(ScenarioError, match=r"jobs.arrival_s\[1\]: must be sorted"):
        simulate(c, sched, Jobs.of([5.0, 1.0], [0, 0]))
    with pytest.raises(ScenarioError, match="jobs.k"):
        simulate(c, sched, Jobs.of([1.0], [3]))
    with pytest.raises(ScenarioError, match="jobs.arrival_s: must lie in"):
        simulate(c, sched, Jobs.of([7200.0], [0]))
    with pytest.raises(ScenarioError, match="deadline_s"):
        simulate(c, sched, deadline_s=[4.0, 1.0, 2.0])        # one per class (1)


def test_simulate_policy_on_a_scenario_file(tmp_path):
    sc, _ = tiny([100.0, 50.0])
    path = tmp_path / "tiny.toml"
    save_scenario(sc, path)
    res = simulate_policy(path, "local-fixed", seed=1)
    assert res.arrived.sum() == 150 == res.served.sum() + res.dropped.sum() \
        + res.queued_end.sum()
    assert simulate_policy(path, "local-fixed", seed=1).to_dict() == res.to_dict()


def test_the_default_day_is_simulated_and_seeded_as_that_day():
    """No day given is the family's first held-out day (4), so the jobs drawn for it are
    those of day 4 as `--days 4` draws them (they were seeded as "no day": another
    draw of the same day)."""
    from optsched.api import simulate as simulate_api

    (default,), (four,), (nine,) = (simulate_api("jemas-3", "greedy", d, seed=3)
                                    for d in (None, [4], [9]))
    assert default.to_dict() == four.to_dict() != nine.to_dict()


def serve(gpus_on: list[tuple[float, float]], hi: list[tuple], lo: list[tuple]):
    """engine.serve_priority on one interval per GPU; hi (ready, due, work, quantum) and lo
    (ready, work, quantum) jobs. Returns (start_hi, finish_hi, start_lo, finish_lo)."""
    from optsched.sim.engine import serve_priority

    def cols(rows, n):
        return [np.array([r[j] for r in rows], float) for j in range(n)]

    rh, dh, wh, qh = cols(hi, 4)
    rl, wl, ql = cols(lo, 3)
    out = [np.empty(len(hi)), np.empty(len(hi)), np.empty(len(lo)), np.empty(len(lo))]
    serve_priority(rh, dh, wh, qh, rl, wl, ql, np.array([g[0] for g in gpus_on]),
                   np.array([g[1] for g in gpus_on]), np.arange(len(gpus_on) + 1),
                   out[0], out[1], out[2], out[3])
    return out


def test_a_batch_job_pauses_at_its_next_step_for_an_interactive_arrival():
    # One GPU. A 10 s batch job of 1 s steps starts at 0; an interactive job (1 s) is
    # ready at 2.5: the batch job pauses at 3, the interactive job runs 3-4, the batch job
    # resumes at 4 with 7 s left and ends at 11. Without steps it would block until 10.
    s_hi, f_hi, s_lo, f_lo = serve([(0.0, 100.0)], [(2.5, 4.5, 1.0, np.inf)],
                                   [(0.0, 10.0, 1.0)])
    assert (s_hi[0], f_hi[0], s_lo[0], f_lo[0]) == (3.0, 4.0, 0.0, 11.0)
    s_hi, f_hi, s_lo, f_lo = serve([(0.0, 100.0)], [(2.5, 4.5, 1.0, np.inf)],
                                   [(0.0, 10.0, np.inf)])
    assert (s_hi[0], f_hi[0], f_lo[0]) == (10.0, 11.0, 10.0)
    # Two GPUs, both on batch work: only one pauses (the one whose step ends first).
    s_hi, f_hi, s_lo, f_lo = serve([(0.0, 100.0)] * 2, [(2.5, 4.5, 1.0, np.inf)],
                                   [(0.0, 10.0, 1.0), (0.2, 10.0, 1.0)])
    assert (s_hi[0], f_hi[0]) == (3.0, 4.0)
    np.testing.assert_allclose(f_lo, [11.0, 10.2])


def test_interactive_jobs_are_served_earliest_deadline_first():
    # One GPU busy 0-5 with a job that cannot pause; b (due 10) is ready at 1, c (due 4)
    # at 2: c goes first (5-6), then b (6-7). With due = ready time it is FCFS.
    hi = [(0.0, 100.0, 5.0, np.inf), (1.0, 10.0, 1.0, np.inf), (2.0, 4.0, 1.0, np.inf)]
    s_hi, f_hi, _, _ = serve([(0.0, 100.0)], hi, [])
    np.testing.assert_allclose(s_hi, [0.0, 6.0, 5.0])
    fcfs = [(r, r, w, q) for r, _, w, q in hi]
    np.testing.assert_allclose(serve([(0.0, 100.0)], fcfs, [])[0], [0.0, 5.0, 6.0])
    # A job due later pauses at its next step for one due sooner: a (due 100, 10 s of
    # 1 s steps) pauses at 1 for b (ready 0.5, due 2), resumes at 2 and ends at 11.
    s_hi, f_hi, _, _ = serve([(0.0, 100.0)], [(0.0, 100.0, 10.0, 1.0), (0.5, 2.0, 1.0, 1.0)],
                             [])
    np.testing.assert_allclose(s_hi, [0.0, 1.0])
    np.testing.assert_allclose(f_hi, [11.0, 2.0])


def test_pausing_conserves_work_on_random_queues():
    """Random mixes on 3 GPUs (one on from t = 100): every job finishes, no sooner than its
    work after its first start and its ready time; a job that cannot pause runs in one
    piece."""
    rng = np.random.default_rng(5)
    for _ in range(5):
        nh, nl = 300, 100
        rh = np.sort(rng.uniform(0, 500, nh))
        hi = [(r, r + rng.uniform(1, 5), rng.uniform(0.2, 2), rng.choice([0.1, np.inf]))
              for r in rh]
        lo = [(r, rng.uniform(1, 8), rng.choice([0.5, np.inf]))
              for r in np.sort(rng.uniform(0, 500, nl))]
        s_hi, f_hi, s_lo, f_lo = serve([(0.0, 2000.0), (0.0, 2000.0), (100.0, 2000.0)],
                                       hi, lo)
        work = np.r_[[h[2] for h in hi], [w[1] for w in lo]]
        start, finish = np.r_[s_hi, s_lo], np.r_[f_hi, f_lo]
        assert np.all(np.isfinite(finish)) and np.all(finish >= start + work - 1e-9)
        assert np.all(s_hi >= rh) and np.all(s_lo >= [w[0] for w in lo])
        whole = np.r_[[h[3] for h in hi], [w[2] for w in lo]] == np.inf
        np.testing.assert_allclose(finish[whole], (start + work)[whole])
        assert (finish > start + work + 1e-9).any()               # some did pause
