"""The GenAI workload model: strict trace reader, fitted parameters, day sampler, replays."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from optsched.data import build
from optsched.errors import ScenarioError
from optsched.workload.model import WorkloadModel, load_default
from optsched.workload.sampler import day_from_trace, sample_day
from optsched.workload.trace import read_genai_trace

ROOT = Path(__file__).resolve().parents[1]
HEADER = ("gmt_create,predict_type,predict_status,exec_time_seconds,prompt_length,"
          "num_images_per_prompt,num_inference_steps")
SECRET = "SECRETPROMPT"       # a cell no error message may echo


def row(time: str, exec_s: str = "20.0", images: str = "1.0", steps: str = "30.0",
        status: str = "SUCCEED") -> str:
    return f"{time},TXT_2_IMG,{status},{exec_s},{SECRET},{images},{steps}"


def write(path: Path, *rows: str, header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


GOOD = [row("2024-11-15 00:01:00"), row("2024-11-15 00:01:00", images="4.0"),
        row("2024-11-15 00:07:30", "0.0", "", "", status="PENDING")]


def test_reader_reads_a_good_file_with_pending_rows(tmp_path):
    df = read_genai_trace(write(tmp_path / "t.csv", *GOOD, "", ",,,,,,"))   # trailing blanks
    assert len(df) == 3 and df["line"].tolist() == [2, 3, 4]
    assert df["images"].tolist()[:2] == [1.0, 4.0] and np.isnan(df["images"].iloc[2])
    assert df["time"].iloc[2].minute == 7


# (rows after the header, the line and column the error must name)
BAD = {
    "missing column": (None, 1, "num_inference_steps"),
    "unreadable timestamp": ([GOOD[0], row("2024-11-15 25:01:00")], 3, "gmt_create"),
    "time goes back": ([GOOD[0], row("2024-11-15 00:07:00"), row("2024-11-15 00:06:59")],
                       4, "gmt_create"),
    "negative exec time": ([row("2024-11-15 00:01:00", exec_s="-1")], 2, "exec_time_seconds"),
    "empty exec time": ([GOOD[0], row("2024-11-15 00:02:00", exec_s="")], 3,
                        "exec_time_seconds"),
    "infinite exec time": ([row("2024-11-15 00:01:00", exec_s="inf")], 2,
                           "exec_time_seconds"),
    "NaN steps": ([row("2024-11-15 00:01:00", steps="NaN")], 2, "num_inference_steps"),
    "negative steps": ([row("2024-11-15 00:01:00", steps="-30")], 2, "num_inference_steps"),
    "zero images": ([row("2024-11-15 00:01:00", images="0")], 2, "num_images_per_prompt"),
    "fractional images": ([row("2024-11-15 00:01:00", images="1.5")], 2,
                          "num_images_per_prompt"),
    "text images": ([row("2024-11-15 00:01:00", images="zzbadzz")], 2,
                    "num_images_per_prompt"),
    "empty size, not pending": ([row("2024-11-15 00:01:00", images="")], 2,
                                "num_images_per_prompt"),
    "empty status": ([row("2024-11-15 00:01:00", status="")], 2, "predict_status"),
    "blank line": ([GOOD[0], "", GOOD[1]], 3, "line"),
    "header only": ([], 2, "no requests"),
    # One stray timestamp once made the day statistics loop over ~3 million empty days.
    "far-off timestamp": ([GOOD[0], row("9999-12-31 23:59:59")], 3, "gmt_create"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_reader_error_table(tmp_path, case):
    rows, line, column = BAD[case]
    path = tmp_path / "bad trace.csv"
    if rows is None:
        write(path, *[r.rsplit(",", 1)[0] for r in GOOD],
              header=HEADER.rsplit(",", 1)[0])
    else:
        write(path, *rows)
    with pytest.raises(ScenarioError) as err:
        read_genai_trace(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path))
    assert f"line {line}" in msg and column in msg
    assert SECRET not in msg and "zzbadzz" not in msg and "25:01" not in msg


def test_reader_refuses_a_field_spanning_lines(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "\n" + row("2024-11-15 00:01:00").replace(SECRET, '"a\nb"')
                    + "\n")
    with pytest.raises(ScenarioError, match="spans lines"):
        read_genai_trace(path)


def test_reader_accepts_the_real_file(shared_data):
    df = read_genai_trace(shared_data / "traces/genai/lora_request_trace.csv")
    assert len(df) == 15630 and df["time"].is_monotonic_increasing
    assert df["images"].isna().sum() == 15 == (df["status"] == "PENDING").sum()


def test_day_from_trace_counts_by_hand(tmp_path):
    """00:01 (1 image), 00:04:59 (4 images), 00:05:00 (1 image), a PENDING request and one
    next day: 5-minute slot 0 holds one of each class, slot 1 one interactive."""
    path = write(tmp_path / "t.csv", row("2024-11-15 00:01:00"),
                 row("2024-11-15 00:04:59", images="4", exec_s="50"),
                 row("2024-11-15 00:05:00", steps="40"),
                 row("2024-11-15 00:06:00", "0", "", "", "PENDING"),
                 row("2024-11-16 00:00:10"))
    day = day_from_trace(read_genai_trace(path), dt.date(2024, 11, 15))
    c = day.counts()
    assert c.shape == (2, 288) and c[0, :2].tolist() == [1, 1] and c[1, :2].tolist() == [1, 0]
    assert c.sum() == 3 == day.n
    assert day.arrival_s.tolist() == [60.0, 299.0, 300.0]
    assert day.steps.tolist() == [30, 30, 40] and day.service_s.tolist() == [20, 50, 20]
    assert day.counts(60)[:, 0].tolist() == [2, 1]
    with pytest.raises(ScenarioError, match="outside the trace"):
        day_from_trace(read_genai_trace(path), "2024-11-20")


def test_packaged_model_loads_and_rejects_bad_parameters():
    model = load_default()
    assert len(model.hourly_share) == 24
    raw = json.loads((ROOT / "optsched/workload/genai_params.json").read_text())
    raw["day"]["log_sigma"] = -1
    with pytest.raises(ScenarioError, match="day.log_sigma"):
        WorkloadModel.from_dict(raw)


def _same(a, b) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f))
               for f in ("arrival_s", "images", "steps", "service_s", "klass"))


def test_sampler_is_reproducible_and_seeds_differ():
    m = load_default()
    a, b = sample_day(m, 7, 2), sample_day(m, 7, 2)
    assert _same(a, b) and a.n > 100
    assert not _same(a, sample_day(m, 8, 2))
    assert a.n != sample_day(m, 8, 2).n
    assert np.all(np.diff(a.arrival_s) >= 0) and a.arrival_s[-1] < 86400


@pytest.fixture(scope="module")
def week_days():
    """200 consecutive sampled days (Monday first) at the trace's own volume."""
    m = load_default()
    return m, [sample_day(m, 1000 + d, d % 7, slot_minutes=5, slots=288) for d in range(200)]


