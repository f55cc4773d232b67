"""The one t interval of the benchmarks: a mean with its standard error and Student-t
interval, over seeds or over paired days."""

from __future__ import annotations

import numpy as np


def t_interval(values, level: float = 0.95, axis: int = 0):
    """(mean, standard error, low, high) along `axis`; se and the bounds are NaN for a
    single value."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    n = v.shape[axis]
    mean = v.mean(axis=axis)
    if n < 2:
        nan = mean * np.nan
        return mean, nan, nan, nan
    se = v.std(axis=axis, ddof=1) / np.sqrt(n)
    half = stats.t.ppf(0.5 + level / 2, n - 1) * se
    return mean, se, mean - half, mean + half
