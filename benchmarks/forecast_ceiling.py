"""How much of a forecasting policy's gap is not knowing how busy the day will be.

    python benchmarks/forecast_ceiling.py [--days test:20] [--workers 2] [--out DIR]

mpc-forecast plays held-out days of jemas-3-genai twice: with its own forecaster (the
family's seasonal naive, rescaled by the arrivals so far: optsched.forecast), and told
what no policy can know at a slot's start: every class's jobs still to come that day
(`TotalKnown`), spread over the remaining slots by the family's mean within-day profile
(`--profile-days` training days). What it is still not told are the day's bursts: the
workload model draws each day's hour and minute shares afresh (optsched/workload/
sampler.py), so the past holds nothing of them.

The told run is a reference, not a policy. It bounds what better forecasting can buy a
planner of this kind: a policy that sees only the past, learned or not, forecasts the
day's level no better than being told it. Gaps are to the MILP oracle (cached by
scenario contents in `--cache`); the two runs are paired by day (95% t interval).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.stats import t_interval  # noqa: E402

FAMILY = "jemas-3-genai"


@dataclass(frozen=True)
class TotalKnown:
    """A day's point forecasts told each class's real jobs still to come after the
    observed slots (`real` [K, T], the day's arrivals), spread over the remaining slots
    in proportion to `profile` [K, T]; the observed slots as they were."""

    real: np.ndarray
    profile: np.ndarray

    @classmethod
    def for_day(cls, c, profile: np.ndarray) -> TotalKnown:
        return cls(np.asarray(c.arrivals, float), profile)

    def point(self, observed, T: int) -> np.ndarray:
        observed = np.asarray(observed, float)
        t = observed.shape[1]
        out = np.zeros((self.real.shape[0], T))
        out[:, :t] = observed
        rest = self.real[:, t:].sum(axis=1, keepdims=True)
        shape = self.profile[:, t:]
        total = shape.sum(axis=1, keepdims=True)
        out[:, t:] = rest * np.divide(shape, total, out=np.zeros_like(shape),
                                      where=total > 0)
        return out


def mean_profile(days: list[int]) -> np.ndarray:
    """Each class's mean share of its day's jobs per slot [K, T] over `days`."""
    from optsched.api import compiled

    shares = []
    for d in days:
        a = np.asarray(compiled(FAMILY, d).arrivals, float)
        shares.append(a / np.maximum(a.sum(axis=1, keepdims=True), 1e-12))
    return np.mean(shares, axis=0)


def play(item: tuple[str, int], profile: np.ndarray) -> float:
    """The utility of mpc-forecast on day `item[1]`, told the remaining totals or not."""
    from optsched.api import rollout
    from optsched.policies.mpc_forecast import MPCForecast

    variant, day = item
    told = functools.partial(TotalKnown.for_day, profile=profile)
    policy = MPCForecast(forecaster=told if variant == "told" else None)
    return rollout(FAMILY, policy, day).evaluation.utility


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", default="test:20", help="held-out days of jemas-3-genai")
    ap.add_argument("--profile-days", type=int, default=60,
                    help="training days whose mean within-day profile spreads the totals")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=Path(".optsched-cache"))
    ap.add_argument("--out", type=Path, default=Path("runs/forecast-ceiling"))
    args = ap.parse_args()
    from optsched.api import compiled
    from optsched.days import parse_days
    from optsched.evaluator import gap as gap_of
    from optsched.io import atomic_write_text
    from optsched.options import train_days
    from optsched.oracle.cache import cached_oracle
    from optsched.oracle.highs import finite_or_none
    from optsched.parallel import fan_out

    days = parse_days(args.days, FAMILY)
    profile = mean_profile(list(train_days(f"train:{args.profile_days}", FAMILY)))
    t0 = time.perf_counter()
    items = [(v, d) for d in days for v in ("own", "told")]
    utilities = fan_out(functools.partial(play, profile=profile), items, args.workers,
                        describe=lambda it: f"mpc-forecast ({it[0]}) day {it[1]}",
                        progress=lambda m: print(m, file=sys.stderr, flush=True))
    oracle = np.array([cached_oracle(compiled(FAMILY, d), args.cache, "highs").objective
                       for d in days])
    u = dict(zip(items, utilities, strict=True))
    gap = {v: np.array([gap_of(u[v, d], o) for d, o in zip(days, oracle, strict=True)])
           for v in ("own", "told")}
    out = {"days": days, "oracle": oracle.tolist(), "seconds": time.perf_counter() - t0}
    said = []
    for v, label in (("own", "own forecaster"), ("told", "told the day's remaining jobs")):
        m, se, _, _ = t_interval(100 * gap[v])
        out[v] = {"gap_pct": (100 * gap[v]).tolist(), "mean_gap_pct": float(m),
                  "se": finite_or_none(se)}   # one day: no s.e. (null: NaN is no JSON)
        said.append(f"{label}: mean gap {m:.2f}% (s.e. {se:.2f})")
    m, se, lo, hi = t_interval(100 * (gap["own"] - gap["told"]))
    out["own_minus_told_pct"] = {"mean": float(m), "se": finite_or_none(se),
                                 "ci95": [finite_or_none(lo), finite_or_none(hi)]}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "forecast_ceiling.json",
                      json.dumps(out, indent=1, allow_nan=False) + "\n")
    print(f"mpc-forecast, {'; '.join(said)}; own - told {m:.2f} points [{lo:.2f}, "
          f"{hi:.2f}] over {len(days)} day(s)".replace("nan", "-"))


if __name__ == "__main__":
    main()
