"""Real 2023 data: readers, the price-clock fix, pvlib solar, real-day builds, calibration."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from optsched.data import build, readers, solar
from optsched.errors import ScenarioError
from optsched.scenario import compile_scenario, jemas3, scenario_from_dict

REGIONS = ("pjm", "caiso", "ercot", "nyiso")


@pytest.mark.parametrize("region", REGIONS)
def test_real_files_load(shared_data, region):
    prices = readers.read_prices(shared_data / f"prices/{region}_2023.csv")
    carbon = readers.read_carbon(shared_data / f"carbon/{region}_2023.csv")
    loc, weather = readers.read_weather(shared_data / f"weather/{region}_2023.csv")
    assert len(prices) == 8760 and len(carbon) == 8760 and len(weather) > 8700
    assert prices.index.tz is not None and weather.index.tz is not None
    assert 20 < prices.mean() < 80 and 100 < carbon.mean() < 500
    assert 25 < loc.latitude < 45 and loc.timezone.startswith("America/")
    assert weather["cloudcover_pct"].between(0, 100).all()


def test_price_clock_fix_puts_caiso_trough_at_midday(shared_data):
    """With the fix, CAISO's summer prices bottom out in solar hours (the duck curve)."""
    fixed = readers.read_prices(shared_data / "prices/caiso_2023.csv")
    raw = readers.read_prices(shared_data / "prices/caiso_2023.csv", clock="utc")
    for series, ok in ((fixed, True), (raw, False)):
        local = series.tz_convert("America/Los_Angeles")
        summer = local[local.index.month.isin([6, 7, 8])]
        trough = summer.groupby(summer.index.hour).mean().idxmin()
        assert (9 <= trough <= 15) == ok, trough
    ercot = readers.read_prices(shared_data / "prices/ercot_2023.csv")
    # ERCOT's files are right as labelled: the 2023 maximum fell in the evening.
    assert ercot.idxmax().tz_convert("America/Chicago").hour in range(16, 22)


def test_trace_counts(shared_data):
    t = readers.read_trace(shared_data / "traces/azure_llm_inference_2023_conv.csv")
    counts = readers.counts_per_slot(t, 5)
    assert counts.sum() == len(t) == 19366 and len(counts) == 12


def test_pvlib_solar_is_zero_at_night_and_cut_by_clouds():
    loc = readers.Location(37.43, -121.95, 7.0, "America/Los_Angeles")
    times = pd.date_range("2023-07-14", periods=24, freq="h", tz=loc.timezone)
    clear = solar.pv_kw(10.0, loc, times, np.zeros(24))
    cloudy = solar.pv_kw(10.0, loc, times, np.full(24, 100.0))
    assert clear[:4].max() == 0.0 and clear[22:].max() == 0.0
    assert 7.0 < clear.max() < 10.0                     # ~1000 W/m2 x 0.85 derate
    np.testing.assert_allclose(cloudy, 0.25 * clear)    # Kasten-Czeplak at full cover


def test_build_real_day_reads_the_real_series(shared_data, tmp_path):
    trace = shared_data / "traces/azure_llm_inference_2023_conv.csv"
    raw = build.build_day(jemas3.base(), dt.date(2023, 7, 14), data_dir=shared_data,
                          trace=trace)
    sc = scenario_from_dict(raw)
    c = compile_scenario(sc)
    # Slot 0 is midnight Eastern (04:00 UTC in July); PJM's price there is the file's.
    pjm = readers.read_prices(shared_data / "prices/pjm_2023.csv")
    assert c.price[0, 0] == pytest.approx(pjm[pd.Timestamp("2023-07-14 04:00", tz="UTC")],
                                          abs=1e-3)
    assert c.price[0, 12] == pytest.approx(pjm[pd.Timestamp("2023-07-14 05:00", tz="UTC")],
                                           abs=1e-3)
    ci = readers.read_carbon(shared_data / "carbon/ercot_2023.csv")
    assert c.ci[2, 0] == pytest.approx(ci[pd.Timestamp("2023-07-14 04:00", tz="UTC")], abs=0.1)
    # PV only in daylight; CAISO (3 kWp) peaks near solar noon (20:00 UTC = slot 192).
    k = sc.sites[1]
    assert max(k.renewable_kw[:60]) == 0.0 and max(k.renewable_kw) > 1.0
    assert 150 < int(np.argmax(k.renewable_kw)) < 230
    # Arrivals carry the trace's slot-to-slot pattern.
    assert c.arrivals.sum() > 0 and np.std(np.diff(c.arrivals[0])) > 0


