"""PV output from pvlib's clear-sky model and cloud cover.

Clear-sky GHI: pvlib's Ineichen model with its bundled Linke turbidity climatology (no
network). Cloud attenuation: Kasten & Czeplak (1980), GHI = GHI_clear * (1 - 0.75 c^3.4)
with c the cloud-cover fraction. PV AC power = capacity * GHI / 1000 W/m2 * derate
(0.85 covers inverter, wiring, temperature and soiling losses, a common PVWatts-style
assumption) on a horizontal-equivalent array.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pvlib

from optsched.data.readers import Location

DERATE = 0.85


def clear_sky_ghi(loc: Location, times: pd.DatetimeIndex) -> np.ndarray:
    """Clear-sky global horizontal irradiance (W/m2) at tz-aware `times`."""
    site = pvlib.location.Location(loc.latitude, loc.longitude, loc.timezone, loc.elevation_m)
    return site.get_clearsky(times, model="ineichen")["ghi"].to_numpy(float)


def cloud_factor(cloud_cover_pct: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(cloud_cover_pct, float) / 100.0, 0.0, 1.0)
    return 1.0 - 0.75 * c**3.4


def pv_kw(capacity_kw: float, loc: Location, times: pd.DatetimeIndex,
          cloud_cover_pct: np.ndarray) -> np.ndarray:
    """PV power (kW) at slot midpoints `times` for the given cloud cover (%)."""
    ghi = clear_sky_ghi(loc, times) * cloud_factor(cloud_cover_pct)
    return np.maximum(capacity_kw * ghi / 1000.0 * DERATE, 0.0)
