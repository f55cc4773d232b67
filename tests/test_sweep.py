"""Sensitivity parameters edit the scenario as documented; sweeps score with the
evaluator against each variant's own oracle."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from optsched.errors import ScenarioError
from optsched.scenario import compile_scenario, get_scenario, scenario_from_dict
from optsched.scenario.load import save_scenario
from optsched.scenario.sensitivity import vary
from tests.conftest import TINY


@pytest.fixture(scope="module")
def day():
    return get_scenario("jemas-3", 4)


def test_price_level_and_volatility(day):
    base = compile_scenario(day)
    np.testing.assert_allclose(compile_scenario(vary(day, "price-level", 2.5)).price,
                               2.5 * base.price, rtol=1e-12)
    flat = compile_scenario(vary(day, "price-volatility", 0)).price
    np.testing.assert_allclose(flat, base.price.mean(axis=1, keepdims=True)
                               * np.ones_like(base.price), rtol=1e-12)
    double = compile_scenario(vary(day, "price-volatility", 2)).price
    np.testing.assert_allclose(double.mean(axis=1), base.price.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(double.std(axis=1), 2 * base.price.std(axis=1), rtol=1e-9)


def test_load_battery_renewable_carbon_and_model_mix(day):
    base = compile_scenario(day)
    np.testing.assert_allclose(compile_scenario(vary(day, "load", 1.5)).arrivals,
                               1.5 * base.arrivals, rtol=1e-12)
    none = compile_scenario(vary(day, "battery", 0))
    assert not none.has_battery.any() and (none.ch_max == 0).all()
    half = compile_scenario(vary(day, "battery", 0.5))
    np.testing.assert_allclose(half.soc_max, 0.5 * base.soc_max)
    np.testing.assert_allclose(compile_scenario(vary(day, "renewable", 3)).renewable,
                               3 * base.renewable, rtol=1e-12)
    assert compile_scenario(vary(day, "carbon-price", 80)).carbon_price == 80
    same = compile_scenario(vary(day, "model-mix", "sd3,sd3,sd3"))
    assert same.models == ("sd3",) * 3 and same.gpu_s.max() == base.gpu_s.max()


def test_bad_sensitivity_values_name_the_key(day):
    with pytest.raises(ScenarioError, match="--values: load factors must be >= 0"):
        vary(day, "load", -1)
    with pytest.raises(ScenarioError, match="one model per site"):
        vary(day, "model-mix", "sd3")
    with pytest.raises(ScenarioError, match="sites\\[0\\].model"):
        vary(day, "model-mix", "nope,sd3,sd3")
    with pytest.raises(ScenarioError, match="--param"):
        vary(day, "gpu-count", 2)


def test_sweep_scales_a_known_optimum(tmp_path):
    """TINY without jobs, with a price spread worth one battery cycle: the oracle earns
    (200 x 7.2 - 10 x 10) / 1000 = $1.34 at price level 1 and that times the level;
    local-fixed leaves the battery idle and earns $0 (gap 1, captured 0)."""
    import json

    from optsched.reporting.sweep import sweep

    raw = json.loads(json.dumps(TINY))
    raw["sites"][0].update(price=[10.0, 200.0], export_cap_kw=100.0, sell_factor=1.0)
    raw["classes"][0]["arrivals"] = [0.0, 0.0]
    path = tmp_path / "arbitrage.toml"
    save_scenario(scenario_from_dict(raw), path)
    frame = sweep(str(path), [None], "price-level", [0.5, 2.0], ["greedy"],
                  out=tmp_path / "out", cache=tmp_path / "cache")
    assert (tmp_path / "out" / "sweep.png").stat().st_size > 0
    assert list(frame.columns) == ["param", "value", "day", "policy", "utility", "gap",
                                   "captured"]
    for v in (0.5, 2.0):
        rows = frame[frame.value == v].set_index("policy")
        assert rows.loc["oracle", "utility"] == pytest.approx(1.34 * v, rel=1e-9)
        assert rows.loc["oracle", "gap"] == 0.0 and rows.loc["oracle", "captured"] == 1.0
        assert rows.loc["local-fixed", "utility"] == pytest.approx(0.0, abs=1e-12)
        assert rows.loc["local-fixed", "captured"] == 0.0
        assert rows.loc["greedy", "utility"] <= rows.loc["oracle", "utility"] + 1e-9


def test_sweep_cli_rejects_a_bad_value_with_exit_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "optsched.cli", "sweep", "jemas-3",
                          "--param", "load", "--values", "1,abc", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == \
        "optsched: --values: load takes float values, got 'abc'"
    assert not any(tmp_path.iterdir())