def test_sampled_day_volumes_match_the_fit(week_days):
    m, days = week_days
    n = np.array([d.n for d in days], float)
    # Independent formula from the parameters: weekend steps Fri->Sat and Sun->Mon.
    step = np.log(m.day.weekend_level / m.day.weekday_level)
    expected = np.sqrt(2 * step**2 / 7 + 2 * m.day.log_sigma**2)
    assert np.diff(np.log(n)).std() == pytest.approx(expected, abs=0.12)
    weekend = np.isin(np.arange(200) % 7, (5, 6))
    ratio = n[weekend].mean() / n[~weekend].mean()
    assert ratio == pytest.approx(m.day.weekend_level / m.day.weekday_level, rel=0.2)
    assert n.mean() == pytest.approx(m.mean_requests_per_day, rel=0.1)


def test_sampled_profile_sizes_and_slots(week_days):
    m, days = week_days
    hours = sum(d.counts(60).sum(axis=0) for d in days)
    top3 = np.sort(hours)[::-1][:3].sum() / hours.sum()
    assert top3 == pytest.approx(sum(sorted(m.hourly_share)[-3:]), abs=0.015)
    assert 0.38 < top3 < 0.46                    # the trace's own figure, 0.42
    for d in days[:20]:
        c = d.counts()
        assert c.sum() == d.n and c[1].sum() == int((d.images > 1).sum())
        hist = np.histogram(d.arrival_s, bins=np.arange(289) * 300.0)[0]
        assert np.array_equal(c.sum(axis=0), hist)
    images = np.concatenate([d.images for d in days])
    steps = np.concatenate([d.steps for d in days])
    for sampled, values in ((images, m.sizes.images), (steps, m.sizes.steps)):
        cats = np.unique(values)
        p = np.array([sum(q for v, q in zip(values, m.sizes.prob, strict=True) if v == c)
                      for c in cats])
        big = p * len(sampled) >= 20             # chi-square on categories with support
        obs = np.array([(sampled == c).sum() for c in cats[big]] +
                       [np.isin(sampled, cats[~big]).sum()])
        exp = np.r_[p[big], p[~big].sum()] * len(sampled)
        keep = exp > 0
        assert stats.chisquare(obs[keep], exp[keep]).pvalue > 1e-3