def test_scenario_build_cli(shared_data, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "day.toml"
    run = subprocess.run([sys.executable, "-m", "optsched.cli", "scenario", "build",
                          "--day", "2023-08-25", "--data-dir", str(shared_data),
                          "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    ev = subprocess.run([sys.executable, "-m", "optsched.cli", "evaluate", str(out),
                         "--json"], capture_output=True, text=True, timeout=300)
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert result["feasible"] and result["utility"] > 0
    # ERCOT's scarcity evening of 2023-08-25 reaches the scenario.
    from optsched.scenario import load_scenario
    assert max(load_scenario(out).sites[2].price) > 3000


def test_generated_prices_match_the_real_levels(shared_data):
    """Calibration check: generated daily means across the year sit near the real ones."""
    days = range(0, 365, 7)
    generated = np.array([[np.mean(s["price"]) for s in jemas3.day_dict(d)["sites"]]
                          for d in days])
    for i, region in enumerate(("pjm", "caiso", "ercot")):
        real = readers.read_prices(shared_data / f"prices/{region}_2023.csv")
        ratio = np.median(generated[:, i]) / real.resample("D").mean().median()
        assert 0.7 < ratio < 1.4, (region, ratio)


def test_calibration_script_reproduces_the_shipped_parameters(shared_data, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "params.json"
    run = subprocess.run([sys.executable, str(root / "scripts/calibrate.py"), "--data",
                          str(shared_data), "--out", str(out)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(out.read_text()) == jemas3.params()


# Synthetic files in the public formats (readers.py), for detection and builds without
# the real data.
def _daily_price(local_hour: np.ndarray) -> np.ndarray:
    """A market's shape on its local clock: dearest at 19:00, cheapest at 07:00."""
    return 40.0 + 15.0 * np.cos(2 * np.pi * (local_hour - 19) / 24)


def write_prices(path, year: int, tz: str, shifted: bool, days: int = 30, start: str = "03-01"):
    """An hourly price file whose two timestamp columns agree, as in the public files.
    If `shifted`, each row carries the price of the hour whose UTC wall time equals the
    row's local wall time (the defect of some 2023 files)."""
    stamps = pd.date_range(f"{year}-{start}", periods=24 * days, freq="h", tz="UTC")
    local = stamps.tz_convert(tz)
    if shifted:
        true = local.tz_localize(None).tz_localize("UTC").tz_convert(tz)
        hours = true.hour.to_numpy()
    else:
        hours = local.hour.to_numpy()
    frame = pd.DataFrame({
        "Datetime (UTC)": stamps.strftime("%Y-%m-%d %H:%M:%S+00:00"),
        "Datetime (Local)": [t.isoformat(sep=" ") for t in local],
        "Price (USD/MWh)": np.round(_daily_price(hours), 4),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def test_price_clock_is_detected_per_file_and_the_fix_recovers_the_true_series(tmp_path):
    tz = "America/Los_Angeles"
    right = write_prices(tmp_path / "right.csv", 2024, tz, shifted=False)
    wrong = write_prices(tmp_path / "wrong.csv", 2024, tz, shifted=True)
    assert readers.detect_price_clock(right) == "utc"
    assert readers.detect_price_clock(wrong) == "local-is-utc"
    fixed = readers.read_prices(wrong)                         # auto
    truth = readers.read_prices(right, clock="utc")
    common = fixed.index.intersection(truth.index)
    assert len(common) > 24 * 28
    np.testing.assert_array_equal(fixed[common].to_numpy(), truth[common].to_numpy())
    # As labelled, the shifted file's cheapest hour is 07:00 + 7 or 8 hours (PDT, PST).
    raw = readers.read_prices(wrong, clock="utc").tz_convert(tz)
    assert raw.groupby(raw.index.hour).mean().idxmin() in (14, 15)
    assert readers.read_prices(right).equals(truth)            # auto keeps a right file


def test_price_clock_detection_trusts_labels_on_too_little_data(tmp_path):
    short = write_prices(tmp_path / "short.csv", 2024, "America/New_York", shifted=True,
                         days=3)
    assert readers.detect_price_clock(short) == "utc"


def write_carbon(path, year: int):
    stamps = pd.date_range(f"{year}-01-01", f"{year}-12-31 23:00", freq="h", tz="UTC")
    frame = pd.DataFrame({"Datetime (UTC)": stamps.strftime("%Y-%m-%d %H:%M:%S+00:00"),
                          "Carbon Intensity gCO₂eq/kWh (direct)": 300.0,
                          "Carbon Intensity gCO₂eq/kWh (LCA)": 350.0})
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def write_weather(path, year: int, loc: dict):
    times = pd.date_range(f"{year}-01-01", f"{year}-12-31 23:00", freq="h")
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# latitude={loc['latitude']} longitude={loc['longitude']} "
              f"elevation_m={loc['elevation_m']} timezone={loc['timezone']}\n")
    body = pd.DataFrame({"time_local": times.strftime("%Y-%m-%dT%H:%M"),
                         "cloudcover_pct": 0.0}).to_csv(index=False)
    path.write_text(header + body)


def data_folder(root, year: int):
    """<root>/{prices,carbon,weather}/{region}_{year}.csv for jemas-3's three sites."""
    params = jemas3.params()["regions"]
    for region in ("pjm", "caiso", "ercot"):
        loc = params[region]["location"]
        write_prices(root / f"prices/{region}_{year}.csv", year, loc["timezone"],
                     shifted=region == "caiso", days=366, start="01-01")
        write_carbon(root / f"carbon/{region}_{year}.csv", year)
        write_weather(root / f"weather/{region}_{year}.csv", year, loc)
    return root


def test_build_finds_files_of_the_requested_year(tmp_path):
    """A 2024 day reads {region}_2024.csv; the shifted CAISO file is fixed by detection."""
    data_folder(tmp_path, 2024)
    date = dt.date(2024, 7, 14)
    raw = build.build_day(jemas3.base(), date, data_dir=tmp_path)
    c = compile_scenario(scenario_from_dict(raw))
    # Slot 0 is midnight Eastern = 04:00 UTC; each site's price is its market's price at
    # its own local hour then: 00:00 EDT (pjm), 21:00 PDT (caiso), 23:00 CDT (ercot).
    expected = _daily_price(np.array([0.0, 21.0, 23.0]))
    np.testing.assert_allclose(c.price[:, 0], expected, atol=1e-3)
    assert c.ci[:, 0].tolist() == [300.0] * 3
    assert c.renewable[1].max() > 1.0 and c.renewable[1, 0] == 0.0     # clear-sky PV
    assert raw["name"].endswith("/2024-07-14")
    # Per site, the clock can be forced: CAISO read as labelled gets, at the row labelled
    # 21:00 PDT, the price of the hour whose UTC wall time is 21:00 (14:00 PDT).
    forced = build.build_day(jemas3.base(), date, data_dir=tmp_path,
                             price_clock={"caiso": "utc"})
    assert forced["sites"][0]["price"] == raw["sites"][0]["price"]
    assert forced["sites"][1]["price"][0] == pytest.approx(
        float(_daily_price(np.array([14.0]))[0]), abs=1e-3)


def test_build_takes_the_files_it_is_given_and_names_the_missing_one(tmp_path):
    data_folder(tmp_path / "d", 2024)
    mine = tmp_path / "anything.csv"
    mine.write_text((tmp_path / "d/prices/pjm_2024.csv").read_text())
    (tmp_path / "d/prices/pjm_2024.csv").unlink()
    date = dt.date(2024, 7, 14)
    with pytest.raises(ScenarioError, match=r"--data-dir: no prices file for site pjm in "
                                            r"2024 \(looked for '.*pjm_2024.csv'\)"):
        build.build_day(jemas3.base(), date, data_dir=tmp_path / "d")
    raw = build.build_day(jemas3.base(), date, data_dir=tmp_path / "d",
                          prices={"pjm": mine})
    assert raw["sites"][0]["price"][0] == pytest.approx(_daily_price(np.array([0.0]))[0],
                                                        abs=1e-3)
    with pytest.raises(ScenarioError, match=r"no prices file for site pjm in 2023"):
        build.build_day(jemas3.base(), dt.date(2023, 7, 14), data_dir=tmp_path / "d")
    with pytest.raises(ScenarioError, match=r"--prices: unknown site"):
        build.build_day(jemas3.base(), date, prices={"mars": mine})
    # A file that does not cover the day is named.
    with pytest.raises(ScenarioError, match=r"anything.csv: data covers 2024-01-01 .* not "
                                            r"the horizon starting 2025-07-14"):
        build.build_day(jemas3.base(), dt.date(2025, 7, 14), prices={"pjm": mine})


def test_build_scenario_validates_a_real_day_of_the_family(tmp_path):
    from optsched.scenario import build_scenario

    data_folder(tmp_path, 2024)
    sc = build_scenario(dt.date(2024, 2, 29), data_dir=tmp_path,
                        price_clock=build.parse_price_clock(["utc", "caiso=auto"]))
    assert sc.name == "jemas-3/2024-02-29" and len(sc.sites[0].price) == 288
    with pytest.raises(ScenarioError, match=r"--base: no such file"):
        build_scenario(dt.date(2024, 2, 29), tmp_path / "none.toml", data_dir=tmp_path)


@pytest.mark.parametrize(("values", "expected"), [
    (["utc"], {"*": "utc"}),
    (["local-is-utc", "ercot=utc"], {"*": "local-is-utc", "ercot": "utc"}),
    (["pjm=utc", "pjm=auto"], {"pjm": "auto"}),
])
def test_price_clock_command_line_form(values, expected):
    parsed = build.parse_price_clock(values)
    assert parsed == expected
    clocks = build.price_clocks(["pjm", "caiso", "ercot"], parsed)
    default = expected.get("*", "auto")
    assert clocks == {s: expected.get(s, default) for s in ("pjm", "caiso", "ercot")}


@pytest.mark.parametrize(("spec", "message"), [
    ({"mars": "utc"}, "--price-clock: unknown site (known: pjm, caiso, ercot), got 'mars'"),
    ({"pjm": "local"}, "--price-clock: must be one of auto, utc, local-is-utc, got 'local'"),
    ("sometimes", "--price-clock: must be one of auto, utc, local-is-utc, got 'sometimes'"),
])
def test_price_clock_errors(spec, message):
    with pytest.raises(ScenarioError) as info:
        build.price_clocks(["pjm", "caiso", "ercot"], spec)
    assert str(info.value) == message


def test_shipped_real_files_are_detected_as_the_evidence_says(shared_data):
    """PJM, CAISO and NYISO 2023 files are shifted, ERCOT's is right (readers.py)."""
    found = {r: readers.detect_price_clock(shared_data / f"prices/{r}_2023.csv")
             for r in REGIONS}
    assert found == {"pjm": "local-is-utc", "caiso": "local-is-utc", "ercot": "utc",
                     "nyiso": "local-is-utc"}


def test_calibrate_without_data_is_one_line_exit_2(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts/calibrate.py"
    for args in ([], ["--data", str(tmp_path / "absent")], ["--data", str(tmp_path)]):
        run = subprocess.run([sys.executable, str(script), *args, "--out",
                              str(tmp_path / "p.json")], capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 2, run.stderr
        assert "Traceback" not in run.stderr
        if args:                                 # (without --data: argparse's usage line)
            assert run.stderr.startswith("calibrate.py: ") and run.stderr.count("\n") == 1
    assert not (tmp_path / "p.json").exists()


def test_an_azure_trace_with_only_its_header_is_a_one_line_error(tmp_path):
    """It was an IndexError deep in the slot counts."""
    from optsched.errors import ScenarioError

    path = tmp_path / "empty.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n")
    with pytest.raises(ScenarioError, match="no requests after the header"):
        readers.read_trace(path)


def test_weather_times_with_offsets_are_the_same_instants(tmp_path):
    """time_local given with its offset (-08:00 in January), or with offsets that change
    between rows as ISO local times do across DST, reads as the same hours as the plain
    wall-clock file; it was a TypeError ("Already tz-aware") and a ValueError ("Mixed
    timezones") from pandas."""
    head = ("# latitude=37.4 longitude=-121.9 elevation_m=7.0 timezone=America/Los_Angeles\n"
            "time_local,cloudcover_pct\n")
    plain = ["2023-03-12T00:00", "2023-03-12T01:00", "2023-03-12T03:00", "2023-03-12T04:00"]
    offsets = ["2023-03-12T00:00-08:00", "2023-03-12T01:00-08:00",
               "2023-03-12T03:00-07:00", "2023-03-12T04:00-07:00"]     # DST starts at 2:00
    frames = []
    for name, times in (("plain", plain), ("fixed", [t[:16] + "-08:00" for t in plain]),
                        ("dst", offsets)):
        path = tmp_path / f"{name}.csv"
        path.write_text(head + "".join(f"{t},{10 * j}\n" for j, t in enumerate(times)))
        frames.append(readers.read_weather(path)[1])
    plain_idx, fixed_idx, dst_idx = (f.index for f in frames)
    assert list(plain_idx.hour) == [0, 1, 3, 4] and list(dst_idx) == list(plain_idx)
    # -08:00 all day: 03:00-08:00 is 04:00 PDT, the wall-clock file's last hour
    assert list(fixed_idx.hour) == [0, 1, 4, 5]
    assert (fixed_idx[2] - fixed_idx[1]).total_seconds() == 2 * 3600
    assert list(frames[2]["cloudcover_pct"]) == [0, 10, 20, 30]
