"""Queueing-aware capacity (docs/model.md): a hand-computed late count, valid tangent cuts,
the oracle's response to a tight deadline, the environment's repair, the schema's errors,
and the option off leaving every number as it was."""

from __future__ import annotations

import copy
from unittest import mock

import numpy as np
import pytest

from optsched.env import BatchedCore, DayBank, EnvConfig
from optsched.errors import ScenarioError
from optsched.evaluator import evaluate
from optsched.oracle import model_size, solve
from optsched.oracle.matrix import build_matrix
from optsched.scenario import compile_scenario, scenario_from_dict
from optsched.scenario.compile import erlang_c, late_curve
from optsched.scenario.schema import Queueing
from optsched.schedule import complete
from tests.conftest import TINY, small_scenario, two_sites


def build(raw: dict):
    return compile_scenario(scenario_from_dict(raw))


def queued(raw: dict, **queueing) -> dict:
    raw = copy.deepcopy(raw)
    raw["queueing"] = queueing
    return raw


def queued_small(seed: int, **queueing):
    """conftest's small_scenario(seed) with a [queueing] section (default settings)."""
    def with_queueing(sc):
        return compile_scenario(sc.model_copy(update={"queueing": Queueing(**queueing)}))

    with mock.patch("tests.conftest.compile_scenario", with_queueing):
        return small_scenario(seed)


def one_option_schedule(c, jobs: float, n: float, steps: int = 10, clock: float = 1.0):
    """All of slot 0's `jobs` served with one option of site 0 on n GPUs; slot 1 idle."""
    x = np.zeros((c.K, c.O, c.T))
    x[0, c.option_index(0, steps, clock), 0] = jobs
    y = np.maximum(c.arrivals - x.sum(axis=1), 0.0)
    return complete(c, x, y, np.array([[n, 0.0]]))


def test_hand_computed_late_count_at_a_known_utilisation():
    """TINY: one site, one interactive class with a 4 s deadline; options of 2, 1, 6 and
    3 GPU-seconds, of which the 6 s one is late by itself, so s = (2 + 1 + 3) / 3 = 2 s
    and the slack is 4 - 2 = 2 s. Kingman with ca2 = cs2 = 1: P(wait > 2 s) =
    rho exp(-2 (1 - rho) 2 / (2 x 2)) = rho exp(-(1 - rho)). 3,600 one-second jobs on 2
    GPUs in an hour: rho = 0.5, a tangent point of the 4 cuts, so the model's late count
    is the curve's own: (W / s) P = 1,800 x 0.5 exp(-0.5)."""
    raw = queued(TINY, model="kingman", pieces=4, cs2=1.0)
    raw["classes"][0]["arrivals"] = [3600.0, 0.0]
    c = build(raw)
    assert c.queue_service_s[0] == pytest.approx(2.0)
    assert c.queue_slack_s[0] == pytest.approx(2.0)
    ev = evaluate(c, one_option_schedule(c, 3600.0, 2.0))
    assert ev.feasible, ev.violations
    expected = 1800 * 0.5 * np.exp(-0.5)
    assert ev.jobs["late_waiting"] == pytest.approx(expected, rel=1e-9)
    assert ev.jobs["late"] == pytest.approx(expected, rel=1e-9)    # no option is late by
    assert ev.terms["late"] == pytest.approx(0.01 * expected, rel=1e-9)  # latency alone
    assert ev.class_late["c"]["late_rate"] == pytest.approx(expected / 3600, rel=1e-9)
    assert ev.sites["a"]["late_waiting"] == pytest.approx(expected, rel=1e-9)
    # Between two tangent points the model takes the larger of the tangents, below the
    # curve h(r) = r^2 exp(-(1 - r)), h'(r) = (2 r + r^2) exp(-(1 - r)): at rho = 0.6
    # (W = 4,320 on 2 GPUs) the tangent at 0.5 or at 0.75, times n dt_s / s = 3,600.
    ev = evaluate(c, one_option_schedule(c, 4320.0, 2.0))

    def h(r):
        return r**2 * np.exp(-(1 - r))

    def dh(r):
        return (2 * r + r**2) * np.exp(-(1 - r))

    tangents = max(h(r) + dh(r) * (0.6 - r) for r in (0.25, 0.5, 0.75, 1.0))
    assert ev.jobs["late_waiting"] == pytest.approx(3600 * tangents, rel=1e-7)
    assert ev.jobs["late_waiting"] < 3600 * h(0.6)
    # One more GPU: rho = 0.4 and fewer late jobs.
    assert evaluate(c, one_option_schedule(c, 4320.0, 3.0)).jobs["late_waiting"] < \
        ev.jobs["late_waiting"]


