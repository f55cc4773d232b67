"""Days of requests: sampled from the fitted model (`sample_day`) or replayed from a real
trace (`day_from_trace`), both as one `DayWorkload` of per-request arrays."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from optsched.errors import ScenarioError
from optsched.workload.model import CLASSES, WorkloadModel

DAY_S = 86400
MINUTES = 1440


@dataclass(frozen=True, eq=False)
class DayWorkload:
    """One day's requests in arrival order, on a horizon of `slots` x `slot_minutes`
    starting at the day's midnight. Class 0 is interactive (one image), 1 batch."""
    arrival_s: np.ndarray       # seconds from the day's start, sorted, in [0, horizon)
    images: np.ndarray          # int
    steps: np.ndarray           # int, steps requested
    service_s: np.ndarray       # base service seconds (sampled, or the trace's measured)
    klass: np.ndarray           # int8 index into CLASSES
    slot_minutes: int
    slots: int

    @property
    def n(self) -> int:
        return len(self.arrival_s)

    @property
    def horizon_s(self) -> int:
        return 60 * self.slot_minutes * self.slots

    def counts(self, slot_minutes: int | None = None,
               weights: np.ndarray | None = None) -> np.ndarray:
        """Arrivals per class (rows, CLASSES order) and slot (columns) of `slot_minutes`
        (default the day's own) over the horizon; a last partial slot counts too. With
        `weights` (one per request, e.g. its images) their sums instead of counts."""
        width = 60 * (slot_minutes or self.slot_minutes)
        slots = -(-self.horizon_s // width)
        slot = (self.arrival_s // width).astype(np.int64)
        flat = np.bincount(self.klass.astype(np.int64) * slots + slot, weights=weights,
                           minlength=len(CLASSES) * slots)
        return flat.reshape(len(CLASSES), slots)


def class_of(images: np.ndarray) -> np.ndarray:
    """The documented rule: one image is an interactive request, more is a batch."""
    return (np.asarray(images) > 1).astype(np.int8)


def _check_horizon(slot_minutes: int, slots: int) -> None:
    if not (isinstance(slot_minutes, int | np.integer) and isinstance(slots, int | np.integer)
            and slot_minutes >= 1 and slots >= 1 and slot_minutes * slots <= MINUTES):
        raise ScenarioError("horizon", "slot_minutes and slots must be positive integers "
                            "spanning at most one day", (slot_minutes, slots))


def sample_day(model: WorkloadModel, seed: int, day_of_week: int, slot_minutes: int = 5,
               slots: int = 288, mean_requests_per_day: float | None = None) -> DayWorkload:
    """A seeded day of requests from the model (module docstring of model.py).

    `mean_requests_per_day` (default: the trace's own) scales the volume: the expected
    full-day count averaged over a week. The whole day is always drawn, so a shorter
    horizon sees the same first hours for the same seed; later arrivals are cut.
    """
    _check_horizon(slot_minutes, slots)
    if day_of_week not in range(7):
        raise ScenarioError("day_of_week", "must be an integer in 0..6 (Monday = 0)",
                            day_of_week)
    mean = model.mean_requests_per_day if mean_requests_per_day is None \
        else float(mean_requests_per_day)
    if not (np.isfinite(mean) and mean >= 0):
        raise ScenarioError("mean_requests_per_day", "must be a finite number >= 0", mean)
    rng = np.random.default_rng(seed)
    sigma = model.day.log_sigma
    day_mean = mean * model.day.level(day_of_week) * np.exp(sigma * rng.standard_normal()
                                                            - sigma**2 / 2)
    total = int(rng.poisson(day_mean))

    share = np.asarray(model.hourly_share)
    live = share > 0
    hour_w = np.zeros(24)
    hour_w[live] = rng.gamma(model.hour_concentration * share[live])
    per_hour = rng.multinomial(total, _normalised(hour_w, live))
    minute_w = rng.gamma(model.minute_concentration / 60, size=(24, 60))
    per_minute = rng.multinomial(per_hour, _normalised_rows(minute_w)).ravel()

    minute = np.repeat(np.arange(MINUTES, dtype=np.int64), per_minute)
    arrival = np.sort(60.0 * minute + 60.0 * rng.random(total))
    sizes = model.sizes
    pick = np.searchsorted(np.cumsum(sizes.prob), rng.random(total) * sum(sizes.prob),
                           side="right").clip(max=len(sizes.prob) - 1)
    images = np.asarray(sizes.images, np.int64)[pick]
    steps = np.asarray(sizes.steps, np.int64)[pick]
    service = model.base_service_s(steps, images) * np.exp(
        model.service.log_sigma * rng.standard_normal(total))
    keep = arrival < 60 * slot_minutes * slots
    return DayWorkload(arrival[keep], images[keep], steps[keep], service[keep],
                       class_of(images[keep]), slot_minutes, slots)


def _normalised(w: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Shares from gamma weights; all-zero weights (underflow) fall back to equal shares."""
    s = w.sum()
    return w / s if s > 0 else live / live.sum()


def _normalised_rows(w: np.ndarray) -> np.ndarray:
    s = w.sum(axis=1, keepdims=True)
    return np.where(s > 0, w / np.where(s > 0, s, 1.0), 1.0 / w.shape[1])


def day_from_trace(trace: pd.DataFrame, date: dt.date | str, slot_minutes: int = 5,
                   slots: int = 288) -> DayWorkload:
    """One calendar day (the file's clock) of a trace read by `read_genai_trace`, as a
    DayWorkload: arrival seconds from that midnight, the sizes asked and the measured
    execution seconds. Rows without a size (PENDING requests, never run) are left out,
    as are arrivals past the horizon. A day outside the trace's span is an error."""
    _check_horizon(slot_minutes, slots)
    try:
        day = pd.Timestamp(date).normalize()
    except (ValueError, TypeError):
        raise ScenarioError("trace day", "not a date", str(date)) from None
    times = trace["time"]
    first, last = times.iloc[0].normalize(), times.iloc[-1].normalize()
    if not first <= day <= last:
        raise ScenarioError("trace day", f"outside the trace's days {first.date()} to "
                            f"{last.date()}", str(day.date()))
    sec = (times - day).dt.total_seconds().to_numpy()
    keep = (sec >= 0) & (sec < 60 * slot_minutes * slots) & trace["images"].notna().to_numpy()
    images = trace["images"].to_numpy()[keep].astype(np.int64)
    return DayWorkload(sec[keep], images, trace["steps"].to_numpy()[keep].astype(np.int64),
                       trace["exec_s"].to_numpy(float)[keep], class_of(images),
                       slot_minutes, slots)