def test_arrivals_spread_within_slots_and_are_overdispersed(week_days):
    m, days = week_days
    pos = np.concatenate([d.arrival_s % 300 for d in days]) / 300
    assert (pos == 0).mean() < 1e-3 and 0.45 < pos.mean() < 0.55 and pos.std() > 0.25
    minutes = np.concatenate([np.bincount((d.arrival_s // 60).astype(int), minlength=1440)
                              .reshape(24, 60) for d in days])
    n = minutes.sum(axis=1).astype(float)
    d_index = ((minutes - n[:, None] / 60) ** 2).sum() / (59 / 60 * n.sum())
    a = m.minute_concentration               # Dirichlet-multinomial: E[D] below
    implied = (n * (n + a) / (1 + a)).sum() / n.sum()
    assert d_index > 1.05 and d_index == pytest.approx(implied, abs=0.04)


def test_scaled_days_keep_the_shape():
    m = load_default()
    big = sample_day(m, 3, 1, mean_requests_per_day=200_000)
    assert 0.2 * 200_000 < big.n < 5 * 200_000
    hours = big.counts(60).sum(axis=0)
    assert hours[12] == 0 == hours[13]            # the trace's empty hours stay empty
    short = sample_day(m, 3, 1, slot_minutes=15, slots=8, mean_requests_per_day=200_000)
    assert np.array_equal(short.arrival_s, big.arrival_s[big.arrival_s < 7200])
    with pytest.raises(ScenarioError, match="horizon"):
        sample_day(m, 3, 1, slot_minutes=5, slots=300)


def test_fit_script_reproduces_the_committed_parameters(shared_data, tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "scripts/fit_workload.py"), "--data",
                          str(shared_data / "traces/genai"), "--out-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    committed = ROOT / "optsched/workload"
    assert json.loads((tmp_path / "genai_params.json").read_text()) == \
        json.loads((committed / "genai_params.json").read_text())
    assert (tmp_path / "genai.md").read_text() == (committed / "genai.md").read_text()


def test_fit_script_refuses_a_missing_folder(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "scripts/fit_workload.py"), "--data",
                          str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "--data" in run.stderr


def test_build_day_replays_a_genai_trace_per_class(tiny, tmp_path):
    """Two one-hour slots; tiny's interactive class has arrivals [100, 50] (mean 75).
    Day 1: interactive 2 then 1, batch 1 then 0; day 2: interactive 1 then 0. The mean
    interactive count per slot over both days is (3 + 1) / 4 = 1, so day 1 replays as
    75 x [2, 1]."""
    path = write(tmp_path / "g.csv", row("2024-11-15 00:10:00"), row("2024-11-15 00:20:00"),
                 row("2024-11-15 00:30:00", images="4"), row("2024-11-15 01:10:00"),
                 row("2024-11-16 00:30:00"), row("2024-11-16 05:00:00", images="2"))
    raw = build.build_day(tiny, dt.date(2024, 11, 15), trace=path)
    assert raw["classes"][0]["arrivals"] == [150.0, 75.0]
    assert "day 2024-11-15" in raw["description"]
    # A scenario day outside the trace replays a trace day of the same weekday.
    later = build.build_day(tiny, dt.date(2024, 11, 30), trace=path)   # a Saturday
    assert later["classes"][0]["arrivals"] == [75.0, 0.0]
    with pytest.raises(ScenarioError, match="Sunday"):
        build.build_day(tiny, dt.date(2024, 11, 24), trace=path)


def test_build_day_keeps_the_azure_trace_path(tiny, tmp_path):
    """Hourly counts 1 (partial), 2, 4, 1 (partial): the complete hours give the pattern
    [2, 4] / 3, so tiny's [100, 50] becomes [66.7, 66.7], rounded to 67."""
    stamps = ["2023-11-16 18:30:00", "2023-11-16 19:10:00", "2023-11-16 19:20:00",
              *[f"2023-11-16 20:{m:02d}:00" for m in (1, 2, 3, 4)], "2023-11-16 21:05:00"]
    path = tmp_path / "azure.csv"
    path.write_text("TIMESTAMP,ContextTokens\n" + "".join(f"{t},5\n" for t in stamps))
    raw = build.build_day(tiny, dt.date(2023, 11, 16), trace=path)
    assert raw["classes"][0]["arrivals"] == [67.0, 67.0]
