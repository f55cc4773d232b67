"""Which day of an embedded family a compiled day is, and that family's earlier days.

Forecasts are built from the past: a policy playing day d of a family reads the arrivals
of days before d. A policy only holds the day's `Compiled`, so `get_scenario` remembers
each embedded day it builds under a key of what is known before the day starts (its
day-ahead prices and its GPU counts, never its arrivals), and `identify` looks it up.
"""

from __future__ import annotations

import functools
import hashlib

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
    """(family, day) of a day built by `get_scenario` in this process, else None."""
    return _SEEN.get(_key(c.price, c.gpus))


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
