"""The multisite-N family and the decomposed LP oracle (docs/model.md, "Decomposed oracle").

The oracle instances are multisite days cut to a few hours so that the monolithic LP, the
independent reference, solves in well under a second.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from optsched.errors import ScenarioError
from optsched.oracle import solve
from optsched.oracle.decompose import build_site, lagrangian_bound, solve_decomposed, solve_site
from optsched.scenario import compile_scenario, family, get_scenario, is_embedded, multisite
from optsched.scenario.load import scenario_from_dict


def short_day(n: int, day: int, slots: int):
    """Day `day` of multisite-n cut to its first `slots` slots."""
    raw = multisite.day_dict(n, day)
    raw["horizon"]["slots"] = slots
    for site in raw["sites"]:
        for key in ("price", "renewable_kw", "carbon_intensity"):
            site[key] = site[key][:slots]
    for cl in raw["classes"]:
        cl["arrivals"] = cl["arrivals"][:slots]
    return compile_scenario(scenario_from_dict(raw))


@pytest.fixture(scope="module")
def small():
    """(compiled, monolithic LP optimum) of multisite-3 day 4, first 3 hours (peak hours
    of the western sites' evening fall in them: the sites trade jobs)."""
    c = short_day(3, 4, 36)
    return c, solve(c, "highs", relax=True).objective


# ------------------------------------------------------------------ the family
def test_multisite_loads_with_n_sites_and_two_classes_each():
    assert is_embedded("multisite-4") and not is_embedded("multisite-x")
    sc = get_scenario("multisite-4", 9)
    assert len(sc.sites) == 4 and len(sc.classes) == 8
    names = {s.name for s in sc.sites}
    assert {c.home for c in sc.classes} == names
    kinds = sorted(c.kind for c in sc.classes if c.home == sc.sites[0].name)
    assert kinds == ["deferrable", "interactive"]
    assert sc.name == "multisite-4/day-009"
    assert family("multisite-4").test_days() == family("jemas-3").test_days()


def test_multisite_is_deterministic_and_its_sites_differ():
    a, b = multisite.day_dict(6, 12), multisite.day_dict(6, 12)
    assert a == b
    assert multisite.day_dict(6, 13) != a
    prices = np.array([s["price"] for s in a["sites"]])
    assert len({tuple(p) for p in prices}) == 6            # no two sites share a series
    assert family("multisite-6").fingerprint() != family("multisite-7").fingerprint()


@pytest.mark.parametrize("bad", ["multisite-1", "multisite-201"])
def test_multisite_refuses_a_size_out_of_range(bad):
    with pytest.raises(ScenarioError, match=r"^SCENARIO: multisite-N needs 2 <= N <= 200"):
        get_scenario(bad)


@pytest.mark.parametrize(("name", "message"), [
    ("multisite-03", "no such file or embedded scenario"),   # one spelling per family
    ("multisite-3x", "no such file or embedded scenario"),
    ("JEMAS-3", "no such file or embedded scenario"),       # not "--day: only applies"
    ("", "empty: give a TOML file"),                         # not the folder "."
    (" ", "empty: give a TOML file")])
def test_a_scenario_name_is_one_spelling_and_never_empty(name, message):
    from optsched.api import solve_days

    with pytest.raises(ScenarioError, match=rf"^SCENARIO: {message}"):
        get_scenario(name)
    with pytest.raises(ScenarioError, match=rf"^SCENARIO: {message}"):
        get_scenario(name, 4)
    with pytest.raises(ScenarioError, match=rf"^SCENARIO: {message}"):
        solve_days(name)


def test_transfer_latency_and_cost_follow_great_circle_distance():
    sites = multisite.sites(5)
    sc = get_scenario("multisite-5", 4)
    lat = np.radians([s.latitude for s in sites])
    lon = np.radians([s.longitude for s in sites])
    for i, j in ((0, 1), (1, 4), (2, 3)):
        # spherical law of cosines: a second formula for the same great circle
        cos_angle = (math.sin(lat[i]) * math.sin(lat[j])
                     + math.cos(lat[i]) * math.cos(lat[j]) * math.cos(lon[j] - lon[i]))
        km = 6371.0088 * math.acos(min(1.0, cos_angle))
        assert sc.network.transfer_latency_s[i][j] == pytest.approx(
            0.12 + 1.5 * km / 200000.0, abs=2e-6)
        assert sc.network.transfer_cost[i][j] == pytest.approx(5e-5 + 5e-8 * km, abs=2e-8)
        assert sc.network.transfer_latency_s[j][i] == sc.network.transfer_latency_s[i][j]
    assert all(sc.network.transfer_latency_s[i][i] == 0.0 for i in range(5))
    # Philadelphia to San Jose is about 4,000 km (hand-checked): the formula's scale.
    assert multisite.haversine_km(39.964848, -75.1676, 37.434093, -121.95479) == \
        pytest.approx(4010, rel=0.01)


# ------------------------------------------------------------------ the oracle
def test_decomposition_converges_to_the_monolithic_lp(small):
    c, mono = small
    d = solve_decomposed(c, tol=1e-7)
    assert d.converged
    assert abs(d.utility - mono) <= 1e-4 * abs(mono)
    assert d.bound >= mono - 1e-6 * abs(mono)
    assert d.evaluation.feasible, d.evaluation.violations[:3]
    assert d.admitted < d.eligible            # it never needed every (class, option) pair


@pytest.mark.parametrize("n,day", [(2, 4), (3, 9), (4, 14)])
def test_every_bound_is_above_and_every_primal_below_the_optimum(n, day):
    c = short_day(n, day, 24)
    mono = solve(c, "highs", relax=True).objective
    d = solve_decomposed(c, tol=1e-7, max_iter=2)          # stopped early on purpose
    eps = 1e-6 * abs(mono)
    assert all(bound >= mono - eps and primal <= mono + eps for bound, primal in d.history)
    assert d.bound >= mono - eps and d.utility <= mono + eps
    assert d.evaluation.feasible
    assert d.gap == pytest.approx((d.bound - d.utility) / max(1.0, abs(d.bound)))


def test_the_lagrangian_bound_holds_for_any_prices(small):
    """Weak duality, checked at prices nothing optimised: any lam >= -drop_penalty."""
    c, mono = small
    problems = [build_site(c, i) for i in range(c.I)]
    rng = np.random.default_rng(0)
    top = c.value.max()
    for _ in range(3):
        lam = rng.uniform(-c.drop_penalty[:, None], top, size=(c.K, c.T))
        g = lagrangian_bound(c, lam, [solve_site(p, lam).objective for p in problems])
        assert g >= mono - 1e-6 * abs(mono)


def test_a_site_plan_respects_its_site(small):
    """A site's answer to prices is a plan of that site alone: it serves only options there,
    within its GPUs, and its utility is its own columns' (prices excluded)."""
    c, _ = small
    p = build_site(c, 1)
    lam = np.full((c.K, c.T), -0.001)
    r = solve_site(p, lam)
    assert (c.opt_site[p.opts] == 1).all()
    served_gpu_s = np.zeros(c.T)
    np.add.at(served_gpu_s, r.w_index % c.T, c.gpu_s[p.opts[r.w_index // c.T]] * r.w_value)
    n = r.site_values[p.blocks["n"]]
    assert (served_gpu_s <= c.util_cap[1] * c.dt_s * n + 1e-6).all()
    assert r.objective == pytest.approx(r.utility - float((lam[r.w_class, r.w_index % c.T]
                                                            * r.w_value).sum()))


def test_queueing_is_refused(small):
    c, _ = small
    q = dataclasses.replace(c, queue_a=np.ones((c.I, 1)), queue_b=np.zeros((c.I, 1)))
    with pytest.raises(ScenarioError, match="^queueing: "):
        solve_decomposed(q)


def test_the_first_master_starts_at_the_union_of_the_local_optima(small):
    """The home-only master is block-diagonal by site: the sites' local optimal bases,
    placed where each local row and column sits in it, are its optimal basis."""
    from optsched.oracle.decompose import _Master, local_view, solve_local

    c, _ = small
    home = c.eligible & (c.opt_site[None, :] == c.home[:, None])
    warm, cold = _Master(c, home), _Master(c, home)
    assert warm.warm([solve_local(local_view(c, i)) for i in range(c.I)])
    u_warm, lam_warm = warm.solve()
    assert warm.h.getInfo().simplex_iteration_count == 0
    u_cold, _ = cold.solve()
    assert cold.h.getInfo().simplex_iteration_count > 0
    assert u_warm == pytest.approx(u_cold, rel=1e-9)
    assert (lam_warm >= -c.drop_penalty[:, None] - 1e-9).all()


def test_cli_solve_decompose_reports_a_certified_bound(tmp_path):
    """`optsched solve multisite-2 --decompose --json`: the bound is at least the
    utility and their gap within the tolerance asked; the schedule is written; a time
    limit (the decomposition stops on its gap) is refused in one line, exit 2."""
    import json
    import subprocess
    import sys

    run = [sys.executable, "-m", "optsched.cli", "solve", "multisite-2", "--day", "4",
           "--decompose", "--gap-tol", "1e-3"]
    done = subprocess.run([*run, "--json", "--out", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    assert r["bound"] >= r["utility"] and r["feasible"] and r["converged"]
    assert (r["bound"] - r["utility"]) <= 1e-3 * abs(r["bound"]) + 1e-9
    assert (tmp_path / "d" / "schedule.npz").exists()
    bad = subprocess.run([*run, "--time-limit", "5"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "--decompose" in bad.stderr


def test_repaired_prices_price_out_every_column_of_the_full_model(small):
    """With the master's site duals, the repaired prices leave no x column of the full
    model (every class at every eligible option, not only the admitted) a positive reduced
    cost, and raise the master's prices only where some column had one."""
    from optsched.oracle.decompose import _Master
    from optsched.oracle.matrix import build_matrix

    c, _ = small
    home = c.eligible & (c.opt_site[None, :] == c.home[:, None])
    master = _Master(c, home)
    _, lam = master.solve()
    lam = np.maximum(lam, -c.drop_penalty[:, None])
    rep = master.repaired([build_site(c, i) for i in range(c.I)], lam)
    full = build_matrix(c, relax=True)             # same rows as the master, all columns
    y = -np.asarray(master.h.getSolution().row_dual)
    x = full.blocks["x"]

    def worst(prices):
        y[master.cons] = prices.ravel()
        return (full.cost[x] - full.A[:, x].T @ y).max()

    assert worst(lam) > 1e-4                       # transfers pay at the home-only prices
    assert worst(rep) <= 1e-9
    assert (rep >= lam).all() and (rep > lam).any()


# ------------------------------------------------------------------ balanced clusters
def test_balanced_clusters_deal_sites_in_snake_order():
    """Scores 5,1,4,2,3,0 in groups of 2: by score the sites are 0,2,4,3,1,5, dealt to
    groups 0,1,2 then back 2,1,0 (hand-dealt)."""
    from optsched.oracle.decompose import balanced_clusters

    groups = balanced_clusters(np.array([5.0, 1.0, 4.0, 2.0, 3.0, 0.0]), 2)
    assert [g.tolist() for g in groups] == [[0, 5], [1, 2], [3, 4]]
    assert [g.tolist() for g in balanced_clusters(np.array([1.0, 2.0, 3.0]), 5)] == \
        [[0, 1, 2]]


def test_the_clusters_schedule_is_the_sum_of_their_optima_and_feasible():
    """Disjoint clusters' LPs assembled into one schedule of the full day: the evaluator
    finds it feasible and scores it at the sum of the cluster optima (utility is a sum
    over sites and classes); with transfers inside a cluster it is no worse than every
    class at home."""
    from optsched.oracle.decompose import assemble, cluster_view, solve_cluster

    c = short_day(4, 9, 24)
    parts, total = [], 0.0
    for group in ([0, 3], [1, 2]):
        ks, opts, view = cluster_view(c, group)
        r = solve_cluster(view)
        parts.append((ks, opts, np.array(group), r.schedule))
        total += r.objective
    from optsched.evaluator import evaluate

    ev = evaluate(c, assemble(c, parts), tol=1e-5)
    assert ev.feasible, ev.violations[:3]
    assert ev.utility == pytest.approx(total, rel=1e-7)
    home = c.eligible & (c.opt_site[None, :] == c.home[:, None])
    at_home = solve(dataclasses.replace(c, eligible=home), "highs", relax=True).objective
    assert ev.utility >= at_home - 1e-6 * abs(at_home)


@pytest.mark.parametrize("n,day", [(4, 9), (6, 4)])
def test_the_clusters_bound_and_primal_hold_and_the_rounds_still_converge(n, day):
    """Clusters of 2 on a short multisite day: the bound from their repaired prices is
    above the monolithic optimum and their schedule below it (round 0 of the history);
    the run still converges to the optimum within 1e-4."""
    c = short_day(n, day, 24)
    mono = solve(c, "highs", relax=True).objective
    d = solve_decomposed(c, tol=1e-6, cluster_size=2)
    eps = 1e-6 * abs(mono)
    assert d.clusters == n // 2
    bound0, primal0 = d.history[0]
    assert bound0 >= mono - eps and primal0 <= mono + eps
    assert d.converged and abs(d.utility - mono) <= 1e-4 * abs(mono)
    assert d.evaluation.feasible


def test_a_bad_cluster_size_is_refused(small):
    c, _ = small
    for bad in (-1, 2.5, True):
        with pytest.raises(ScenarioError, match="^--cluster-size: "):
            solve_decomposed(c, cluster_size=bad)


def test_the_default_cluster_size_grows_with_the_square_root_of_the_sites():
    """max(5, round(sqrt(N / 2))), by hand: 5 up to 60 sites, 7 at 100, 10 at 200."""
    from optsched.oracle.decompose import cluster_size_for

    assert [cluster_size_for(n) for n in (2, 10, 30, 60, 100, 200)] == [5, 5, 5, 5, 7, 10]
