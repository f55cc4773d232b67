"""The workload model fitted on the GenTD26 text-to-image trace (data card: genai.md).

A day's requests are a doubly stochastic (Cox) process, from the top down:

- day volume: `mean_requests_per_day x level[weekday or weekend] x M`, M lognormal with
  mean 1 and log-sd `day.log_sigma`, drawn independently per day; the day's count is
  Poisson with that mean;
- hour of day: the day's requests fall into the 24 hours of the trace's (time-shifted)
  clock with shares Dirichlet(`hour_concentration x hourly_share`): a gamma multiplier
  per hour, conditioned on the day's total;
- minute within the hour: shares Dirichlet(`minute_concentration / 60` per minute), a
  gamma multiplier per one-minute window; within a minute, times are uniform;
- each request's (images, steps) pair is drawn from the trace's joint empirical
  distribution; its class is interactive for one image, batch for more (CLASSES);
- base service seconds: `(intercept_s + per_step_image_s x steps x images) x exp(e)`,
  e ~ N(0, log_sigma^2) (the median model, fitted in log space);
- cold start (loading a base model): a two-component lognormal mixture, seconds.

The concentrations are intensive: a scenario scaled to any volume keeps the trace's
relative burstiness (the variance of a window's rate grows with the square of its mean).
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from optsched.errors import ScenarioError

CLASSES: tuple[str, ...] = ("interactive", "batch")
WEEKEND: tuple[int, ...] = (5, 6)          # Saturday, Sunday (date.weekday())
DEFAULT_FILE = "genai_params.json"
SUM_TOL = 1e-5      # shares and probabilities are stored rounded

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _distribution(obj: BaseModel, fields: tuple[str, ...], weights: str) -> None:
    """Per-outcome fields of one length (at least 1) beside weights that sum to 1."""
    names = (*fields, weights)
    if len({len(getattr(obj, f)) for f in names}) != 1 or not getattr(obj, weights):
        raise ValueError(f"{', '.join(names)} must have one equal, non-zero length")
    if abs(sum(getattr(obj, weights)) - 1.0) > SUM_TOL:
        raise ValueError(f"{weights} must sum to 1")


class DayVolume(_Frozen):
    """Relative day levels, (5 weekday + 2 weekend) / 7 = 1, and the day-to-day spread."""
    weekday_level: Positive
    weekend_level: Positive
    log_sigma: NonNegative

    @model_validator(mode="after")
    def _weekly_mean_is_one(self) -> DayVolume:
        mean = (5 * self.weekday_level + 2 * self.weekend_level) / 7
        if abs(mean - 1.0) > 1e-3:
            raise ValueError(f"weekly mean of the levels must be 1, got {mean:.4f}")
        return self

    def level(self, day_of_week: int) -> float:
        return self.weekend_level if day_of_week in WEEKEND else self.weekday_level


class Sizes(_Frozen):
    """The joint empirical distribution of (images, steps) per request."""
    images: tuple[Annotated[int, Field(ge=1)], ...]
    steps: tuple[Annotated[int, Field(ge=1)], ...]
    prob: tuple[NonNegative, ...]

    @model_validator(mode="after")
    def _aligned(self) -> Sizes:
        _distribution(self, ("images", "steps"), "prob")
        return self


class ServiceTime(_Frozen):
    intercept_s: NonNegative
    per_step_image_s: NonNegative
    log_sigma: NonNegative


class ColdStart(_Frozen):
    """Lognormal mixture of base-model loading times, seconds (log of seconds)."""
    weights: tuple[NonNegative, ...]
    log_mu: tuple[float, ...]
    log_sigma: tuple[Positive, ...]

    @model_validator(mode="after")
    def _aligned(self) -> ColdStart:
        _distribution(self, ("log_mu", "log_sigma"), "weights")
        return self


class WorkloadModel(_Frozen):
    """Fitted parameters; `checks` holds the measured figures the data card reports."""
    source: str
    mean_requests_per_day: Positive        # the trace's own steady-day mean (its volume)
    day: DayVolume
    hourly_share: tuple[NonNegative, ...]
    hour_concentration: Positive
    minute_concentration: Positive
    sizes: Sizes
    service: ServiceTime
    cold_start: ColdStart
    checks: dict[str, float | int | str]

    @model_validator(mode="after")
    def _profile(self) -> WorkloadModel:
        if len(self.hourly_share) != 24 or abs(sum(self.hourly_share) - 1.0) > SUM_TOL:
            raise ValueError("hourly_share must have 24 values summing to 1")
        return self

    @classmethod
    def from_dict(cls, raw: dict, key: str = "workload") -> WorkloadModel:
        """Validate a mapping; the first problem is one ScenarioError naming its key."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in (key, *err["loc"]))
            raise ScenarioError(where, err["msg"], more=len(exc.errors()) - 1) from None

    @classmethod
    def load(cls, path: str | Path) -> WorkloadModel:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ScenarioError(str(path), f"cannot read workload parameters "
                                f"({type(exc).__name__})") from None
        return cls.from_dict(raw, key=str(path))

    def base_service_s(self, steps: np.ndarray, images: np.ndarray) -> np.ndarray:
        """Median service seconds of requests of these sizes (no residual)."""
        return self.service.intercept_s + self.service.per_step_image_s * steps * images

    def cold_start_s(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n cold-start (base-model loading) times, seconds."""
        c = self.cold_start
        comp = rng.choice(len(c.weights), size=n, p=np.asarray(c.weights))
        return np.exp(np.asarray(c.log_mu)[comp] + np.asarray(c.log_sigma)[comp]
                      * rng.standard_normal(n))

    def day_log_ratio_sd(self) -> float:
        """The model's sd of log day-to-day volume ratios over consecutive days of a week
        (the weekly level steps plus two independent day multipliers)."""
        levels = np.log([self.day.level(d) for d in range(7)])
        steps = np.diff(np.r_[levels, levels[0]])
        return float(np.sqrt(np.mean(steps**2) + 2 * self.day.log_sigma**2))

    def top_hours_share(self, hours: int = 3) -> float:
        return float(np.sort(self.hourly_share)[::-1][:hours].sum())


@functools.cache
def load_default() -> WorkloadModel:
    """The packaged fit of the GenTD26 trace (scripts/fit_workload.py writes it)."""
    text = resources.files("optsched.workload").joinpath(DEFAULT_FILE).read_text("utf-8")
    return WorkloadModel.from_dict(json.loads(text), key=DEFAULT_FILE)
