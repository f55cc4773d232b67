"""Scenario forms, TOML round trips, compiled arrays and the embedded jemas-3 family."""

from __future__ import annotations

import numpy as np
import pytest

from optsched.evaluator import evaluate
from optsched.policies import local_fixed
from optsched.scenario import (
    compile_scenario,
    dumps_scenario,
    get_scenario,
    jemas3,
    load_scenario,
    loads_scenario,
    save_scenario,
    scenario_from_dict,
)
from optsched.scenario.compile import backlog_cap


def test_toml_round_trip_is_exact(tiny, tmp_path):
    sc = scenario_from_dict(tiny)
    text = dumps_scenario(sc)
    again = loads_scenario(text)
    assert again == sc
    assert dumps_scenario(again) == text
    save_scenario(sc, tmp_path / "s.toml")
    assert load_scenario(tmp_path / "s.toml").model_dump(exclude={"name"}) == \
        sc.model_dump(exclude={"name"})


def test_default_day_round_trips_through_toml(tmp_path):
    sc = get_scenario("jemas-3")
    save_scenario(sc, tmp_path / "day.toml")
    back = load_scenario(tmp_path / "day.toml")
    assert back == sc
    a, b = compile_scenario(sc), compile_scenario(back)
    for key, value in a.arrays().items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, getattr(b, key), err_msg=key)


def test_exported_day_writes_each_array_on_one_line(tmp_path):
    """Issue 15: the export wrote one number a line (4,584 lines for a day)."""
    sc = get_scenario("jemas-3", 4)
    save_scenario(sc, tmp_path / "day.toml")
    lines = (tmp_path / "day.toml").read_text().splitlines()
    assert len(lines) < 250, len(lines)
    # Every 288-slot series is one line: 3 sites x 3 series and 6 classes' arrivals.
    series = [ln for ln in lines if ln.count(",") == 287]
    assert len(series) == 3 * 3 + 6
    assert sorted({ln.split(" = ")[0] for ln in series}) == [
        "arrivals", "carbon_intensity", "price", "renewable_kw"]
    assert "transfer_cost = [[0.0, 0.0002, 0.0002], [0.0002, 0.0, 0.0002], " \
           "[0.0002, 0.0002, 0.0]]" in lines
    assert [f.name for f in tmp_path.iterdir()] == ["day.toml"]     # no temporary left
    back = load_scenario(tmp_path / "day.toml")
    a, b = compile_scenario(sc), compile_scenario(back)
    for key, value in a.arrays().items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, getattr(b, key), err_msg=key)


def test_series_from_csv_and_hourly_values(tiny, tmp_path):
    (tmp_path / "p.csv").write_text("hour,usd\n0,10\n1,20\n2,30\n3,40\n")
    tiny["horizon"].update(slot_minutes=30, slots=4)
    site = tiny["sites"][0]
    site["price"] = {"csv": "p.csv", "column": "usd", "scale": 2.0, "start": 1, "hourly": True}
    site["renewable_kw"] = {"values": [1.0, 2.0], "hourly": True}
    site["carbon_intensity"] = [1.0, 2.0, 3.0, 4.0]
    tiny["classes"][0]["arrivals"] = {"csv": "p.csv", "column": "usd"}
    (tmp_path / "s.toml").write_text("")          # base_dir is the scenario's folder
    sc = scenario_from_dict(tiny, tmp_path)
    assert sc.sites[0].price == [40.0, 40.0, 60.0, 60.0]
    assert sc.sites[0].renewable_kw == [1.0, 1.0, 2.0, 2.0]
    assert sc.classes[0].arrivals == [10.0, 20.0, 30.0, 40.0]
    assert sc.sites[0].pue == [1.5] * 4          # a scalar PUE is one value per slot


def test_site_level_hourly_flag_applies_to_inline_series(tiny):
    tiny["horizon"].update(slot_minutes=30, slots=4)
    site = tiny["sites"][0]
    site.update(hourly=True, price=[1.0, 2.0], renewable_kw=[0.0, 0.0],
                carbon_intensity=[5.0, 6.0])
    tiny["classes"][0]["arrivals"] = [1.0, 2.0, 3.0, 4.0]
    sc = scenario_from_dict(tiny)
    assert sc.sites[0].price == [1.0, 1.0, 2.0, 2.0]


