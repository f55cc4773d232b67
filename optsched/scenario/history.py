"""Which day of an embedded family a compiled day is, and that family's earlier days.

Forecasts are built from the past: a policy playing day d of a family reads the arrivals
of days before d. A policy only holds the day's `Compiled`, so `get_scenario` remembers
each embedded day it builds under a key of what is known before the day starts (its
day-ahead prices and its GPU counts, never its arrivals), and `identify` looks it up.
"""

from __future__ import annotations

import functools
import hashlib
import re

import numpy as np

from optsched.scenario.compile import Compiled
from optsched.scenario.schema import Scenario

_SEEN: dict[str, tuple[str, int]] = {}


def _key(price: np.ndarray, gpus: np.ndarray) -> str:
    h = hashlib.sha256(np.ascontiguousarray(price, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(gpus, dtype=np.float64).tobytes())
    return h.hexdigest()


def remember(sc: Scenario, source: str, day: int) -> None:
    remember_arrays(np.array([s.price for s in sc.sites], float),
                    np.array([s.gpus for s in sc.sites], float), source, day)


def remember_arrays(price: np.ndarray, gpus: np.ndarray, source: str, day: int) -> None:
    """`remember` from a compiled day's price [I, T] and GPU counts [I] (a day bank read
    from its disk cache builds no Scenario for its days)."""
    _SEEN[_key(price, gpus)] = (source, int(day))


def identify(c: Compiled) -> tuple[str, int] | None:
    """(family, day) of a day built by `get_scenario` or `claim`ed, else None."""
    return _SEEN.get(_key(c.price, c.gpus))


_DAY_NAME = re.compile(r"^(?P<source>[a-z0-9-]+)/day-(?P<day>\d+)$")


def claim(sc: Scenario) -> None:
    """A scenario named as a family's day (`jemas-3/day-004`: an exported day file, a day
    rebuilt from its dict) is that day when its day-ahead prices and GPU counts are the
    day's own (the day is built once to compare). Without this, a forecasting policy
    read that family's past days only if the process had built the day before: the same
    file scored differently in a fresh process and a warm one."""
    m = _DAY_NAME.match(sc.name)
    if m is None or _key(np.array([s.price for s in sc.sites], float),
                         np.array([s.gpus for s in sc.sites], float)) in _SEEN:
        return
    from optsched.scenario import family, get_scenario, is_embedded

    source, day = m["source"], int(m["day"])
    if is_embedded(source) and 0 <= day < family(source).n_days():
        get_scenario(source, day)          # remembers the real day under its own key


@functools.lru_cache(maxsize=64)
def past_arrivals(source: str, day: int) -> np.ndarray | None:
    """Arrivals [K, T] of day `day` of an embedded family; None outside its days."""
    from optsched.scenario import family

    fam = family(source)
    if not 0 <= day < fam.n_days():
        return None
    if hasattr(fam, "arrivals"):
        return fam.arrivals(day)
    out = np.array([cl["arrivals"] for cl in fam.day_dict(day)["classes"]], float)
    out.setflags(write=False)
    return out
