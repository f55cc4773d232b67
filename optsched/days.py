"""Day selection for embedded scenario families: the one parser behind every `--days`.

Grammar (days are numbers of the family, 0 .. n_days - 1; jemas-3 and jemas-3-genai have
365, and the held-out test days are those with day % 5 == 4):

    N           one day                       e.g. 4
    A..B        A to B inclusive, A <= B      e.g. 4..9
    A,B,C       a list, no repeats            e.g. 4,9,14
    test        every held-out test day
    train       every training day
    test:N      the first N test days, N >= 1
    train:N     the first N training days, N >= 1

Anything else is a ScenarioError (CLI exit 2) that lists these forms.
"""

from __future__ import annotations

import re
from pathlib import Path

from optsched.errors import ScenarioError

FORMS = "N, A..B (A <= B), A,B,C, test, train, test:N or train:N (N >= 1)"

_INT = r"\d+"
_SPLIT = re.compile(rf"^(test|train)(?::({_INT}))?$")
_RANGE = re.compile(rf"^({_INT})\.\.({_INT})$")
_LIST = re.compile(rf"^{_INT}(,{_INT})*$")


def parse_days(spec: str | None, source: str | Path = "jemas-3",
               key: str = "--days", default: str | None = None) -> list[int | None]:
    """The days `spec` selects in the family `source`; when `spec` is None, `default` for a
    family and `[None]` (the scenario's own single horizon) for a file."""
    from optsched.scenario import family, is_embedded

    if spec is None and default is not None and is_embedded(source):
        spec = default
    if spec is None:
        return [None]
    if not is_embedded(source):
        raise ScenarioError(key, "only applies to embedded scenarios", spec)
    fam = family(source)
    bad = ScenarioError(key, f"expected {FORMS}", spec)
    # Spaces around the separators only: "4 9" is not day 49.
    if re.search(r"[0-9]\s+[0-9]", spec) or not spec.isascii():
        raise bad
    text = "".join(spec.split())
    if m := _SPLIT.match(text):
        days = fam.test_days() if m[1] == "test" else fam.train_days()
        if m[2] is None:
            return list(days)
        count = int(m[2])
        if not 1 <= count <= len(days):
            raise ScenarioError(key, f"{m[1]}:N needs 1 <= N <= {len(days)}", spec)
        return list(days[:count])
    if m := _RANGE.match(text):
        a, b = int(m[1]), int(m[2])
        if a > b:
            raise ScenarioError(key, f"A..B needs A <= B ({FORMS})", spec)
        days = list(range(a, b + 1))
    elif _LIST.match(text):
        days = [int(d) for d in text.split(",")]
        if len(set(days)) != len(days):
            raise ScenarioError(key, "a day is listed twice", spec)
    else:
        raise bad
    n = fam.n_days()
    outside = [d for d in days if d >= n]
    if outside:
        raise ScenarioError(key, f"days of {source} are 0..{n - 1} ({outside[0]} is not)",
                            spec)
    return days


def day_number(day: object, key: str = "day") -> int:
    """A day given in Python as an int (an int or numpy integer, not a bool: `True` was
    day 1, a float or text failed deep in numpy)."""
    import numpy as np

    if isinstance(day, bool) or not isinstance(day, (int, np.integer)):
        raise ScenarioError(key, f"must be an integer day number, not {type(day).__name__}",
                            day)
    return int(day)


def one_horizon(key: str, days: object) -> ScenarioError:
    """The error for days given with a Scenario or Compiled object (they were ignored, and
    the rows labelled with them)."""
    what = "a day" if key == "day" else "days"
    return ScenarioError(key, f"selects {what} of a family by name (e.g. 'jemas-3'); a "
                         "Scenario object is one horizon", days)


def day_list(days: object, source: object, key: str = "days") -> list[int | None]:
    """The days of a Python call: a spec (`parse_days`), an int, or a sequence of ints, for
    a family name or file; None gives a file's own horizon. A Scenario or Compiled object
    is one horizon: days are refused there (they were ignored, and the rows labelled with
    them). Repeats and empty lists are refused."""
    if days is None:
        return parse_days(None, source) if isinstance(source, (str, Path)) else [None]
    if not isinstance(source, (str, Path)):
        if isinstance(days, (list, tuple)) and list(days) == [None]:
            return [None]
        raise one_horizon(key, days)
    if isinstance(days, str):
        return parse_days(days, source, key)
    from optsched.scenario import is_embedded

    if not isinstance(days, (list, tuple, range)) and not hasattr(days, "__array__"):
        days = [days]
    # None: the scenario's own horizon (a family's first held-out day)
    out = [None if d is None else day_number(d, key) for d in list(days)]
    if not is_embedded(source) and out != [None]:
        raise ScenarioError(key, "only applies to embedded scenarios (a file is one "
                            "horizon: days=None)", days)
    if not out:
        raise ScenarioError(key, "no day given", [])
    if len(set(out)) != len(out):
        raise ScenarioError(key, "a day is listed twice", out)
    return out
