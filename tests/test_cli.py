"""The command line contracts of INTERFACES.md: JSON on stdout only, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from optsched.evaluate import TERMS


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "optsched.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_scenario_show_prints_tables_and_json():
    out = run("scenario", "show", "jemas-3")
    assert out.returncode == 0, out.stderr
    for word in ("sd15", "sdxl", "sd3", "pjm-interactive", "ercot-batch", "import cap kW"):
        assert word in out.stdout
    js = run("scenario", "show", "jemas-3", "--day", "10", "--json")
    data = json.loads(js.stdout)
    assert data["name"] == "jemas-3/day-010" and len(data["sites"]) == 3


def test_evaluate_json_contract():
    out = run("evaluate", "jemas-3", "--policy", "local-fixed", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)                       # exactly one JSON object
    assert set(TERMS) == set(data["terms"])
    assert {"utility", "terms", "oracle_utility", "gap", "jobs", "feasible"} <= set(data)
    revenue = data["terms"].pop("revenue")
    assert data["utility"] == pytest.approx(revenue - sum(data["terms"].values()), rel=1e-9)
    assert data["feasible"]


def test_evaluate_over_days_and_writes_csv(tmp_path):
    out = run("evaluate", "jemas-3", "--days", "test:2", "--out", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [d["day"] for d in data["days"]] == [4, 9]
    assert (tmp_path / "slots_day004.csv").is_file() and (tmp_path / "sites_day009.csv").is_file()


@pytest.mark.parametrize("args", [
    ("evaluate", "jemas-3", "--policy", "nope"),
    ("evaluate", "jemas-3", "--days", "x..y"),
    ("evaluate", "jemas-3", "--unknown-flag"),
    ("scenario", "build", "--day", "2023-13-45", "--out", "x.toml"),
    ("bench", "nope"),
    ("sweep", "jemas-3", "--param", "gpus", "--values", "1"),
    ("report", "jemas-3", "--metrics", "missing.csv"),
    ("train", "--action", "sideways"),
])
def test_bad_arguments_exit_2_with_one_line(args):
    out = run(*args)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("optsched: ") and out.stderr.count("\n") == 1
    assert out.stdout == ""
