"""A bank of days with one structure: static arrays once, per-day series stacked [D, ...].

The batched environment gathers each copy's series from the bank by day index, so a
thousand copies need a handful of days in memory, not a thousand scenarios. Generating a
day (pvlib, validation) takes ~0.3 s, so family banks are cached on disk
(`$OPTSCHED_CACHE`, default ~/.cache/optsched), keyed by the family's files and the days.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from optsched.io import atomic_path
from optsched.scenario.compile import Compiled

SERIES = ("arrivals", "backlog_cap", "price", "renewable", "pue", "ci", "terminal_price")
STATIC_CHECK = ("sites", "classes", "T", "dt_h", "gpus", "eligible", "value", "gpu_s",
                "busy_kwh", "import_cap", "soc0", "queue_a", "queue_b")


@dataclass(eq=False)
class DayBank:
    base: Compiled                       # structure and static arrays (the first day)
    days: tuple[int | None, ...]         # labels (day numbers of the family, if any)
    arrivals: NDArray[np.float64]        # [D, K, T]
    backlog_cap: NDArray[np.float64]     # [D, K, T]
    price: NDArray[np.float64]           # [D, I, T]
    renewable: NDArray[np.float64]       # [D, I, T]
    pue: NDArray[np.float64]             # [D, I, T]
    ci: NDArray[np.float64]              # [D, I, T]
    terminal_price: NDArray[np.float64]  # [D, I]

    @classmethod
    def from_compiled(cls, days: list[Compiled], labels: list[int | None] | None = None
                      ) -> DayBank:
        base = days[0]
        for c in days[1:]:
            for key in STATIC_CHECK:
                a, b = getattr(base, key), getattr(c, key)
                same = np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
                if not same:
                    raise ValueError(f"days differ in structure ({key}); a bank holds one "
                                     "scenario family")
        stacked = {k: np.stack([getattr(c, k) for c in days]) for k in SERIES}
        return cls(base=base, days=tuple(labels or [None] * len(days)), **stacked)

    @classmethod
    def from_family(cls, days: list[int], source: str = "jemas-3",
                    cache: bool = True) -> DayBank:
        """The days of an embedded family (jemas-3, jemas-3-genai), cached on disk."""
        from optsched.errors import ScenarioError
        from optsched.scenario import EMBEDDED, compile_scenario, get_scenario, is_embedded

        if not is_embedded(source):
            raise ScenarioError("family", f"a day bank needs an embedded family "
                                f"({', '.join(EMBEDDED)})", source)
        if not days:
            raise ScenarioError("days", "a day bank needs at least one day", days)
        days = [int(d) for d in days]
        path = _cache_path(source, days) if cache else None
        base = compile_scenario(get_scenario(source, days[0]))
        arrays = _cached_series(path, base, days, source) if path is not None else None
        if arrays is not None:
            from optsched.scenario.history import remember_arrays

            bank = cls(base=base, days=tuple(days), **arrays)
            for d, price in zip(days, bank.price, strict=True):
                remember_arrays(price, base.gpus, source, d)  # forecasts find earlier days
            return bank
        bank = cls.from_compiled([base] + [compile_scenario(get_scenario(source, d))
                                           for d in days[1:]], list(days))
        if path is not None:
            with atomic_path(path) as tmp:
                np.savez(tmp, **{k: getattr(bank, k) for k in SERIES})
        return bank

    def __len__(self) -> int:
        return len(self.arrivals)

    def day(self, j: int) -> Compiled:
        """The compiled scenario of bank entry j (static arrays shared with the base)."""
        return dataclasses.replace(self.base, **{k: getattr(self, k)[j] for k in SERIES})


def _cached_series(path: Path, base: Compiled, days: list[int], source: str
                   ) -> dict[str, np.ndarray] | None:
    """The cached series, or None (built again; with a warning where a file was there but
    cannot be believed): every array present, of the bank's shape, finite, and the first
    and last days equal to the days compiled afresh. A file that passes holds plausible
    days; one edited to other plausible numbers in a middle day is not caught (the cache
    is the user's own, under OPTSCHED_CACHE: docs/security.md)."""
    import warnings

    if not path.is_file():
        return None
    problem = None
    try:
        with np.load(path) as data:                     # allow_pickle stays False
            arrays = {k: np.array(data[k]) for k in SERIES}
    except Exception as e:  # noqa: BLE001 - numpy raises many types for a bad file
        arrays, problem = None, f"unreadable ({type(e).__name__})"
    if arrays is not None:
        from optsched.scenario import compile_scenario, get_scenario

        last = compile_scenario(get_scenario(source, days[-1])) if len(days) > 1 else base
        for k in SERIES:
            want = (len(days), *np.shape(getattr(base, k)))
            a = arrays[k]
            if a.shape != want or a.dtype.kind != "f" or not np.isfinite(a).all():
                problem = f"{k} is not {want} finite numbers"
                break
            if not (np.array_equal(a[0], getattr(base, k))
                    and np.array_equal(a[-1], getattr(last, k))):
                problem = f"{k} differs from the days compiled afresh"
                break
    if problem is not None:
        warnings.warn(f"day bank cache {path.name} not used: {problem}; building again",
                      stacklevel=3)
        return None
    return arrays


def _cache_path(source: str, days: list[int]) -> Path | None:
    from optsched.scenario import family_fingerprint

    fingerprint = family_fingerprint(source)
    if fingerprint is None:
        return None
    digest = hashlib.sha256(f"{fingerprint}:{days!r}".encode())
    root = Path(os.environ.get("OPTSCHED_CACHE", Path.home() / ".cache" / "optsched"))
    return root / f"bank-{source}-{digest.hexdigest()[:16]}.npz"