@pytest.mark.parametrize("model", ["kingman", "erlang-c"])
def test_cuts_are_valid_and_tangent_at_their_points(model):
    raw = queued(two_sites(TINY), model=model, pieces=5, ca2=1.7, cs2=0.3)
    raw["sites"][1].update(gpus=7, util_cap=0.8)
    c = build(raw)
    for i, servers in ((0, 2), (1, 7)):
        s, slack = c.queue_service_s[i], c.queue_slack_s[i]
        servers = servers if model == "erlang-c" else 1
        top = c.util_cap[i]          # points between those compile fitted the cuts on
        rho = np.concatenate([top * (np.arange(4000) + 0.5) / 4000,
                              np.random.default_rng(i).uniform(0.0, top, 1000)])
        h = late_curve(rho, servers, slack, s, 2.0)
        a, b = c.queue_a[i] * s, c.queue_b[i] * s                  # cuts on h itself
        assert np.all(h[:, None] >= a[None, :] * rho[:, None] - b[None, :] - 1e-12)
        points = c.util_cap[i] * np.arange(1, 6) / 5
        at = late_curve(points, servers, slack, s, 2.0)
        np.testing.assert_allclose(a * points - b, at, rtol=1e-9, atol=1e-12)
        if model == "kingman":       # h = r^2 exp(-theta (1 - r)): h' by hand
            theta = 2 * slack / (s * 2.0)
            slope = (2 * points + theta * points**2) * np.exp(-theta * (1 - points))
            np.testing.assert_allclose(a, slope, rtol=1e-6)


def test_erlang_c_against_closed_forms():
    rho = np.linspace(0.0, 1.0, 11)
    np.testing.assert_allclose(erlang_c(1, rho), rho)                     # M/M/1
    np.testing.assert_allclose(erlang_c(2, rho), 2 * rho**2 / (1 + rho))  # M/M/2


def assert_same_compiled(a, b) -> None:
    """Every array and scalar of two compiled scenarios is equal (shapes included)."""
    for key, value in a.arrays().items():
        other = getattr(b, key)
        if isinstance(value, np.ndarray):
            assert value.shape == other.shape and np.array_equal(value, other), key
        else:
            assert value == other, key


def test_queueing_off_leaves_every_number_unchanged():
    raw = copy.deepcopy(TINY)
    off = build(raw)
    disabled = build(queued(raw, enabled=False, pieces=6))
    assert_same_compiled(off, disabled)
    assert not off.queueing and off.queue_a.shape == (1, 0)
    ev = evaluate(off, one_option_schedule(off, 100.0, 1.0))
    assert "late_waiting" not in ev.jobs and ev.class_late is None
    assert "class_late" not in ev.to_dict()
    # Everything downstream reads only these arrays, so they being equal is the check.
    assert "class_late" not in solve(off, "highs", relax=False).to_dict()


def test_a_tight_deadline_powers_more_gpus():
    """Idle GPUs cost energy, so without queueing the oracle powers the fewest that fit;
    with queueing and a 4 s deadline it powers more (or steps down) to cut late jobs."""
    raw = copy.deepcopy(TINY)
    raw["models"][0]["gpu_idle_kw"] = 0.3
    raw["sites"][0]["gpus"] = 6
    raw["classes"][0].update(arrivals=[9000.0, 9000.0], late_penalty=0.01)
    off = solve(build(raw), "highs", relax=False, mip_gap=1e-9)
    c_on = build(queued(raw, pieces=8))
    on = solve(c_on, "highs", relax=False, mip_gap=1e-9)
    assert off.schedule.n.sum() < on.schedule.n.sum()
    # Scored under queueing, today's schedule has more late jobs and less utility.
    before = evaluate(c_on, off.schedule, milp=True)
    assert on.evaluation.jobs["late_waiting"] < before.jobs["late_waiting"]
    assert on.evaluation.utility > before.utility
    assert on.evaluation.jobs["late_waiting"] > 0


