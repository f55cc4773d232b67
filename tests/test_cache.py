"""The oracle cache cannot lie: entries are checked before use (schema, scenario digest,
solver settings, a finite objective equal to the evaluator's utility of the stored
schedule); bad entries are solved again with a warning; concurrent runs agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from optsched.oracle import solve
from optsched.oracle.cache import cached_oracle, entry_key, scenario_key, solver_config
from optsched.scenario import compile_scenario, save_scenario, scenario_from_dict
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def arbitrage():
    """TINY without jobs, a price spread worth cycling the battery: the optimum is known
    by hand, (200 $/MWh x 7.2 kW - 10 $/MWh x 10 kW) x 1 h = $1.34 (tests/test_oracle.py)."""
    raw = json.loads(json.dumps(TINY))
    raw["sites"][0].update(price=[10.0, 200.0], export_cap_kw=100.0, sell_factor=1.0)
    raw["classes"][0]["arrivals"] = [0.0, 0.0]
    return compile_scenario(scenario_from_dict(raw))


OPTIMUM = (200 * 7.2 - 10 * 10) / 1000


def entry(cache: Path) -> tuple[Path, Path]:
    (meta,) = cache.glob("oracle-*.json")
    return meta, meta.with_suffix(".npz")


def test_a_hit_returns_the_stored_solution_without_solving(arbitrage, tmp_path):
    first = cached_oracle(arbitrage, tmp_path)
    assert first.objective == pytest.approx(OPTIMUM, rel=1e-9)
    meta, npz = entry(tmp_path)
    stamp = meta.stat().st_mtime_ns, npz.stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # a clean hit warns nothing
        again = cached_oracle(arbitrage, tmp_path)
    assert again.objective == first.objective
    assert (meta.stat().st_mtime_ns, npz.stat().st_mtime_ns) == stamp


def test_the_key_follows_the_scenario_and_the_solver_settings(arbitrage):
    changed = compile_scenario(scenario_from_dict({**TINY, "name": "x"}))
    digest = scenario_key(arbitrage)
    assert digest != scenario_key(changed)
    keys = {entry_key(digest, solver_config(*args)) for args in [
        ("highs", False, 1e-3, None), ("highs", True, 1e-3, None),
        ("pyomo", False, 1e-3, None), ("highs", False, 1e-4, None),
        ("highs", False, 1e-3, 10.0)]}
    assert len(keys) == 5


@pytest.mark.parametrize("edit", ["objective", "nan", "truncate", "pickle", "schema",
                                  "settings", "swap"])
def test_a_bad_entry_is_solved_again_with_a_warning(arbitrage, tmp_path, edit):
    cached_oracle(arbitrage, tmp_path)
    meta_path, npz = entry(tmp_path)
    meta = json.loads(meta_path.read_text())
    if edit == "objective":
        meta["objective"] += 100.0                         # an edited number
    elif edit == "nan":
        meta["objective"] = float("nan")
    elif edit == "schema":
        meta["schema"] = 99
    elif edit == "settings":
        meta["mip_gap"] = 0.5
    elif edit == "truncate":
        npz.write_bytes(npz.read_bytes()[:100])
    elif edit == "pickle":
        np.savez(npz, **{k: np.array([object()], dtype=object) for k in np.load(npz)})
    elif edit == "swap":                                   # another scenario's schedule
        other = solve(compile_scenario(scenario_from_dict(TINY)), "highs")
        other.schedule.save(npz)
    meta_path.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="not used"):
        got = cached_oracle(arbitrage, tmp_path)
    assert got.objective == pytest.approx(OPTIMUM, rel=1e-9)
    assert np.isfinite(json.loads(entry(tmp_path)[0].read_text())["objective"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # the rewritten entry is good
        assert cached_oracle(arbitrage, tmp_path).objective == got.objective


def test_an_entry_that_cannot_be_stored_warns_and_keeps_the_solution(arbitrage, tmp_path):
    """An entry's path taken by a folder: the solve is returned (the hand optimum) with
    one warning each for the unreadable and the unstored entry; it used to be lost to
    an OSError after the solve."""
    key = entry_key(scenario_key(arbitrage), solver_config("highs"))
    (tmp_path / f"oracle-{key}.json").mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = cached_oracle(arbitrage, tmp_path, "highs")
    assert got.objective == pytest.approx(OPTIMUM, abs=1e-6)
    said = [str(w.message) for w in caught]
    assert any("not used" in m for m in said) and any("not stored" in m for m in said)
    assert (tmp_path / f"oracle-{key}.json").is_dir()


def test_writes_leave_no_temporary_files(arbitrage, tmp_path):
    cached_oracle(arbitrage, tmp_path)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".npz"]


def test_two_processes_on_one_fresh_cache_agree(tmp_path):
    path = tmp_path / "tiny.toml"
    save_scenario(scenario_from_dict(TINY), path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "optsched.cli", "evaluate", str(path), "--policy", "greedy",
           "--json"]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    a, b = (json.loads(o) for o, _ in outs)
    assert a == b and a["oracle_utility"] is not None
    assert len(list((tmp_path / ".optsched-cache").glob("oracle-*.json"))) == 1
