"""The command line contracts of INTERFACES.md: JSON on stdout only, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from optsched.evaluator import TERMS


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


def arbitrage_toml(tmp_path) -> str:
    """TINY without jobs, with a price spread worth one battery cycle: the oracle earns
    (200 x 7.2 - 10 x 10) / 1000 = $1.34; local-fixed idles and earns exactly $0."""
    from optsched.scenario import save_scenario, scenario_from_dict
    from tests.conftest import TINY

    raw = json.loads(json.dumps(TINY))
    raw["sites"][0].update(price=[10.0, 200.0], export_cap_kw=100.0, sell_factor=1.0)
    raw["classes"][0]["arrivals"] = [0.0, 0.0]
    path = tmp_path / "arbitrage.toml"
    save_scenario(scenario_from_dict(raw), path)
    return str(path)


def test_evaluate_json_contract_on_a_scenario_known_by_hand(tmp_path):
    out = subprocess.run([sys.executable, "-m", "optsched.cli", "evaluate",
                          arbitrage_toml(tmp_path), "--policy", "local-fixed", "--json"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)                       # exactly one JSON object
    assert set(TERMS) == set(data["terms"])
    assert data["utility"] == pytest.approx(0.0, abs=1e-12)
    assert data["oracle_utility"] == pytest.approx(1.34, rel=1e-9)
    assert data["gap"] == pytest.approx(1.0, rel=1e-9)
    assert data["captured"] == 0.0
    assert data["feasible"]


def test_a_bad_cache_entry_is_one_warning_line_and_solved_again(tmp_path):
    toml, cache = arbitrage_toml(tmp_path), tmp_path / "cache"
    argv = ("report", toml, "--policy", "local-fixed", "--cache", str(cache),
            "--no-simulate", "--ablate-policy", "none")
    first = run(*argv, "--out", str(tmp_path / "r1"))
    assert first.returncode == 0 and "warning" not in first.stderr, first.stderr
    (meta,) = cache.glob("*.json")
    meta.write_text(meta.read_text().replace('"objective": ', '"objective": 1'))
    again = run(*argv, "--out", str(tmp_path / "r2"))
    assert again.returncode == 0, again.stderr
    warned = [ln for ln in again.stderr.splitlines() if "warning" in ln.lower()]
    assert len(warned) == 1 and warned[0].startswith("optsched: warning: oracle cache "
                                                     "entry"), again.stderr
    assert "warnings.warn" not in again.stderr              # not Python's source line


def test_version_and_a_closed_pipe():
    from importlib.metadata import version

    assert run("--version").stdout.strip() == f"optsched {version('optsched')}"
    shown = subprocess.run(f"{sys.executable} -m optsched.cli scenario show jemas-3 | head -1",
                           shell=True, capture_output=True, text=True, timeout=120,
                           executable="/bin/bash")
    piped = subprocess.run(f"set -o pipefail; {sys.executable} -m optsched.cli scenario show "
                           "jemas-3 | head -1 > /dev/null", shell=True, capture_output=True,
                           text=True, timeout=120, executable="/bin/bash")
    assert shown.stdout.startswith("jemas-3/day-004")
    assert piped.returncode == 0 and "Error" not in piped.stderr, piped.stderr


def test_a_bare_call_shows_the_commands_and_no_empty_error_line():
    bare = run()
    assert "Usage:" in bare.stdout and "solve" in bare.stdout
    assert bare.stderr.strip() == "", bare.stderr


def test_unknown_policy_lists_every_kind():
    out = run("evaluate", "jemas-3", "--policy", "nope", "--no-oracle")
    assert out.returncode == 2
    for word in ("local-fixed", "greedy", "mpc-noisy", "learned", "PATH.pt"):
        assert word in out.stderr


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
    ("train", "--checkpoint-every", "0"),
    ("evaluate", "jemas-3", "--days", "5..3"),
    ("evaluate", "jemas-3", "--days", "tests"),
    ("report", "jemas-3", "--days", "test:0"),
    ("solve", "jemas-3", "--backend", "gurobi"),
    ("evaluate", "jemas-3", "--ablate", "no-gpus"),
])
def test_bad_arguments_exit_2_with_one_line(args):
    out = run(*args)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("optsched: ") and out.stderr.count("\n") == 1
    assert out.stdout == ""


def test_demo_shows_the_default_and_the_hard_family(tmp_path, capsys):
    """Both first held-out days, the learned scheduler beside local-fixed on each; the old
    JSON keys stay (the default's table). Jobs are conserved: every job that arrived (the
    scenario's own arrivals, summed here) is served or dropped."""
    from optsched.api import load_scenario

    policies = ["--policy", "local-fixed", "--policy", "learned"]
    js = subprocess.run([sys.executable, "-m", "optsched.cli", "demo", *policies, "--json"],
                        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert js.returncode == 0, js.stderr
    data = json.loads(js.stdout)
    tables = data["scenarios"]
    assert [t["scenario"] for t in tables] == ["jemas-3/day-004", "jemas-3-genai/day-004"]
    assert {"scenario": data["scenario"], "rows": data["rows"]} == tables[0]
    for table, family in zip(tables, ("jemas-3", "jemas-3-genai"), strict=True):
        rows = {r["policy"]: r for r in table["rows"]}
        assert list(rows) == ["oracle (MILP)", "local-fixed", "learned"]
        assert rows["oracle (MILP)"]["gap"] == pytest.approx(0.0, abs=1e-9)
        assert rows["local-fixed"]["transferred"] == 0.0          # it never moves a job
        assert rows["local-fixed"]["captured"] == 0.0
        arrived = sum(sum(cl.arrivals) for cl in load_scenario(family, 4).classes)
        for r in rows.values():
            assert r["served"] + r["dropped"] == pytest.approx(arrived, rel=1e-9), r["policy"]
            assert r["feasible"]
        assert rows["learned"]["gap"] < rows["local-fixed"]["gap"]
    # the text form of the same tables (what `demo` prints after the default's summary)
    from optsched.reporting import terminal

    for table in tables:
        terminal.demo(table["scenario"], table["rows"])
    text = capsys.readouterr().out
    for title in ("policies on jemas-3/day-004", "policies on jemas-3-genai/day-004"):
        assert title in text
    assert text.count("learned") == 2 and text.count("oracle (MILP)") == 2


def test_a_scenario_file_runs_in_simulate_sweep_and_report_on_its_own_horizon(tmp_path):
    """A TOML file has one horizon and no days: simulate, sweep and report run on it
    without --days (they refused every file before: their family defaults, test:1 and
    test:7, were applied to it). The arbitrage day is known by hand: local-fixed earns
    exactly $0 and the oracle $1.34."""
    path = arbitrage_toml(tmp_path)
    sim = subprocess.run([sys.executable, "-m", "optsched.cli", "simulate", path,
                          "--policy", "local-fixed", "--json"], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path)
    assert sim.returncode == 0, sim.stderr
    days = json.loads(sim.stdout)["days"]
    assert len(days) == 1 and days[0]["day"] is None
    assert days[0]["utility"] == pytest.approx(0.0, abs=1e-9)
    sweep = subprocess.run([sys.executable, "-m", "optsched.cli", "sweep", path, "--param",
                            "price-level", "--values", "1", "--policy", "local-fixed",
                            "--out", str(tmp_path / "sweep"), "--json"],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr
    rows = {r["policy"]: r for r in json.loads(sweep.stdout)["rows"]}
    assert rows["oracle"]["utility"] == pytest.approx(1.34, rel=1e-6)
    assert rows["local-fixed"]["gap"] == pytest.approx(1.0, rel=1e-6)
    report = subprocess.run([sys.executable, "-m", "optsched.cli", "report", path,
                             "--policy", "local-fixed", "--ablate-policy", "none",
                             "--no-simulate", "--out", str(tmp_path / "report")],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report" / "report.md").is_file()


def test_solving_a_file_names_no_day_and_a_report_ablates_only_its_policies(tmp_path):
    """A file has no day number, so its progress line names none (it read "day None");
    a report without `learned` adds no `learned [no-...]` rows that have no `learned`
    row to compare with, while one that asks for ablations of its own policy gets them."""
    import pandas as pd

    out = run("solve", arbitrage_toml(tmp_path), "--relax", "--backend", "highs")
    assert out.returncode == 0, out.stderr
    assert "None" not in out.stderr
    for policies, ablated, want in ((["greedy"], [], set()),
                                    (["greedy"], ["--ablate-policy", "greedy"],
                                     {"greedy [no-transfer]"})):
        folder = tmp_path / f"report-{len(ablated)}"
        args = [a for p in policies for a in ("--policy", p)] + ablated
        rep = run("report", "jemas-3", "--days", "4", *args, "--no-simulate", "--out",
                  str(folder), "--cache", str(tmp_path / "cache"), timeout=600)
        assert rep.returncode == 0, rep.stderr
        names = set(pd.read_csv(folder / "results.csv")["policy"])
        assert {n for n in names if "[" in n} >= want
        assert all(n.startswith("greedy") or "[" not in n for n in names)
        if not want:
            assert not any("[" in n for n in names), names


def test_a_day_with_nothing_to_gain_has_no_gap_and_no_error(tmp_path):
    """TINY without jobs and with a flat price: the oracle earns exactly $0, so the gap
    is undefined (null in JSON, said so on the terminal); it was an internal error."""
    from optsched.scenario import save_scenario, scenario_from_dict
    from tests.conftest import TINY

    raw = json.loads(json.dumps(TINY))
    raw["sites"][0].update(price=[50.0, 50.0])
    raw["classes"][0]["arrivals"] = [0.0, 0.0]
    path = tmp_path / "idle.toml"
    save_scenario(scenario_from_dict(raw), path)
    js = run("evaluate", str(path), "--policy", "greedy", "--json")
    assert js.returncode == 0, js.stderr
    data = json.loads(js.stdout)
    assert data["oracle_utility"] == pytest.approx(0.0, abs=1e-9)
    assert data["gap"] is None and data["utility"] == pytest.approx(0.0, abs=1e-9)
    text = run("evaluate", str(path), "--policy", "greedy")
    assert text.returncode == 0, text.stderr
    assert "gap to it none" in text.stdout
