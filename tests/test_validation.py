"""Every validation rule of the scenario loader: key path and value in a one-line error."""

from __future__ import annotations

import copy
import math
import subprocess
import sys

import numpy as np
import pytest

from optsched.errors import ScenarioError
from optsched.scenario import scenario_from_dict
from tests.conftest import TINY, two_sites


def mutate(fn):
    raw = copy.deepcopy(TINY)
    fn(raw)
    return raw


def set_(path, value):
    """A mutation setting raw[path...] = value (path of keys and indices)."""
    def fn(raw):
        node = raw
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return fn


def delete(path):
    def fn(raw):
        node = raw
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return fn


CASES = [
    # unknown keys, with a hint
    ("unknown key", set_(["sites", 0, "colour"], 1), "sites[0].colour: unknown key"),
    ("unknown key hint", set_(["sites", 0, "import_cap"], 1.0),
     "did you mean 'import_cap_kw'?"),
    ("unknown top key", set_(["horizons"], {}), "horizons: unknown key"),
    ("unknown battery key", set_(["sites", 0, "battery", "eta"], 0.9),
     "sites[0].battery.eta: unknown key"),
    # missing keys
    ("missing key", delete(["sites", 0, "import_cap_kw"]),
     "sites[0].import_cap_kw: missing required key"),
    ("missing price", delete(["sites", 0, "price"]), "sites[0].price: missing required key"),
    ("missing kind key", delete(["classes", 0, "deadline_s"]),
     "classes[0].deadline_s: missing required key for interactive classes"),
    # wrong types
    ("string for number", set_(["sites", 0, "gpus"], "two"), "sites[0].gpus: must be a valid"),
    ("bool for number", set_(["sites", 0, "util_cap"], True), "sites[0].util_cap"),
    ("string in series", set_(["classes", 0, "arrivals"], [1.0, "x"]),
     "classes[0].arrivals[1]: must be a number, got 'x'"),
    ("table for list", set_(["horizon", "steps"], 5), "horizon.steps: must be a valid list"),
    # NaN / inf anywhere
    ("nan in series", set_(["sites", 0, "price"], [math.nan, 1.0]),
     "sites[0].price[0]: must be a finite number, got nan"),
    ("inf scalar", set_(["sites", 0, "import_cap_kw"], math.inf),
     "sites[0].import_cap_kw: must be a finite number, got inf"),
    ("nan in battery", set_(["sites", 0, "battery", "eta_c"], math.nan),
     "sites[0].battery.eta_c: must be a finite number"),
    # ranges
    ("negative arrivals", set_(["classes", 0, "arrivals"], [-1.0, 5.0]),
     "classes[0].arrivals[0]: must be in [0, 1e+09], got -1"),
    ("negative capacity", set_(["sites", 0, "import_cap_kw"], -5.0),
     "sites[0].import_cap_kw: must be in (0, 1e+07], got -5"),
    ("price too high", set_(["sites", 0, "price"], [1.0, 50000.0]),
     "sites[0].price[1]: must be in [-1000, 10000], got 50000"),
    ("pue below 1", set_(["sites", 0, "pue"], 0.9), "sites[0].pue[0]: must be in [1, 3]"),
    ("negative gpus", set_(["sites", 0, "gpus"], -1), "sites[0].gpus: must be an integer in"),
    ("efficiency above 1", set_(["sites", 0, "battery", "eta_c"], 1.7),
     "sites[0].battery.eta_c: must be in (0, 1], got 1.7"),
    ("efficiency zero", set_(["sites", 0, "battery", "eta_d"], 0.0),
     "sites[0].battery.eta_d: must be in (0, 1], got 0"),
    ("negative ch max", set_(["sites", 0, "battery", "ch_max_kw"], -1.0),
     "sites[0].battery.ch_max_kw: must be in [0, 1e+07]"),
    # series of the wrong length
    ("short series", set_(["sites", 0, "price"], [1.0]),
     "sites[0].price: must have 2 values, one per slot"),
    ("long arrivals", set_(["classes", 0, "arrivals"], [1.0, 2.0, 3.0]),
     "classes[0].arrivals: must have 2 values"),
    ("hourly wrong count", set_(["sites", 0, "price"], {"values": [1.0, 2.0, 3.0], "hourly": True}),
     "sites[0].price.values: must have 2 hourly values for 2 slots of 60 min"),
    # a CSV's options beside values were ignored: scale = 2 left the prices unscaled
    ("scale beside values", set_(["sites", 0, "price"], {"values": [1.0, 2.0], "scale": 2.0}),
     "sites[0].price.scale: applies to a csv table, not to values"),
    # names
    ("unknown model", set_(["sites", 0, "model"], "sd9"),
     "sites[0].model: unknown model (known: m), got 'sd9'"),
    ("unknown home", set_(["classes", 0, "home"], "zz"),
     "classes[0].home: unknown site (known: a), got 'zz'"),
    ("bad kind", set_(["classes", 0, "kind"], "batch"), "classes[0].kind: must be 'interactive'"),
    # soc ordering
    ("soc max above capacity", set_(["sites", 0, "battery", "soc_max_kwh"], 25.0),
     "sites[0].battery.soc_max_kwh: must be <= capacity_kwh (20), got 25"),
    ("soc min above max", set_(["sites", 0, "battery", "soc_min_kwh"], 19.0),
     "sites[0].battery.soc0_kwh: must be in [soc_min_kwh, soc_max_kwh]"),
    ("soc min above soc max", lambda r: r["sites"][0]["battery"].update(
        soc_min_kwh=15.0, soc_max_kwh=12.0, soc0_kwh=13.0),
     "sites[0].battery.soc_min_kwh: must be <= soc_max_kwh (12), got 15"),
    # steps / clocks
    ("unsorted steps", set_(["horizon", "steps"], [30, 10]), "horizon.steps: must be strictly"),
    # unreachable quality
    ("unreachable min_quality", lambda r: (
        r["models"][0].update(quality={"a": 0.5, "b": 1.0, "c": 0.0, "d": 0.0}),
        r["classes"][0].update(min_quality=0.9)),
     "classes[0].min_quality: no option reaches it (best is 0.5, m at a, 30 steps), got 0.9"),
    ("deferrable wait too long", lambda r: r["classes"][0].update(
        kind="deferrable", max_wait_slots=5, wait_cost=0.0),
     "classes[0].max_wait_slots: must be below the horizon (2 slots), got 5"),
]