def test_backends_agree_with_queueing_on_the_tight_scenario():
    raw = copy.deepcopy(TINY)
    raw["models"][0]["gpu_idle_kw"] = 0.3
    raw["sites"][0]["gpus"] = 6
    raw["classes"][0]["arrivals"] = [9000.0, 7000.0]
    for model in ("kingman", "erlang-c"):
        c = build(queued(two_sites(raw), model=model, pieces=5))
        for relax in (True, False):
            objs = [solve(c, b, relax=relax, mip_gap=1e-9).objective
                    for b in ("pyomo", "cvxpy", "highs")]
            assert max(objs) - min(objs) <= 1e-6 * max(1.0, abs(objs[0])), (model, objs)


def assert_size_is_the_built_one(c, relax: bool) -> None:
    """model_size (from dimensions) matches the built matrix and Pyomo's model."""
    size = model_size(c, relax)
    m = build_matrix(c, relax)
    assert (size.n_vars, size.n_cons) == (m.n_vars, m.n_cons)
    assert m.A.nnz <= size.nnz <= 1.1 * m.A.nnz
    pyomo = solve(c, "pyomo", relax=relax)
    assert (pyomo.n_vars, pyomo.n_cons) == (size.n_vars, size.n_cons)


@pytest.mark.parametrize("relax", [True, False])
def test_model_size_counts_the_queueing_rows(relax):
    for c in (build(queued(TINY, pieces=3)), queued_small(0, pieces=4)):
        assert_size_is_the_built_one(c, relax)
    # TINY by hand: 26 variables + lq 1x2; rows: conservation, gpu capacity, balance, peak
    # import, soc recursion (2 each), terminal soc (1), + 3 cuts x 1 site x 2 slots.
    assert model_size(build(queued(TINY, pieces=3)), relax=True).n_vars == 28
    assert model_size(build(queued(TINY, pieces=3)), relax=True).n_cons == 11 + 6


def test_env_repair_powers_more_gpus_when_late_jobs_cost_more():
    """The repair powers the fewest GPUs that fit, then one more while the late jobs it
    saves are worth more than its idle draw: with queueing on it powers more."""
    raw = copy.deepcopy(TINY)
    raw["models"][0]["gpu_idle_kw"] = 0.3
    raw["sites"][0]["gpus"] = 6
    raw["classes"][0]["arrivals"] = [9000.0, 9000.0]
    gpus = {}
    for name, r in (("off", raw), ("on", queued(raw))):
        c = build(r)
        core = BatchedCore(DayBank.from_compiled([c]), 1, EnvConfig(record=True))
        core.reset()
        total = 0.0
        for _ in range(c.T):
            plan = np.zeros((1, c.K, c.O))
            plan[0, 0, c.option_index(0, 10, 1.0)] = 9000.0
            _, reward, _, _ = core.step_plan(plan, np.zeros((1, c.I)))
            total += reward[0]
        ev = evaluate(c, core.schedule(0), milp=True)
        assert ev.feasible, ev.violations[:3]
        assert total == pytest.approx(ev.utility, rel=1e-9)
        gpus[name] = core.schedule(0).n.sum()
        if name == "on":
            assert ev.jobs["late_waiting"] > 0
    assert gpus["off"] == 2 * 3 and gpus["on"] > gpus["off"]     # 9,000 GPU-s: 3 GPUs


@pytest.mark.parametrize(("section", "key", "text"), [
    ({"pieces": 0}, "queueing.pieces", "integer in [1, 64]"),
    ({"model": "mm1"}, "queueing.model", "'erlang-c' or 'kingman'"),
    ({"ca2": 0.0, "cs2": 0.0}, "queueing.cs2", "ca2 + cs2 must be > 0"),
    ({"cs2": -1.0}, "queueing.cs2", "must be in [0, 100]"),
    ({"slack": 3}, "queueing.slack", ""),
])
def test_bad_queueing_sections_are_refused_on_one_line(section, key, text):
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(queued(TINY, **section))
    msg = str(err.value)
    assert msg.startswith(key) and text in msg and "\n" not in msg, msg


def test_erlang_c_refuses_a_site_too_large_for_its_recursion():
    raw = queued(TINY)
    raw["sites"][0]["gpus"] = 200_000
    with pytest.raises(ScenarioError, match=r"^sites\[0\]\.gpus: must be at most 100,000"):
        scenario_from_dict(raw)


