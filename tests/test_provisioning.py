"""Provisioning before arrivals (docs/model.md): GPUs started in a slot lose cold_start_s
of service each and draw idle power while they load. A hand-computed evaluation, the
oracle keeping GPUs on through a dip when starting them costs more than idling, the
option off leaving every number as it was, and the schema's errors."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest

from optsched.errors import ScenarioError
from optsched.evaluator import evaluate
from optsched.oracle import model_size, solve
from optsched.scenario import compile_scenario, scenario_from_dict
from optsched.scenario.load import dumps_scenario
from optsched.scenario.schema import Provisioning, Queueing
from optsched.schedule import complete
from optsched.sim import ColdStart, simulate
from tests.conftest import TINY, small_scenario
from tests.test_queueing import assert_same_compiled, assert_size_is_the_built_one, build


def provisioned(raw: dict, **section) -> dict:
    raw = copy.deepcopy(raw)
    raw["provisioning"] = section
    return raw


def provisioned_small(seed: int, cold_start_s: float, idle_kw: float = 0.3,
                      queueing: dict | None = None):
    """conftest's small_scenario(seed) with GPUs idling at idle_kw, a [provisioning]
    section and, when given, a [queueing] one."""
    def with_sections(sc):
        models = [m.model_copy(update={"gpu_idle_kw": idle_kw}) for m in sc.models]
        update = {"models": models, "provisioning": Provisioning(cold_start_s=cold_start_s)}
        if queueing is not None:
            update["queueing"] = Queueing(**queueing)
        return compile_scenario(sc.model_copy(update=update))

    with mock.patch("tests.conftest.compile_scenario", with_sections):
        return small_scenario(seed)


def hand_scenario() -> dict:
    """TINY with 6 GPUs idling at 0.3 kW; a job (10 steps, nominal clock) takes 1
    GPU-second and 360 J, of which 300 J are the idle floor: 60 J (1/60,000 kWh) busy."""
    raw = copy.deepcopy(TINY)
    raw["models"][0]["gpu_idle_kw"] = 0.3
    raw["sites"][0]["gpus"] = 6
    raw["classes"][0]["arrivals"] = [7200.0, 18000.0]
    return raw


def served(c, jobs: list[float], n: list[float]):
    x = np.zeros((c.K, c.O, c.T))
    x[0, c.option_index(0, 10, 1.0), :] = jobs
    y = np.maximum(c.arrivals - x.sum(axis=1), 0.0)
    return complete(c, x, y, np.array([n]))


def test_hand_computed_cold_starts():
    """n = [2, 5] over two one-hour slots with 360 s cold starts: start = [0, 3] (slot 0's
    GPUs are warm). Slot 1 serves util_cap (3,600 x 5 - 360 x 3) = 16,920 GPU-seconds, not
    18,000. IT power in slot 1: 0.3 x 5 idle + 16,920 / 60,000 busy + 0.3 x 3 x 360 / 3,600
    loading = 1.5 + 0.282 + 0.09 = 1.872 kW; slot 0: 0.6 + 0.12 = 0.72 kW."""
    c = build(provisioned(hand_scenario(), cold_start_s=360.0))
    assert c.commit and c.cold_start_s == 360.0
    s = served(c, [7200.0, 16920.0], [2.0, 5.0])
    np.testing.assert_array_equal(s.start, [[0.0, 3.0]])
    ev = evaluate(c, s)
    assert ev.feasible, ev.violations
    np.testing.assert_allclose(ev.site_series["it_kw"], [[0.72, 1.872]], rtol=1e-12)
    site = ev.sites["a"]
    assert site["gpu_starts"] == 3.0
    assert site["cold_start_kwh"] == pytest.approx(0.09, rel=1e-12)
    assert site["it_kwh"] == pytest.approx(0.72 + 1.872, rel=1e-12)
    # energy: PUE 1.5, prices $100 and $200 /MWh, battery idle
    assert ev.terms["energy"] == pytest.approx(1.5 * (0.72 * 0.1 + 1.872 * 0.2), rel=1e-12)
    np.testing.assert_array_equal(ev.site_series["gpus_started"], [[0.0, 3.0]])

    # One job more than the loading GPUs leave room for is over capacity, by one second.
    over = evaluate(c, served(c, [7200.0, 16921.0], [2.0, 5.0]))
    assert over.violation_counts == {"gpu capacity": 1}
    assert over.violations[0].slot == 1 and over.violations[0].amount == pytest.approx(1.0)
    # Fewer starts than the rise of n is refused; so is a negative start.
    fewer = evaluate(c, dataclasses.replace(s, start=np.array([[0.0, 2.0]])))
    assert fewer.violation_counts.get("gpu starts") == 1
    assert fewer.violations[0].amount == pytest.approx(1.0)
    negative = evaluate(c, dataclasses.replace(s, start=np.array([[-1.0, 3.0]])))
    assert "nonnegative start" in negative.violation_counts
    assert "gpu starts" not in negative.violation_counts      # slot 0 needs only >= 0
    with pytest.raises(ValueError, match="schedule.start: expected shape"):
        evaluate(c, dataclasses.replace(s, start=np.zeros((1, 3))))


def test_provisioning_off_scores_as_without_it():
    """Without the section, or with enabled = false, start is ignored: the same numbers and
    keys as before, even for a schedule whose start is nonsense."""
    raw = hand_scenario()
    off = build(raw)
    disabled = build(provisioned(raw, enabled=False, cold_start_s=360.0))
    assert not off.commit and not disabled.commit and disabled.cold_start_s == 0.0
    assert_same_compiled(off, disabled)
    s = served(off, [7200.0, 18000.0], [2.0, 5.0])
    assert not s.start.any()
    base = evaluate(off, s)
    assert base.feasible and "gpu_starts" not in base.sites["a"]
    assert "gpus_started" not in base.site_series
    for c in (off, disabled):
        odd = evaluate(c, dataclasses.replace(s, start=np.array([[-5.0, 0.0]])))
        assert odd.to_dict() == base.to_dict()
        assert np.array_equal(odd.slot_terms, base.slot_terms)
    # The oracle builds no start variable and returns the same optimum.
    on = build(provisioned(raw, cold_start_s=360.0))
    assert model_size(on, relax=False).n_vars == model_size(off, relax=False).n_vars + 2
    sols = [solve(c, "highs", relax=False, mip_gap=1e-9) for c in (off, disabled)]
    assert sols[0].objective == sols[1].objective
    assert sols[0].to_dict() | {"build_s": 0, "solve_s": 0} == \
        sols[1].to_dict() | {"build_s": 0, "solve_s": 0}
    assert not sols[1].schedule.start.any()


@pytest.mark.parametrize("value", [-1.0, 3600.5])
def test_bad_cold_start_is_refused_on_one_line(value):
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(provisioned(TINY, cold_start_s=value))
    msg = str(err.value)
    assert msg.startswith("provisioning.cold_start_s") and "\n" not in msg, msg


def test_cli_refuses_a_bad_cold_start_with_exit_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(dumps_scenario(scenario_from_dict(TINY))
                    + "\n[provisioning]\ncold_start_s = 4000.0\n")
    out = subprocess.run([sys.executable, "-m", "optsched.cli", "scenario", "validate",
                          str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("optsched: ") and out.stderr.count("\n") == 1
    assert "provisioning.cold_start_s" in out.stderr and out.stdout == ""


def dip_scenario() -> dict:
    """One site of 2 GPUs idling at 0.3 kW, one option (1 GPU-second and 60 J busy per
    job), PUE 1, $100/MWh, no battery, no carbon; 7,200 jobs (both GPUs full), then a dip
    to 1,800 (half a GPU), then 7,200 again, in one-hour slots."""
    raw = copy.deepcopy(TINY)
    raw["horizon"].update(slots=3, steps=[10], clocks=[1.0])
    raw["models"][0]["gpu_idle_kw"] = 0.3
    site = raw["sites"][0]
    del site["battery"]
    site.update(gpus=2, pue=1.0, price=[100.0] * 3, renewable_kw=[0.0] * 3,
                carbon_intensity=[0.0] * 3)
    raw["classes"][0]["arrivals"] = [7200.0, 1800.0, 7200.0]
    return raw


@pytest.mark.parametrize("relax", [False, True])
def test_oracle_keeps_gpus_on_through_a_dip_when_starting_costs_more(relax):
    """Switching one GPU off in the dip saves its idle draw, 0.3 kW x 1 h x $0.1/kWh =
    $0.03; starting it again costs 360 s of its service in the full slot (360 jobs
    dropped at $0.02 revenue + $0.03 penalty = $18) and 0.3 kW x 0.1 h of loading. So
    with cold starts every GPU stays on: n = [2, 2, 2], no start, and the utility is
    16,200 x $0.02 - $0.1/kWh x (0.3 kW x 6 GPU-h + 16,200 x 60 J) = 324 - 0.207. Without
    provisioning the dip's idle GPUs go off: n[1] = 1 (MILP) or 0.5 (LP)."""
    busy_kwh = 16200 * 60 / 3.6e6
    on = solve(build(provisioned(dip_scenario(), cold_start_s=360.0)), "highs", relax=relax,
               mip_gap=1e-9)
    np.testing.assert_allclose(on.schedule.n, [[2.0, 2.0, 2.0]], atol=1e-7)
    np.testing.assert_allclose(on.schedule.start, 0.0, atol=1e-7)
    assert on.objective == pytest.approx(324.0 - 0.1 * (0.3 * 6 + busy_kwh), rel=1e-9)
    assert on.evaluation.sites["a"]["gpu_starts"] == pytest.approx(0.0, abs=1e-7)

    dip = 0.5 if relax else 1.0
    off = solve(build(dip_scenario()), "highs", relax=relax, mip_gap=1e-9)
    np.testing.assert_allclose(off.schedule.n, [[2.0, dip, 2.0]], atol=1e-7)
    assert off.objective == pytest.approx(324.0 - 0.1 * (0.3 * (4 + dip) + busy_kwh),
                                          rel=1e-9)
    # Scored with cold starts, the schedule without them loses the restarted GPU's 360 s
    # (x util_cap 1) in the last slot: it is over capacity there.
    ev = evaluate(build(provisioned(dip_scenario(), cold_start_s=360.0)),
                  dataclasses.replace(off.schedule, start=np.array([[0.0, 0.0, 2.0 - dip]])))
    assert ev.violation_counts.get("gpu capacity") == 1 and ev.violations[0].slot == 2
    # A 0.1 s cold start costs less than idling ($0.005 + a little < $0.03): off again.
    cheap = solve(build(provisioned(dip_scenario(), cold_start_s=0.1)), "highs",
                  relax=relax, mip_gap=1e-9)
    assert cheap.schedule.n[0, 1] < 2.0 - 1e-6
    assert cheap.evaluation.sites["a"]["gpu_starts"] > 0