@pytest.mark.parametrize(("label", "fn", "expected"), CASES, ids=[c[0] for c in CASES])
def test_validation_error_names_key_and_value(label, fn, expected):
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(mutate(fn))
    message = str(info.value)
    assert expected in message, message
    assert "\n" not in message


@pytest.mark.parametrize(("key", "matrix", "expected"), [
    ("transfer_cost", [[0.0, 1.0]], "network.transfer_cost: must be a 2x2 matrix in site "
                                    "order, got 1x2"),
    ("transfer_latency_s", [[0.0, 1.0], [1.0]], "must be a 2x2 matrix"),
    ("transfer_latency_s", [[0.1, 1.0], [1.0, 0.0]],
     "network.transfer_latency_s[0][0]: must be 0 on the diagonal, got 0.1"),
    ("transfer_cost", [[0.0, -1.0], [1.0, 0.0]], "network.transfer_cost[0][1]: must be in"),
])
def test_matrix_shape_and_content(key, matrix, expected):
    raw = two_sites(TINY)
    raw["network"][key] = matrix
    with pytest.raises(ScenarioError, match=None) as info:
        scenario_from_dict(raw)
    assert expected in str(info.value)


def test_duplicate_names_are_rejected():
    raw = two_sites(TINY)
    raw["sites"][1]["name"] = "a"
    with pytest.raises(ScenarioError, match=r"sites\[1\].name: duplicate name, got 'a'"):
        scenario_from_dict(raw)


def test_error_counts_further_problems():
    raw = mutate(lambda r: (r["sites"][0].update(gpus="x", util_cap=7.0)))
    with pytest.raises(ScenarioError, match=r"and 1 more problem"):
        scenario_from_dict(raw)


