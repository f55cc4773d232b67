"""Property tests: random feasible schedules pass the evaluator; perturbed ones are caught."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optsched.evaluator import evaluate
from optsched.schedule import complete
from tests.conftest import small_scenario


def random_feasible(c, rng):
    """Serve a random share of what is pending, within capacity, FCFS within the limit."""
    n = rng.integers(0, c.gpus.astype(int) + 1, size=(c.T, c.I)).T.astype(float)
    x = np.zeros((c.K, c.O, c.T))
    y = np.zeros((c.K, c.T))
    backlog = np.zeros(c.K)
    for t in range(c.T):
        left = c.util_cap * c.dt_s * n[:, t]
        if c.commit and t > 0:      # provisioning: GPUs switched on load first
            left = np.maximum(left - c.util_cap * c.cold_start_s
                              * np.maximum(n[:, t] - n[:, t - 1], 0.0), 0.0)
        for k in range(c.K):
            pending = backlog[k] + c.arrivals[k, t]
            eligible = np.flatnonzero(c.eligible[k])
            weights = rng.dirichlet(np.ones(len(eligible)))
            want = rng.uniform(0, 1) * pending * weights
            gpu = c.gpu_s[eligible] * want
            site_use = np.bincount(c.opt_site[eligible], gpu, minlength=c.I)
            scale = np.min(np.where(site_use > 0, left / np.maximum(site_use, 1e-12), 1.0))
            take = want * min(1.0, scale)
            x[k, eligible, t] = take
            left -= np.bincount(c.opt_site[eligible], c.gpu_s[eligible] * take, minlength=c.I)
            rest = pending - take.sum()
            y[k, t] = max(rest - c.backlog_cap[k, t], 0.0) + rng.uniform(0, 0.1) * min(
                rest, c.backlog_cap[k, t])
            backlog[k] = rest - y[k, t]
    ch, dis = np.zeros((c.I, c.T)), np.zeros((c.I, c.T))
    soc = c.soc0.copy()
    for t in range(c.T):
        room = (c.soc_max - soc) / (c.dt_h * c.eta_c)
        avail = (soc - c.soc_min) * c.eta_d / c.dt_h
        charge = rng.random(c.I) < 0.5
        ch[:, t] = np.where(charge, rng.uniform(0, 1, c.I) * np.minimum(c.ch_max, room), 0)
        dis[:, t] = np.where(~charge, rng.uniform(0, 1, c.I) * np.minimum(c.dis_max, avail), 0)
        soc = soc + c.dt_h * (c.eta_c * ch[:, t] - dis[:, t] / c.eta_d)
    r = rng.uniform(0, 1, (c.I, c.T)) * c.renewable
    return complete(c, x, y, n, ch, dis, r)


def day_terms(c, s) -> dict[str, float]:
    """MODEL.md's objective written out over the whole day, a second implementation of the
    evaluator's slot-by-slot booking: the demand charge on each site's peak import of the
    day, the terminal purchase of the end-of-day shortfall, every other term a plain sum
    over slots."""
    terms = {"revenue": 0.0, "transfer": 0.0, "late": 0.0}
    for k in range(c.K):
        for o in range(c.O):
            jobs = s.x[k, o].sum()
            terms["revenue"] += c.revenue[k, o] * jobs
            terms["transfer"] += c.transfer[k, o] * jobs
            terms["late"] += c.late_cost[k, o] * jobs
    terms["drop"] = float(c.drop_penalty @ s.y.sum(axis=1))
    terms["wait"] = float(c.wait_cost @ s.q.sum(axis=1))
    kwh_in, kwh_out = c.dt_h * s.b, c.dt_h * s.z
    terms["energy"] = float((c.price / 1e3 * (kwh_in - c.sell_factor[:, None] * kwh_out)).sum())
    terms["demand"] = float(c.demand_charge @ s.b.max(axis=1))
    terms["degradation"] = float(c.deg_cost @ (c.dt_h * (s.ch + s.dis)).sum(axis=1))
    terms["carbon"] = c.carbon_price * float((c.ci / 1e6 * kwh_in).sum())
    terms["terminal"] = float(np.maximum(c.soc0 - s.soc[:, -1], 0.0) @ c.terminal_price)
    return terms


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_random_feasible_schedules_pass_and_score_as_the_day_adds_up(seed):
    c = dataclasses.replace(small_scenario(seed), carbon_price=50.0)
    s = random_feasible(c, np.random.default_rng(seed))
    ev = evaluate(c, s, milp=True)
    assert ev.feasible, ev.violations[:5]
    want = day_terms(c, s)
    frame = ev.slots_frame()
    for name, value in want.items():
        assert ev.terms[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name
        assert frame[name].sum() == pytest.approx(value, rel=1e-9, abs=1e-9), name
    utility = want.pop("revenue") - sum(want.values())
    assert ev.utility == pytest.approx(utility, rel=1e-9, abs=1e-9)
    assert frame["utility"].sum() == pytest.approx(utility, rel=1e-9, abs=1e-9)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), cold_start_s=st.floats(0.0, 900.0))
def test_random_schedules_with_provisioning_count_their_starts(seed, cold_start_s):
    """With [provisioning] on, a random schedule within the cold-start capacity passes;
    its starts and loading energy are those counted by hand here, GPU by GPU, and the
    utility still adds up over the day. One start fewer than the rise is caught."""
    from tests.test_provisioning import provisioned_small

    c = provisioned_small(seed, cold_start_s, idle_kw=0.4)
    s = random_feasible(c, np.random.default_rng(seed))
    ev = evaluate(c, s, milp=True)
    assert ev.feasible, ev.violations[:5]
    for i, site in enumerate(c.sites):
        starts = sum(max(s.n[i, t] - s.n[i, t - 1], 0.0) for t in range(1, c.T))
        loading = starts * 0.4 * cold_start_s / 3600.0
        busy = sum(c.busy_kwh[o] * s.x[:, o].sum() for o in range(c.O) if c.opt_site[o] == i)
        assert ev.sites[site]["gpu_starts"] == pytest.approx(starts, abs=1e-12)
        assert ev.sites[site]["cold_start_kwh"] == pytest.approx(loading, rel=1e-12, abs=1e-15)
        assert ev.sites[site]["it_kwh"] == pytest.approx(
            0.4 * c.dt_h * s.n[i].sum() + busy + loading, rel=1e-9)
    want = day_terms(c, s)
    assert ev.utility == pytest.approx(want.pop("revenue") - sum(want.values()), rel=1e-9,
                                       abs=1e-9)
    rises = np.argwhere(np.diff(s.n, axis=1) > 0)
    if len(rises):
        i, t = rises[0]
        s.start[i, t + 1] -= 1.0
        assert evaluate(c, s).violation_counts.get("gpu starts") == 1


PERTURBATIONS = {
    "conservation": lambda s, c, rng, t: s.x.__setitem__(
        (0, int(np.flatnonzero(c.eligible[0])[0]), t), s.x[0, np.flatnonzero(c.eligible[0])[0],
                                                        t] + 5.0),
    "soc recursion": lambda s, c, rng, t: s.soc.__setitem__((0, t), s.soc[0, t] + 0.5),
    "balance": lambda s, c, rng, t: s.b.__setitem__((1, t), s.b[1, t] + 0.5),
    "gpus on": lambda s, c, rng, t: s.n.__setitem__((0, t), c.gpus[0] + 1),
    "renewable available": lambda s, c, rng, t: (
        s.r.__setitem__((0, t), c.renewable[0, t] + 1.0),
        s.b.__setitem__((0, t), s.b[0, t]), s.z.__setitem__((0, t), s.z[0, t] + 1.0)),
    "nonnegative y": lambda s, c, rng, t: (s.y.__setitem__((1, t), -5.0),
                                           s.q.__setitem__((1, t), s.q[1, t] + 5.0)),
}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), which=st.sampled_from(sorted(PERTURBATIONS)),
       slot=st.integers(0, 5))
def test_perturbed_schedules_are_caught(seed, which, slot):
    c = small_scenario(seed)
    s = random_feasible(c, np.random.default_rng(seed))
    PERTURBATIONS[which](s, c, np.random.default_rng(seed), slot)
    ev = evaluate(c, s)
    assert which in ev.violation_counts, (which, ev.violation_counts)
    assert any(v.constraint == which and v.slot is not None for v in ev.violations)
