"""The embedded jemas-3-genai family: its days, split, sizing rule and plumbing."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

import optsched
from optsched.days import parse_days
from optsched.env.bank import DayBank
from optsched.errors import ScenarioError
from optsched.scenario import (
    build_scenario,
    compile_scenario,
    family_fingerprint,
    genai,
    get_scenario,
    history,
    jemas3,
)

FAM = "jemas-3-genai"


@pytest.fixture(scope="module")
def day4():
    return optsched.load_scenario(FAM, day=4)


def test_day_is_jemas3_energy_with_the_sized_fleet(day4):
    j = jemas3.jemas3(4)
    assert day4.name == "jemas-3-genai/day-004"
    assert [s.gpus for s in day4.sites] == [20, 51, 45]
    # caiso: 4.5 kW x 51 / 12 GPUs; battery power 1.5 kW x 51 / 12
    assert day4.sites[1].import_cap_kw == pytest.approx(19.125)
    assert day4.sites[1].battery.ch_max_kw == pytest.approx(6.375)
    for a, b in zip(day4.sites, j.sites, strict=True):
        assert a.price == b.price and a.carbon_intensity == b.carbon_intensity
        np.testing.assert_allclose(a.renewable_kw, np.asarray(b.renewable_kw) * a.gpus / b.gpus,
                                   atol=1e-4)
    for cl in day4.classes:
        assert cl.max_wait_slots == (24 if cl.kind == "deferrable" else None)


def test_family_decides_before_arrivals_with_queueing_and_cold_starts(day4):
    """The hard family switches both opt-in extensions on at their defaults: a day's
    compiled form commits GPUs before arrivals with the fitted mean cold start (the
    two-lognormal mixture of genai_params.json, recomputed here) and has queueing cuts;
    jemas-3 keeps neither."""
    import json
    from importlib import resources

    c, j = compile_scenario(day4), compile_scenario(jemas3.jemas3(4))
    cs = json.loads(resources.files("optsched.workload").joinpath("genai_params.json")
                    .read_text())["cold_start"]
    mean = sum(w * math.exp(mu + sd**2 / 2) for w, mu, sd in
               zip(cs["weights"], cs["log_mu"], cs["log_sigma"], strict=True))
    assert c.commit and c.cold_start_s == pytest.approx(mean, abs=0.01) and c.queueing
    assert not j.commit and j.cold_start_s == 0.0 and not j.queueing


def test_split_and_day_grammar_are_jemas3s():
    assert parse_days("test:3", FAM) == [4, 9, 14]
    test, train = parse_days("test", FAM), parse_days("train", FAM)
    assert len(test) == 73 and len(train) == 292 and all(d % 5 == 4 for d in test)
    with pytest.raises(ScenarioError, match="0..364"):
        parse_days("365", FAM)
    with pytest.raises(ScenarioError, match="must be in 0..364"):
        get_scenario(FAM, 365)


def test_arrivals_are_whole_jobs_and_classes_follow_the_image_rule():
    a = genai.arrivals(4)
    assert a.shape == (6, 288) and (a >= 0).all() and (a == np.round(a)).all()
    # the trace's mix: 58.7% of requests ask for one image; 2.66 images a request
    days = [genai.arrivals(d) for d in range(0, 40)]
    total = np.sum([d.sum(axis=1) for d in days], axis=0)
    interactive = total[0::2].sum() / total.sum()
    assert interactive == pytest.approx(0.587 / 2.66, abs=0.02)


def test_volume_matches_jemas3_and_weekends_are_lighter():
    # jemas-3's expected jobs a day at pjm: (975 + 525) x mean shape (17.49 / 24) x 288
    assert genai.site_jobs_per_day()["pjm"] == pytest.approx(1500 * 17.49 / 24 * 288)
    days = range(0, 70)
    pjm = np.array([genai.arrivals(d)[:2].sum() for d in days])
    weekend = np.array([genai.date_of(d).weekday() >= 5 for d in days])
    assert pjm.mean() == pytest.approx(314820, rel=0.3)
    assert np.median(pjm[weekend]) < 0.75 * np.median(pjm[~weekend])


def test_evening_peak_is_rotated_onto_the_reference_clock():
    hours = np.sum([genai.arrivals(d).reshape(6, 24, 12).sum(axis=2) for d in range(60)],
                   axis=0)
    # the trace's busiest local hours are 21..00; caiso's local clock is 3 h behind
    assert int(np.argmax(hours[0])) in (21, 22, 23, 0)
    assert int(np.argmax(hours[2])) in (0, 1, 2, 3)
    assert hours[2][12 + 3:14 + 3].sum() < 0.002 * hours[2].sum()   # the empty hours


def test_sizing_rule_by_hand(monkeypatch):
    # one training "day" where pjm's classes ask 0..287 jobs in slot t (interactive only)
    fake = np.zeros((6, 288))
    fake[0] = np.arange(288)
    monkeypatch.setattr(genai, "arrivals", lambda d: fake)
    gpu_s = 0.12 + 30 * 0.0323                          # sd15 at 30 steps, nominal clock
    want = math.ceil(np.quantile(np.arange(288), 0.95) * gpu_s / (0.9 * 300))
    assert genai.size_gpus([0])["pjm"] == want
    assert genai.size_gpus([0])["caiso"] == 0


def test_stored_fleet_is_the_rule_over_the_training_days():
    assert genai.size_gpus() == genai.base()["sizing"]["gpus"]


def test_bank_fingerprint_and_history(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTSCHED_CACHE", str(tmp_path))
    bank = DayBank.from_family([4, 9], FAM)
    assert bank.arrivals.shape == (2, 6, 288)
    np.testing.assert_array_equal(bank.arrivals[1], genai.arrivals(9))
    history._SEEN.clear()                                    # as in a fresh process
    again = DayBank.from_family([4, 9], FAM)                 # from the disk cache
    np.testing.assert_array_equal(again.arrivals, bank.arrivals)
    assert [history.identify(again.day(j)) for j in range(2)] == [(FAM, 4), (FAM, 9)]
    assert family_fingerprint(FAM) != family_fingerprint("jemas-3")
    c = compile_scenario(get_scenario(FAM, 9))
    assert history.identify(c) == (FAM, 9)
    assert history.identify(compile_scenario(get_scenario("jemas-3", 9))) == ("jemas-3", 9)


def test_a_day_file_is_its_familys_day_in_a_fresh_process_too(tmp_path):
    """A day exported to TOML is that family's day for the forecasters (which read the
    days before it) whether or not the process built the day first: `rollout(file,
    "mpc-forecast")` scored 7275.6158 fresh and 7275.9745 after `load_scenario("jemas-3",
    4)`. A file under that name whose prices differ is no family day."""
    from optsched.scenario import load_scenario, save_scenario

    save_scenario(get_scenario("jemas-3", 4), tmp_path / "d4.toml")
    changed = get_scenario("jemas-3", 4)
    raw = changed.model_dump()
    raw["sites"][0]["price"] = [p + 1.0 for p in raw["sites"][0]["price"]]
    save_scenario(type(changed).model_validate(raw), tmp_path / "d4-changed.toml")
    history._SEEN.clear()                                    # as in a fresh process
    c = compile_scenario(load_scenario(tmp_path / "d4.toml"))
    assert history.identify(c) == ("jemas-3", 4)
    history._SEEN.clear()
    assert history.identify(compile_scenario(load_scenario(tmp_path / "d4-changed.toml"))) \
        is None


def test_real_day_builds_of_the_sampled_family_need_a_genai_trace():
    """A jemas-3-genai day is sampled: a real-day build of it only replays a GenTD26 trace
    (tests/test_trace_days.py), and only on a date the family covers."""
    import datetime as dt
    with pytest.raises(ScenarioError, match="^--trace: "):
        build_scenario(dt.date(2023, 1, 5), FAM)
    from tests.conftest import SHARED_DATA

    trace = SHARED_DATA / "traces" / "genai" / "lora_request_trace.csv"
    if trace.is_file():
        with pytest.raises(ScenarioError, match="^--day: jemas-3-genai covers"):
            build_scenario(dt.date(2024, 1, 1), FAM, trace=trace)


def test_cli_shows_a_day():
    out = subprocess.run([sys.executable, "-m", "optsched.cli", "scenario", "show", FAM,
                          "--day", "4"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "jemas-3-genai/day-004" in out.stdout


def test_a_bank_refuses_what_is_not_a_family(tmp_path):
    with pytest.raises(ScenarioError, match="^family: .*embedded family"):
        DayBank.from_family([4], str(tmp_path / "x.toml"))
    with pytest.raises(ScenarioError, match="^days: "):
        DayBank.from_family([], FAM)