@pytest.mark.parametrize(("spec", "expected"), [
    ({"csv": "missing.csv"}, "sites[0].price.csv: file not found"),
    ({"csv": "p.csv", "column": "nope"}, "sites[0].price.column: no such column in p.csv"),
    ({"csv": "p.csv", "column": "usd", "start": 3}, "p.csv has 4 rows, 2 needed from row 3"),
    ({"csv": "p.csv", "colum": "usd"}, "sites[0].price.colum: unknown key (did you mean"),
    ({"csv": "p.csv", "column": "txt"}, "non-numeric or missing value in p.csv row 1 ("),
])
def test_csv_series_errors(tiny, tmp_path, spec, expected):
    from optsched.errors import ScenarioError

    (tmp_path / "p.csv").write_text("usd,txt\n10,1\n20,x\n30,3\n40,4\n")
    tiny["sites"][0]["price"] = spec
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(tiny, tmp_path)
    assert expected in str(info.value)


def test_backlog_cap_is_the_sparse_waiting_bound():
    lam = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    cap = backlog_cap(lam, np.array([2, 0]))
    assert cap[0].tolist() == [1.0, 3.0, 5.0, 7.0, 0.0]     # last 2 slots' arrivals; 0 at end
    assert cap[1].tolist() == [0.0] * 5                       # interactive: never waits


def test_compiled_derived_quantities_follow_model_md():
    c = compile_scenario(get_scenario("jemas-3"))
    assert c.O == 3 * 10 * 3 and c.K == 6 and c.T == 288
    o = c.option_index(2, 30, 0.7)                # SD3 at ERCOT, 30 steps, 70% clock
    assert c.gpu_s[o] == pytest.approx(0.0 + 30 * 0.126 / 0.7)
    assert c.energy_j[o] == pytest.approx(30 * 56.5 * (0.3 / 0.7 + 0.7 * 0.49))
    assert c.busy_kwh[o] == pytest.approx((c.energy_j[o] - 80.0 * c.gpu_s[o]) / 3.6e6)
    k = c.classes.index("ercot-interactive")
    assert c.latency_s[k, o] == pytest.approx(c.gpu_s[o])
    assert c.late[k, o] == (c.gpu_s[o] > 6.0)
    remote = c.option_index(0, 10, 1.0)           # SD 1.5 at PJM: Q < 0.5 floor
    assert not c.eligible[k, remote]
    np.testing.assert_allclose(c.value, c.revenue - c.transfer - c.late_cost)
    assert (c.busy_kwh >= 0).all()


def test_jemas3_days_are_reproducible_and_split():
    assert len(jemas3.test_days()) == 73 and len(jemas3.train_days()) == 292
    assert set(jemas3.test_days()).isdisjoint(jemas3.train_days())
    a, b = jemas3.day_dict(100), jemas3.day_dict(100)
    assert a == b
    other = jemas3.day_dict(101)
    assert a["sites"][0]["price"] != other["sites"][0]["price"]
    assert get_scenario("jemas-3").name == f"jemas-3/day-{jemas3.test_days()[0]:03d}"


def test_jemas3_peak_load_binds_the_gpus():
    """About 3,600 jobs per slot at the daily peak; at 30 steps the GPUs cannot serve all."""
    peaks, drops = [], []
    for day in jemas3.test_days()[:8]:
        c = compile_scenario(jemas3.jemas3(day))
        peaks.append(c.arrivals.sum(axis=0).max())
        ev = evaluate(c, local_fixed(c))
        assert ev.feasible, ev.violations[:3]
        drops.append(ev.jobs["dropped"] / ev.jobs["arrived"])
        # Electricity is well under 1% of revenue at normal prices.
        assert ev.terms["energy"] < 0.01 * ev.terms["revenue"]
    assert 3000 < np.median(peaks) < 4300
    assert np.median(drops) > 0.02