def test_cli_reports_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[horizon]\nslots = 2\nslot_minutes = 60\n[[models]]\nname = 'm'\n")
    out = subprocess.run([sys.executable, "-m", "optsched.cli", "scenario", "validate",
                          str(bad)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert "models[0].step_time_s: missing required key" in out.stderr
    assert out.stdout == ""


def test_cli_rejects_bad_toml_and_unknown_scenario(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("[horizon\n")
    for args in (["scenario", "show", str(bad)], ["scenario", "show", "no-such-thing"],
                 ["scenario", "show", "jemas-3", "--day", "999"]):
        out = subprocess.run([sys.executable, "-m", "optsched.cli", *args],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr and out.stderr.startswith("optsched: ")


# Degenerate inputs (issue 14): each must be a one-line ScenarioError that names its key,
# not a traceback later (steps = [] crashed in the quality check; clocks = [] validated
# and then broke every solver; an empty or multi-line name produced a misleading error).
DEGENERATE = [
    ("empty steps", set_(["horizon", "steps"], []), "horizon.steps"),
    ("empty clocks", set_(["horizon", "clocks"], []), "horizon.clocks"),
    ("empty sites", set_(["sites"], []), "sites"),
    ("empty classes", set_(["classes"], []), "classes"),
    ("empty models", set_(["models"], []), "models"),
    ("zero slots", set_(["horizon", "slots"], 0), "horizon.slots"),
    ("zero slot minutes", set_(["horizon", "slot_minutes"], 0), "horizon.slot_minutes"),
    ("zero step", set_(["horizon", "steps"], [0, 10]), "horizon.steps[0]"),
    ("zero clock", set_(["horizon", "clocks"], [0.0, 1.0]), "horizon.clocks[0]"),
    ("nan clock", set_(["horizon", "clocks"], [math.nan]), "horizon.clocks[0]"),
    ("negative carbon price", set_(["horizon", "carbon_price"], -1.0), "horizon.carbon_price"),
    ("nan carbon price", set_(["horizon", "carbon_price"], math.nan), "horizon.carbon_price"),
    ("zero step time", set_(["models", 0, "step_time_s"], 0.0), "models[0].step_time_s"),
    ("negative step energy", set_(["models", 0, "step_energy_j"], -1.0),
     "models[0].step_energy_j"),
    ("zero deadline", set_(["classes", 0, "deadline_s"], 0.0), "classes[0].deadline_s"),
    ("nan revenue", set_(["classes", 0, "revenue_per_job"], math.nan),
     "classes[0].revenue_per_job"),
    ("zero battery capacity", set_(["sites", 0, "battery", "capacity_kwh"], 0.0),
     "sites[0].battery.capacity_kwh"),
    ("zero util cap", set_(["sites", 0, "util_cap"], 0.0), "sites[0].util_cap"),
    ("empty price list", set_(["sites", 0, "price"], []), "sites[0].price"),
    ("empty price table", set_(["sites", 0, "price"], {}), "sites[0].price"),
    ("empty arrivals", set_(["classes", 0, "arrivals"], []), "classes[0].arrivals"),
    ("empty matrix", set_(["network"], {"transfer_cost": []}), "network.transfer_cost"),
    ("empty matrix row", set_(["network"], {"transfer_latency_s": [[]]}),
     "network.transfer_latency_s"),
    ("empty site name", set_(["sites", 0, "name"], ""), "sites[0].name"),
    ("blank model name", set_(["models", 0, "name"], "  "), "models[0].name"),
    ("empty class name", set_(["classes", 0, "name"], ""), "classes[0].name"),
    ("multi-line site name", set_(["sites", 0, "name"], "a\nb"), "sites[0].name"),
    ("empty csv path", set_(["sites", 0, "price"], {"csv": ""}), "sites[0].price.csv"),
]


@pytest.mark.parametrize(("label", "fn", "key"), DEGENERATE, ids=[c[0] for c in DEGENERATE])
def test_degenerate_input_is_a_one_line_error_naming_its_key(label, fn, key):
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(mutate(fn))
    message = str(info.value)
    assert message.startswith(f"{key}: "), message
    assert "\n" not in message and "\r" not in message


def test_cli_refuses_empty_steps_and_clocks_with_exit_2(tmp_path):
    from optsched.scenario import dumps_scenario

    good = dumps_scenario(scenario_from_dict(TINY))
    for key, line in (("steps", "steps = [10, 30]"), ("clocks", "clocks = [0.5, 1.0]")):
        assert line in good
        bad = tmp_path / f"no-{key}.toml"
        bad.write_text(good.replace(line, f"{key} = []"))
        out = subprocess.run([sys.executable, "-m", "optsched.cli", "scenario", "validate",
                              str(bad)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip() == f"optsched: horizon.{key}: must list at least one " \
                                     "value, got [] (0 items)"


# CSV references: resolved against the scenario's folder, confined to it unless allowed,
# and no error ever shows what the file contains.
def _with_csv(tmp_path, csv, column="usd"):
    raw = copy.deepcopy(TINY)
    raw["sites"][0]["price"] = {"csv": str(csv), "column": column}
    return raw


@pytest.fixture
def folders(tmp_path):
    """<tmp>/scenario/ holds the scenario; <tmp>/outside.csv lies beside it."""
    inside = tmp_path / "scenario"
    inside.mkdir()
    (inside / "p.csv").write_text("usd\n10\n20\n")
    (tmp_path / "outside.csv").write_text("usd\n30\n40\n")
    return inside


@pytest.mark.parametrize("csv", ["../outside.csv", "ABSOLUTE", "sub/../../outside.csv",
                                 "link.csv"])
def test_csv_paths_leaving_the_scenario_folder_are_refused(folders, csv):
    if csv == "ABSOLUTE":
        csv = str(folders.parent / "outside.csv")
    (folders / "link.csv").symlink_to(folders.parent / "outside.csv")
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(_with_csv(folders, csv), folders)
    message = str(info.value)
    assert message.startswith("sites[0].price.csv: must be a path inside the scenario's "
                              "folder") and "\n" not in message
    assert "allow" in message
    # Allowed explicitly, the same reference reads the file.
    sc = scenario_from_dict(_with_csv(folders, csv), folders, allow_outside=True)
    assert sc.sites[0].price == [30.0, 40.0]


def test_csv_paths_resolve_against_the_scenario_file_not_the_working_directory(
        folders, monkeypatch, tmp_path):
    from optsched.scenario import dumps_scenario, load_scenario

    text = dumps_scenario(scenario_from_dict(TINY)).replace(
        "price = [100.0, 200.0]", 'price = { csv = "p.csv", column = "usd" }')
    (folders / "s.toml").write_text(text)
    monkeypatch.chdir(tmp_path)                  # p.csv is not in the working directory
    assert load_scenario(folders / "s.toml").sites[0].price == [10.0, 20.0]
    (folders / "s.toml").write_text(text.replace('"p.csv"', '"../outside.csv"'))
    with pytest.raises(ScenarioError, match="must be a path inside"):
        load_scenario(folders / "s.toml")
    assert load_scenario(folders / "s.toml", allow_outside=True).sites[0].price == [30.0, 40.0]
    import optsched  # the public API takes it too (docs/security.md says so)

    assert optsched.load_scenario(folders / "s.toml", allow_outside=True).sites[0].price == \
        [30.0, 40.0]


SECRET = "TOKEN=hunter2-do-not-print"


@pytest.mark.parametrize(("content", "column", "expected"), [
    (f"{SECRET}\n1,2\n3,4,5\n", "usd", "p.csv cannot be parsed as CSV at line 3"),
    (f'{SECRET}\n"1,2\n', "usd", "p.csv cannot be parsed as CSV"),
    (f"{SECRET},usd\n1,2\n3,4\n", "missing", "no such column in p.csv (it has 2 columns)"),
    (f"{SECRET},other\n1,2\n3,4\n", None, "p.csv has 2 numeric columns"),
    (f"usd\n{SECRET}\n3\n", "usd", "non-numeric or missing value in p.csv row 0"),
    ("", "usd", "p.csv has no CSV header or rows"),
])
def test_csv_errors_never_echo_the_file(folders, content, column, expected):
    (folders / "p.csv").write_text(content)
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(_with_csv(folders, "p.csv", column), folders)
    message = str(info.value)
    assert expected in message, message
    assert "hunter2" not in message and "TOKEN" not in message
    assert "\n" not in message


def test_binary_csv_is_one_line(folders):
    (folders / "p.csv").write_bytes(b"\xff\xfe" + SECRET.encode() + b"\n\x00\x81\n")
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(_with_csv(folders, "p.csv"), folders)
    assert str(info.value) == "sites[0].price.csv: p.csv is not UTF-8 text"


def test_a_scenario_changed_without_validation_is_checked_when_compiled():
    """pydantic's model_copy(update=...) skips validation: a battery efficiency of 1.7
    solved and scored higher, negative GPUs rolled out. compile_scenario, which every
    solve, rollout and evaluation goes through, checks it again."""
    from optsched.errors import ScenarioError
    from optsched.scenario import compile_scenario, get_scenario

    sc = get_scenario("jemas-3", 4)
    s0 = sc.sites[0]
    battery = s0.battery.model_copy(update={"eta_c": 1.7})
    bad = [(sc.model_copy(update={"sites": [s0.model_copy(update={"battery": battery}),
                                            *sc.sites[1:]]}),
            r"^sites\[0\]\.battery\.eta_c: must be in \(0, 1\], got 1.7"),
           (sc.model_copy(update={"sites": [s0.model_copy(update={"gpus": -3}),
                                            *sc.sites[1:]]}), r"^sites\[0\]\.gpus: "),
           (sc.model_copy(update={"sites": []}), r"^sites: must list at least one")]
    for changed, message in bad:
        with pytest.raises(ScenarioError, match=message):
            compile_scenario(changed)
    ok = compile_scenario(sc.model_copy(update={"name": "renamed"}))
    np.testing.assert_array_equal(ok.price, compile_scenario(sc).price)
