"""The one day-selection parser: its grammar, accepted and refused."""

from __future__ import annotations

import subprocess
import sys

import pytest

from optsched.days import FORMS, parse_days
from optsched.errors import ScenarioError

# jemas-3: 365 days; held-out test days are day % 5 == 4 (73 of them), the rest train.
GOOD = [
    ("4", [4]),
    ("0", [0]),
    ("364", [364]),
    ("4..9", [4, 5, 6, 7, 8, 9]),
    ("7..7", [7]),
    ("4,9,14", [4, 9, 14]),
    (" 4, 9 ", [4, 9]),
    ("test:3", [4, 9, 14]),
    ("train:4", [0, 1, 2, 3]),
    ("test:73", list(range(4, 365, 5))),
]

BAD = ["5..3", "9..4", "test:0", "train:0", "test3", "tests", "train:", "test:-1",
       "test:74", "365", "0..365", "-1", "4,,9", "4,4", "x..y", "", "a", "4.5", "1e3",
       "test:1:2", "TEST",
       "4 9", "1 2..5", "\u0664", "\uff14"]      # "4 9" once read as day 49; non-ASCII digits


@pytest.mark.parametrize("spec,days", GOOD)
def test_accepted_forms(spec, days):
    assert parse_days(spec, "jemas-3") == days


def test_whole_splits_partition_the_year():
    test, train = parse_days("test", "jemas-3"), parse_days("train", "jemas-3")
    assert len(test) == 73 and len(train) == 292
    assert sorted(test + train) == list(range(365))
    assert all(d % 5 == 4 for d in test) and not any(d % 5 == 4 for d in train)


@pytest.mark.parametrize("spec", BAD)
def test_refused_forms_name_the_option_and_the_value(spec):
    with pytest.raises(ScenarioError, match="^--days: ") as e:
        parse_days(spec, "jemas-3")
    assert repr(spec) in str(e.value)


def test_no_spec_means_the_scenario_itself_and_files_take_no_days(tmp_path):
    assert parse_days(None, "jemas-3") == [None]
    with pytest.raises(ScenarioError, match="only applies to embedded"):
        parse_days("4", str(tmp_path / "x.toml"))


@pytest.mark.parametrize("spec", ["5..3", "test:0", "tests"])
def test_cli_exits_2_with_the_accepted_forms(spec):
    out = subprocess.run([sys.executable, "-m", "optsched.cli", "evaluate", "jemas-3",
                          "--days", spec, "--no-oracle"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "--days" in out.stderr
    assert FORMS in out.stderr or "N <=" in out.stderr or "A <= B" in out.stderr


def test_python_day_lists_are_checked_not_ignored():
    """Before, a Scenario object with days played its own day under the days' labels, a
    repeated label merged two days into one, True was day 1 and 4.0 failed in numpy."""
    import numpy as np

    from optsched import api

    sc, c4, c9 = api.load_scenario("jemas-3", 4), api.compiled("jemas-3", 4), \
        api.compiled("jemas-3", 9)
    assert [d for d, _ in api.days_of("jemas-3", np.array([4, 9]))] == [4, 9]
    assert [d for d, _ in api.days_of("jemas-3", 9)] == [9]
    assert api.days_of([c4, c9], ["a", "b"])[1] == ("b", c9)
    refused = [
        (lambda: api.days_of(sc, [9]), "days: selects days of a family by name"),
        (lambda: api.make_env(sc, days=[9]), "days: selects days of a family by name"),
        (lambda: api.solve_days(sc, days=[9]), "days: selects days of a family by name"),
        (lambda: api.rollout(sc, "greedy", day=9), "day: selects a day of a family"),
        (lambda: api.days_of([c4, c9], [7, 7]), "days: labels the 2 compiled days"),
        (lambda: api.days_of([c4, c9], "4,9"), "days: labels the 2 compiled days"),
        (lambda: api.days_of("jemas-3", [4, 4]), "days: a day is listed twice"),
        (lambda: api.days_of("jemas-3", []), "days: no day given"),
        (lambda: api.days_of("jemas-3", [4.0]), "days: must be an integer day number"),
        (lambda: api.load_scenario("jemas-3", True), "--day: must be an integer day"),
        (lambda: api.load_scenario(None), "SCENARIO: must be a family name or a TOML"),
    ]
    for call, message in refused:
        with pytest.raises(ScenarioError, match=f"^{message}"):
            call()
