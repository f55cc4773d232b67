"""A bank of days with one structure: static arrays once, per-day series stacked [D, ...].

The batched environment gathers each copy's series from the bank by day index, so a
thousand copies need a handful of days in memory, not a thousand scenarios.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from optsched.scenario.compile import Compiled

SERIES = ("arrivals", "backlog_cap", "price", "renewable", "pue", "ci")
STATIC_CHECK = ("sites", "classes", "T", "dt_h", "gpus", "eligible", "value", "gpu_s",
                "busy_kwh", "import_cap", "soc0")


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
    compiled: tuple[Compiled, ...]

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
        return cls(base=base, days=tuple(labels or [None] * len(days)),
                   terminal_price=np.stack([c.terminal_price for c in days]),
                   compiled=tuple(days), **stacked)

    @classmethod
    def from_family(cls, days: list[int], source: str = "jemas-3") -> DayBank:
        from optsched.scenario import compile_scenario, get_scenario

        return cls.from_compiled([compile_scenario(get_scenario(source, d)) for d in days],
                                 list(days))

    def __len__(self) -> int:
        return len(self.compiled)