def test_slack_counts_the_transfer_and_deferrable_work_never_waits_late():
    raw = queued(two_sites(TINY))
    raw["network"]["transfer_latency_s"] = [[0.0, 1.5], [1.5, 0.0]]
    # Site b is 1.5 s from the class's home: options of 1 and 2 s are on time there
    # (1.5 + 3 > 4 is not), so s = 1.5 s and the slack is 4 - 1.5 - 1.5 = 1 s.
    c = build(raw)
    assert c.queue_service_s.tolist() == pytest.approx([2.0, 1.5])
    assert c.queue_slack_s.tolist() == pytest.approx([2.0, 1.0])
    # A looser class homed at b (10 s, $0.05): each site is now some class's home, and
    # its home class sets its reference (a class routed in is served earliest deadline
    # first). Site a keeps c's s = 2 s, slack 2 s and $0.01; site b gets c2's: all four
    # options on time, s = (2 + 1 + 6 + 3) / 4 = 3 s, slack 10 - 0 - 3 = 7 s, $0.05.
    # (Before, a's reference pooled both classes: s = 18/7 s, slack 2 s, $0.03.)
    loose = copy.deepcopy(raw)
    loose["classes"].append(dict(raw["classes"][0], name="c2", home="b", deadline_s=10.0,
                                 late_penalty=0.05))
    c = build(loose)
    assert c.queue_service_s.tolist() == pytest.approx([2.0, 3.0])
    assert c.queue_slack_s.tolist() == pytest.approx([2.0, 7.0])
    assert c.queue_penalty.tolist() == pytest.approx([0.01, 0.05])
    cls = raw["classes"][0]
    cls.update(kind="deferrable", max_wait_slots=1, wait_cost=0.001, arrivals=[7000.0, 0.0])
    del cls["deadline_s"], cls["late_penalty"]
    c = build(raw)                    # no interactive class: no cut has a slope
    assert c.queueing and not c.queue_a.any() and not c.queue_penalty.any()
    x = np.zeros((c.K, c.O, c.T))
    x[0, c.option_index(0, 10, 1.0), 0] = 7000.0                  # rho = 0.97 on 2 GPUs
    ev = evaluate(c, complete(c, x, np.zeros((c.K, c.T)), np.array([[2.0, 0.0], [0, 0]])))
    assert ev.feasible and ev.jobs["late_waiting"] == 0.0 and ev.terms["late"] == 0.0


def test_an_exported_scenario_keeps_its_queueing_section():
    from optsched.scenario.load import dumps_scenario, loads_scenario

    sc = scenario_from_dict(queued(TINY, model="erlang-c", pieces=3, ca2=2.5))
    back = loads_scenario(dumps_scenario(sc))
    assert back.queueing == sc.queueing and back.queueing.ca2 == 2.5
    assert "queueing" not in dumps_scenario(scenario_from_dict(TINY))


@pytest.mark.parametrize(("gpus", "rho", "deadline"), [(4, 0.75, 1.5), (8, 0.8, 1.3)])
def test_default_late_rate_matches_the_simulated_m_d_c_queue(gpus, rho, deadline):
    """The fluid model's default late rate (Erlang C, ca2 = 1, cs2 = 0) against the per-job
    simulator on the queue it describes: Poisson arrivals, every job 1 GPU-second, all GPUs
    on, one class, only the 1 s option on time (slack = deadline - 1 s). Allen-Cunneen is
    an approximation: within 15% of the simulated rate (3 seeds; it was 50% above it with
    the old default cs2 = 1, exponential service, which the simulator does not have)."""
    from optsched.sim import ColdStart, simulate

    raw = queued(TINY, pieces=20)
    raw["sites"][0]["gpus"] = gpus
    n = rho * gpus * 3600.0
    raw["classes"][0].update(arrivals=[n, n], deadline_s=deadline)
    c = build(raw)
    assert c.queue_service_s[0] == 1.0 and c.queue_slack_s[0] == pytest.approx(deadline - 1)
    x = np.zeros((c.K, c.O, c.T))
    x[0, c.option_index(0, 10, 1.0)] = n
    s = complete(c, x, np.zeros((c.K, c.T)), np.full((1, 2), float(gpus)))
    fluid = evaluate(c, s).class_late["c"]["late_rate"]
    sim = np.mean([simulate(c, s, seed=seed, cold_start=ColdStart.none()).late_rate[0]
                   for seed in range(3)])
    assert 0.1 < sim < 0.3
    assert fluid == pytest.approx(sim, rel=0.15)
