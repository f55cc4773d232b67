"""Real 2023 data: readers, the price-clock fix, pvlib solar, real-day builds, calibration."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from optsched.data import build, readers, solar
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
