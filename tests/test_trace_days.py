"""A real GenTD26 day replayed on the hard family (benchmarks/trace_days.py's path): the
family day's sites, GPUs, prices and modes are kept, the arrivals follow the trace day."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

TRACE_DAY = "2024-11-26"      # a steady Tuesday of the trace (1,775 requests)
FAMILY_DAY = 4                # jemas-3-genai's first held-out day (2023-01-05)


@pytest.fixture(scope="module")
def replay():
    from tests.conftest import SHARED_DATA

    trace = SHARED_DATA / "traces" / "genai" / "lora_request_trace.csv"
    if not trace.is_file():
        pytest.skip("../shared/data/traces/genai is not present")
    import datetime as dt

    from optsched.api import build_scenario, compiled
    from optsched.scenario import genai, history

    # `identify` knows the days this process built (keyed on prices and GPUs, which a
    # replay keeps): start as a fresh process does, as `optsched evaluate day.toml` would.
    history._SEEN.clear()
    family = genai.genai(FAMILY_DAY)             # (not through get_scenario: unremembered)
    sc = build_scenario(genai.date_of(FAMILY_DAY).isoformat(), "jemas-3-genai", trace=trace,
                        trace_day=dt.date.fromisoformat(TRACE_DAY))
    return trace, family, sc, compiled(sc)


def test_replayed_day_keeps_the_family_day_and_its_modes(replay):
    from optsched.policies import SHIPPED_MODELS, shipped_model
    from optsched.scenario.history import identify

    _, family, sc, c = replay
    assert [(s.name, s.gpus) for s in sc.sites] == [(s.name, s.gpus) for s in family.sites]
    for mine, theirs in zip(sc.sites, family.sites, strict=True):
        assert np.array_equal(mine.price, theirs.price)
        assert np.array_equal(mine.renewable_kw, theirs.renewable_kw)
    assert sc.queueing == family.queueing and sc.provisioning == family.provisioning
    assert c.commit                                   # GPUs committed before arrivals
    # no family history for a file's day: persistence forecasts, and the model of its mode
    assert identify(c) is None
    assert shipped_model(c) == SHIPPED_MODELS["jemas-3-genai"]


def test_replayed_day_has_the_trace_days_hourly_shape(replay):
    trace, family, sc, _ = replay
    # the independent fact: that day's requests per hour and kind, straight from the CSV
    raw = pd.read_csv(trace, usecols=["gmt_create", "num_images_per_prompt"])
    raw["time"] = pd.to_datetime(raw.gmt_create)
    day = raw[(raw.time.dt.normalize() == pd.Timestamp(TRACE_DAY))
              & raw.num_images_per_prompt.notna()]
    batch = day.num_images_per_prompt > 1
    for cl, theirs in zip(sc.classes, family.classes, strict=True):
        mine = day[batch if cl.kind == "deferrable" else ~batch]
        want = np.bincount(mine.time.dt.hour, minlength=24).astype(float)
        got = np.asarray(cl.arrivals, float).reshape(24, -1).sum(axis=1)     # 12 slots/h
        # rounding to whole jobs per slot moves an hour by at most 6 of ~1e4 jobs
        assert np.allclose(got / got.sum(), want / want.sum(), atol=2e-3), cl.name
        assert got.sum() != pytest.approx(np.sum(theirs.arrivals), rel=1e-3)   # replaced


def test_replayed_day_volume_is_the_trace_days_level(replay):
    """Each class's day total is the family's mean training day's total times the trace
    day's requests of its kind over the mean steady day's (not times the family day's own
    level as well)."""
    from optsched.scenario import genai
    from optsched.workload.trace import read_genai_trace, steady_days

    trace, _, sc, _ = replay
    raw = pd.read_csv(trace, usecols=["gmt_create", "num_images_per_prompt"])
    raw = raw[raw.num_images_per_prompt.notna()]
    raw["date"] = pd.to_datetime(raw.gmt_create).dt.normalize()
    raw["batch"] = raw.num_images_per_prompt > 1
    steady = set(steady_days(read_genai_trace(trace)).index)
    mean_day = genai.mean_train_arrivals().sum(axis=1)                  # [K]
    for k, cl in enumerate(sc.classes):
        mine = raw[raw.batch == (cl.kind == "deferrable")]
        per_day = mine.groupby("date").size()
        level = per_day[pd.Timestamp(TRACE_DAY)] / per_day[per_day.index.isin(steady)].mean()
        assert np.sum(cl.arrivals) == pytest.approx(mean_day[k] * level, rel=2e-3), cl.name


def test_one_day_summary_is_strict_json_with_no_interval():
    """One replayed day has no standard error or interval: results.json says null (NaN
    is not JSON), and two days give the t interval (differences 0.5 and 1.3: mean 0.9,
    s.e. 0.8 / 2 = 0.4, half-width t(0.975, 1) x 0.4 = 12.706 x 0.4)."""
    import json

    from benchmarks.trace_days import mean_se, paired

    one = paired(np.array([1.0]), np.array([0.5]))
    json.dumps(one, allow_nan=False)
    assert one == {"mean": 0.5, "se": None, "low": None, "high": None, "days": 1}
    assert mean_se(np.array([0.1])) == (0.1, None)
    two = paired(np.array([1.0, 2.0]), np.array([0.5, 0.7]))
    assert two["mean"] == pytest.approx(0.9) and two["se"] == pytest.approx(0.4)
    assert two["high"] - two["mean"] == pytest.approx(12.7062 * 0.4, rel=1e-4)
