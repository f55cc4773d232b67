"""The simulator's inputs besides the schedule: the day's jobs, a sampler of jobs from a
scenario's own arrival counts, and the cold-start delay of a GPU that is switched on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from optsched.errors import ScenarioError
from optsched.scenario.compile import Compiled

F = NDArray[np.float64]
I_ = NDArray[np.int64]

Z90 = 1.2815515655446004          # standard normal quantile at 0.9
SUBSLOTS = 10                     # intervals per slot with their own burst intensity


@dataclass(frozen=True, eq=False)
class Jobs:
    """The jobs of one horizon, sorted by arrival: `arrival_s` seconds from the horizon's
    start, `k` the class, `work` the multiple of the chosen option's nominal GPU seconds
    (and busy energy) the job needs (images per request and service-time noise)."""

    arrival_s: F
    k: I_
    work: F

    def __post_init__(self) -> None:
        for name, dtype in (("arrival_s", np.float64), ("k", np.int64), ("work", np.float64)):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=dtype))
            if np.ndim(getattr(self, name)) != 1:
                raise ScenarioError(f"jobs.{name}", "must be a 1-D array",
                                    np.shape(getattr(self, name)))
        if not (self.arrival_s.size == self.k.size == self.work.size):
            raise ScenarioError("jobs", "arrival_s, k and work must have one entry per job",
                                [self.arrival_s.size, self.k.size, self.work.size])

    @classmethod
    def of(cls, arrival_s: ArrayLike, k: ArrayLike, work: ArrayLike | None = None) -> Jobs:
        """Jobs from array-likes; `work` defaults to 1 (the option's nominal time)."""
        return cls(arrival_s, k, np.ones(np.shape(arrival_s)) if work is None else work)

    def __len__(self) -> int:
        return int(self.arrival_s.size)

    def check(self, c: Compiled) -> None:
        """One-line errors for jobs that do not fit the scenario's horizon and classes."""
        a, horizon = self.arrival_s, c.T * c.dt_s
        if a.size and not np.all(np.isfinite(a)):
            raise ScenarioError("jobs.arrival_s", "contains NaN or inf")
        if a.size and (a.min() < 0 or a.max() >= horizon):
            bad = a.min() if a.min() < 0 else a.max()
            raise ScenarioError("jobs.arrival_s", f"must lie in [0, {horizon:g}) s", float(bad))
        if np.any(np.diff(a) < 0):
            j = int(np.flatnonzero(np.diff(a) < 0)[0]) + 1
            raise ScenarioError(f"jobs.arrival_s[{j}]", "must be sorted (non-decreasing)",
                                float(a[j]))
        if self.k.size and (self.k.min() < 0 or self.k.max() >= c.K):
            bad = self.k.min() if self.k.min() < 0 else self.k.max()
            raise ScenarioError("jobs.k", f"must be a class index in 0..{c.K - 1}", int(bad))
        if self.work.size and not (np.all(np.isfinite(self.work)) and self.work.min() > 0):
            raise ScenarioError("jobs.work", "must be finite and > 0",
                                float(self.work[~(np.isfinite(self.work) & (self.work > 0))][0]))

    def counts(self, c: Compiled) -> F:
        """Jobs per class and arrival slot [K, T]."""
        slot = np.minimum((self.arrival_s // c.dt_s).astype(np.int64), c.T - 1)
        out = np.zeros((c.K, c.T))
        np.add.at(out, (self.k, slot), 1.0)
        return out


# Variance of the within-slot intensity: beyond ~100 the Gamma draws underflow to 0.
MAX_BURSTINESS = 100.0


def poisson_jobs(c: Compiled, seed: int | np.random.SeedSequence = 0, burstiness: float = 0.0,
                 counts: Literal["poisson", "exact"] = "poisson") -> Jobs:
    """Jobs from the scenario's own per-slot arrivals `c.arrivals[k, t]`.

    counts: `poisson` draws each slot's count with mean c.arrivals[k, t]; `exact` keeps the
    count (a fractional part becomes one more job with that probability), so the schedule
    meets exactly the demand it was planned for. Within a slot, arrival times are uniform
    when `burstiness` is 0; otherwise each tenth of the slot gets a Gamma intensity of mean
    1 and variance `burstiness` (a Cox process: bursts inside the slot), the slot's jobs
    falling into the tenths in proportion (exact) or Poisson with that intensity. Work is 1."""
    if not 0 <= burstiness <= MAX_BURSTINESS:
        raise ScenarioError("burstiness", f"must be between 0 and {MAX_BURSTINESS:g}",
                            burstiness)
    if counts not in ("poisson", "exact"):
        raise ScenarioError("counts", "must be 'poisson' or 'exact'", counts)
    rng = np.random.default_rng(seed)
    lam = np.repeat(c.arrivals[:, :, None] / SUBSLOTS, SUBSLOTS, axis=2)   # [K, T, sub]
    if burstiness > 0:
        gain = rng.gamma(1.0 / burstiness, burstiness, lam.shape)
    else:
        gain = np.ones_like(lam)
    if counts == "poisson":
        n = rng.poisson(lam * gain)
    else:
        whole = np.floor(c.arrivals)
        slot_n = (whole + (rng.random(whole.shape) < c.arrivals - whole)).astype(np.int64)
        total = gain.sum(axis=2, keepdims=True)
        share = np.where(total > 0, gain / np.where(total > 0, total, 1.0), 1.0 / SUBSLOTS)
        n = rng.multinomial(slot_n, share)
    n = n.reshape(c.K, -1)                                                 # [K, T * sub]
    width = c.dt_s / SUBSLOTS
    k = np.repeat(np.repeat(np.arange(c.K), n.shape[1]), n.reshape(-1))
    cell = np.repeat(np.tile(np.arange(n.shape[1]), c.K), n.reshape(-1))
    slot_end = np.nextafter((cell // SUBSLOTS + 1) * c.dt_s, 0.0)   # stays in its slot
    arrival = np.minimum((cell + rng.random(cell.size)) * width, slot_end)
    order = np.argsort(arrival, kind="stable")
    return Jobs.of(arrival[order], k[order])


@dataclass(frozen=True)
class ColdStart:
    """Delay before a GPU switched on can serve (loading the base model): lognormal with
    the given median and 90th percentile (GenTD26 trace: 22.7 s and 42 s). While loading,
    the GPU draws its idle power: a cold start costs idle power x delay of energy. Equal
    median and p90 give a fixed delay; a median of 0 means GPUs start warm."""

    median_s: float = 22.7
    p90_s: float = 42.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.median_s) and self.median_s >= 0):
            raise ScenarioError("cold_start.median_s", "must be finite and >= 0", self.median_s)
        if not (np.isfinite(self.p90_s) and self.p90_s >= self.median_s):
            raise ScenarioError("cold_start.p90_s", "must be finite and >= the median",
                                self.p90_s)

    @classmethod
    def default(cls) -> ColdStart:
        return cls()

    @classmethod
    def none(cls) -> ColdStart:
        return cls(0.0, 0.0)

    @property
    def sigma(self) -> float:
        """The lognormal's shape (sd of the log delay)."""
        if self.median_s == 0:
            return 0.0
        return float(np.log(self.p90_s / self.median_s) / Z90)

    def sample(self, rng: np.random.Generator, n: int) -> F:
        if self.median_s == 0:
            return np.zeros(n)
        return self.median_s * np.exp(self.sigma * rng.standard_normal(n))
