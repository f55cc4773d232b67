"""Small pure functions for the physics of MODEL.md (quality, time, energy, battery).

Every other module (compile, evaluator, oracle, environment) calls these, so the physics
lives in exactly one place. All functions broadcast over numpy arrays.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

J_PER_KWH = 3.6e6


def quality(
    steps: ArrayLike, a: float, b: float, c: float, d: float, log_steps: bool
) -> NDArray[np.float64]:
    """Q_m(s): a logistic in s (or ln s) plus an offset, clipped to [0, 1]."""
    s = np.asarray(steps, dtype=float)
    phi = np.log(s) if log_steps else s
    return np.clip(a / (1.0 + np.exp(-b * (phi - c))) + d, 0.0, 1.0)


def gpu_seconds(
    steps: ArrayLike, clock: ArrayLike, step_time_s: float, fixed_time_s: float
) -> NDArray[np.float64]:
    """GPU seconds per job: the fixed part does not scale with the clock, steps take l/f."""
    return fixed_time_s + np.asarray(steps, float) * step_time_s / np.asarray(clock, float)


def job_energy_j(
    steps: ArrayLike, clock: ArrayLike, step_energy_j: float, fixed_energy_j: float, sigma: float
) -> NDArray[np.float64]:
    """GPU energy per job (J): static power lasts 1/f longer, dynamic energy scales f^2."""
    f = np.asarray(clock, float)
    return fixed_energy_j + np.asarray(steps, float) * step_energy_j * (
        sigma / f + (1.0 - sigma) * f**2
    )


def busy_kwh(energy_j: ArrayLike, gpu_s: ArrayLike, gpu_idle_kw: float) -> NDArray[np.float64]:
    """Energy per job above the idle floor that a powered-on GPU draws anyway (kWh, >= 0)."""
    extra = np.asarray(energy_j, float) - 1000.0 * gpu_idle_kw * np.asarray(gpu_s, float)
    return np.maximum(extra, 0.0) / J_PER_KWH


def soc_next(soc: ArrayLike, ch_kw: ArrayLike, dis_kw: ArrayLike, dt_h: float,
             eta_c: ArrayLike, eta_d: ArrayLike) -> NDArray[np.float64]:
    """State of charge after one slot; losses on both sides: +eta_c*ch, -dis/eta_d."""
    return np.asarray(soc, float) + dt_h * (
        np.asarray(eta_c) * np.asarray(ch_kw, float) - np.asarray(dis_kw, float) / np.asarray(eta_d)
    )


def soc_path(soc0: ArrayLike, ch_kw: NDArray, dis_kw: NDArray, dt_h: float,
             eta_c: ArrayLike, eta_d: ArrayLike) -> NDArray[np.float64]:
    """soc[i, t] at the end of every slot, from soc0[i] and ch/dis[i, t] (cumulative sum)."""
    delta = dt_h * (np.asarray(eta_c)[..., None] * ch_kw - dis_kw / np.asarray(eta_d)[..., None])
    return np.asarray(soc0, float)[..., None] + np.cumsum(delta, axis=-1)


def facility_kw(pue: ArrayLike, it_kw: ArrayLike) -> NDArray[np.float64]:
    return np.asarray(pue, float) * np.asarray(it_kw, float)


def gpu_starts(n: NDArray) -> NDArray[np.float64]:
    """GPUs switched on in each slot [I, T]: the rise of n over the previous slot, never
    negative; GPUs on in slot 0 count as warm (the day starts from the night's fleet)."""
    n = np.asarray(n, dtype=np.float64)
    return np.maximum(np.diff(n, axis=-1, prepend=n[..., :1]), 0.0)