@pytest.mark.parametrize("relax", [True, False])
def test_model_size_counts_the_provisioning_rows(relax):
    for c in (build(provisioned(hand_scenario(), cold_start_s=360.0)),
              provisioned_small(0, 30.0, queueing={"pieces": 2})):
        assert_size_is_the_built_one(c, relax)
    # TINY by hand: 26 variables + start 1x2; rows: conservation, gpu capacity, balance,
    # peak import, soc recursion (2 each), terminal soc (1), + gpu starts 1 site x 2 slots.
    c = build(provisioned(TINY))
    assert (model_size(c, relax=True).n_vars, model_size(c, relax=True).n_cons) == (28, 13)


def test_simulation_counts_its_own_sampled_cold_starts_once():
    """The simulator books each start's sampled delay (here a fixed 10 s) as idle-GPU
    seconds; with provisioning on its realised utility must not add the fluid model's
    360 s per start on top: the same jobs and delays give the same realised terms as
    without provisioning, while the fluid numbers carry the 360 s."""
    raw = copy.deepcopy(hand_scenario())
    raw["classes"][0]["arrivals"] = [0.0, 2.0, 1.0]
    raw["horizon"]["slots"] = 3
    for key in ("price", "renewable_kw", "carbon_intensity"):
        raw["sites"][0][key] = [100.0, 100.0, 100.0]
    results = {}
    for name, r in (("off", raw), ("on", provisioned(raw, cold_start_s=360.0))):
        c = build(r)
        x = np.zeros((c.K, c.O, c.T))
        x[0, c.option_index(0, 10, 1.0)] = [0.0, 2.0, 1.0]
        s = complete(c, x, np.zeros((c.K, c.T)), np.array([[0.0, 1.0, 1.0]]))
        results[name] = simulate(c, s, cold_start=ColdStart(10.0, 10.0), seed=3)
    on, off = results["on"], results["off"]
    assert on.energy["cold_starts"] == 1
    assert on.energy["cold_start_kwh"] == pytest.approx(0.3 * 10 / 3600, rel=1e-12)
    assert on.terms == off.terms and on.energy == off.energy
    assert on.fluid["gpu_starts"] == 1.0 and "gpu_starts" not in off.fluid
    assert on.fluid["cold_start_kwh"] == pytest.approx(0.3 * 360 / 3600, rel=1e-12)
    assert on.fluid["it_kwh"] == pytest.approx(off.fluid["it_kwh"] + 0.03, rel=1e-12)
