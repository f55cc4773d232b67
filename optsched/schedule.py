"""The schedule: MODEL.md's decision arrays over the horizon, and the power accounting that
turns jobs into kilowatts (shared by the evaluator and every policy)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from optsched import physics
from optsched.io import atomic_path
from optsched.scenario.compile import Compiled

F = NDArray[np.float64]


@dataclass(eq=False)
class Schedule:
    """Decisions over the horizon. Axes: k class, o option, i site, t slot."""

    x: F      # [K, O, T] jobs served with option o
    y: F      # [K, T] jobs dropped
    q: F      # [K, T] backlog at the end of slot t
    n: F      # [I, T] powered-on GPUs
    ch: F     # [I, T] battery charge, kW
    dis: F    # [I, T] battery discharge, kW
    soc: F    # [I, T] state of charge at the end of slot t, kWh
    r: F      # [I, T] renewable power used, kW
    b: F      # [I, T] grid import, kW
    z: F      # [I, T] grid export, kW
    # [I, T] GPUs started (cold starts), >= the rise of n; only scored with [provisioning]
    # on (docs/model.md). None: zeros.
    start: F | None = None

    def __post_init__(self) -> None:
        if self.start is None:
            self.start = np.zeros_like(np.asarray(self.n, dtype=np.float64))

    def arrays(self) -> dict[str, F]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def copy(self) -> Schedule:
        return Schedule(**{k: v.copy() for k, v in self.arrays().items()})

    def save(self, path: str | Path) -> None:
        """Written atomically; like numpy, a name without `.npz` gets it appended."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, **self.arrays())

    @classmethod
    def load(cls, path: str | Path) -> Schedule:
        with np.load(path, allow_pickle=False) as data:
            return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def frames(self, c: Compiled) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(jobs: one row per class x option x slot with x > 0, sites: one row per site x
        slot) in long form, for Parquet/CSV export."""
        k, o, t = np.nonzero(self.x > 0)
        jobs = pd.DataFrame({
            "class": np.asarray(c.classes)[k], "slot": t, "site": np.asarray(c.sites)[
                c.opt_site[o]], "steps": c.opt_steps[o], "clock": c.opt_clock[o],
            "jobs": self.x[k, o, t]})
        i, t2 = np.indices((c.I, c.T)).reshape(2, -1)
        sites = pd.DataFrame({"site": np.asarray(c.sites)[i], "slot": t2,
                              **{name: getattr(self, name)[i, t2]
                                 for name in ("n", "ch", "dis", "soc", "r", "b", "z")}})
        return jobs, sites


def it_kw(c: Compiled, x: F, n: F, start: F | None = None) -> F:
    """IT power [I, T] (MODEL.md 4): idle draw of powered-on GPUs + busy energy per slot,
    + with provisioning on, the idle draw of started GPUs while they load (cold_start_s
    each, averaged over the slot)."""
    busy = np.einsum("io,o,kot->it", c.site_of, c.busy_kwh, x)
    p = c.idle_kw[:, None] * n + busy / c.dt_h
    if start is not None and c.cold_start_s > 0:
        p = p + c.idle_kw[:, None] * start * (c.cold_start_s / c.dt_s)
    return p


def gpu_seconds_used(c: Compiled, x: F) -> F:
    """GPU seconds demanded at each site [I, T] (left side of MODEL.md 3)."""
    return np.einsum("io,o,kot->it", c.site_of, c.gpu_s, x)


def net_load_kw(c: Compiled, x: F, n: F, ch: F, dis: F, r: F, start: F | None = None) -> F:
    """b - z that the balance (MODEL.md 6) requires [I, T]."""
    return physics.facility_kw(c.pue, it_kw(c, x, n, start)) + ch - dis - r


def complete(c: Compiled, x: F, y: F, n: F, ch: F | None = None, dis: F | None = None,
             r: F | None = None) -> Schedule:
    """A full schedule from the primary decisions: backlog by conservation, soc by the
    battery recursion, import/export by the balance; renewables beyond what the site can
    use or export are curtailed."""
    zeros = np.zeros((c.I, c.T))
    ch = zeros.copy() if ch is None else ch
    dis = zeros.copy() if dis is None else dis
    r = zeros.copy() if r is None else r
    q = np.cumsum(c.arrivals - x.sum(axis=1) - y, axis=1)
    soc = physics.soc_path(c.soc0, ch, dis, c.dt_h, c.eta_c, c.eta_d)
    start = physics.gpu_starts(n) if c.commit else None
    net = net_load_kw(c, x, n, ch, dis, r, start)
    surplus = np.maximum(-net - c.export_cap[:, None], 0.0)
    curtail = np.minimum(surplus, r)
    r = r - curtail
    net = net + curtail
    b = np.maximum(net, 0.0)
    z = np.maximum(-net, 0.0)
    return Schedule(x=x, y=y, q=q, n=n, ch=ch, dis=dis, soc=soc, r=r, b=b, z=z, start=start)
