"""The evaluator: the only scorer in optsched (MODEL.md "What the evaluator promises").

`evaluate(compiled, schedule)` checks every constraint of MODEL.md, names each violation
by constraint, slot and site or class, and returns utility with every term separately.
Per-slot terms sum exactly to the totals: the demand charge is booked when the running
peak rises, the terminal state-of-charge purchase in the last slot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from optsched import physics
from optsched.errors import ScenarioError
from optsched.scenario.compile import Compiled
from optsched.schedule import Schedule, gpu_seconds_used, it_kw

TERMS = ("revenue", "transfer", "late", "drop", "wait", "energy", "demand", "degradation",
         "carbon", "terminal")


def utility_of(terms: dict[str, float] | NDArray[np.float64]) -> NDArray[np.float64]:
    """Utility from its terms: revenue less every cost. `terms` maps TERMS' names to
    values, or is an array whose last axis follows TERMS. The costs are added one by one
    in TERMS order, so a utility does not depend on how the terms were batched (numpy's
    pairwise sum would round a row of [B, 10] differently from a day's ten totals)."""
    if isinstance(terms, dict):
        terms = [terms[k] for k in TERMS]
    t = np.asarray(terms, dtype=float)
    if t.shape[-1:] != (len(TERMS),):
        raise ValueError(f"terms: expected a last axis of {len(TERMS)} ({', '.join(TERMS)}), "
                         f"got shape {t.shape}")
    if t.size <= 64 * len(TERMS):       # a few rows (one env): one sequential call
        return t[..., 0] - np.add.accumulate(t[..., 1:], axis=-1)[..., -1]
    cost = t[..., 1]                    # many rows: column adds at memory speed
    for j in range(2, len(TERMS)):
        cost = cost + t[..., j]
    return t[..., 0] - cost


@dataclass(frozen=True)
class Violation:
    constraint: str
    slot: int | None
    where: str | None          # site or class name
    amount: float              # by how much the constraint is exceeded

    def __str__(self) -> str:
        at = f" at {self.where}" if self.where else ""
        slot = f", slot {self.slot}" if self.slot is not None else ""
        return f"{self.constraint}{at}{slot}: off by {self.amount:.6g}"


@dataclass
class Evaluation:
    utility: float
    terms: dict[str, float]
    slot_terms: NDArray[np.float64]          # [len(TERMS), T]
    jobs: dict[str, float]
    mean_quality: float
    mean_steps: float
    sites: dict[str, dict[str, float]]        # per site: energy, emissions, peak, ...
    site_series: dict[str, NDArray[np.float64]]  # [I, T] power quantities
    site_names: tuple[str, ...]
    violations: list[Violation] = field(default_factory=list)
    violation_counts: dict[str, int] = field(default_factory=dict)
    # Queueing-aware capacity only (docs/model.md): late jobs per class (fixed latency plus
    # the class's share of its sites' waiting-late jobs) and late rate (late / served).
    class_late: dict[str, dict[str, float]] | None = None

    @property
    def feasible(self) -> bool:
        return not self.violation_counts

    @property
    def slot_utility(self) -> NDArray[np.float64]:
        """Utility of each slot [T]."""
        return utility_of(self.slot_terms.T)

    def slots_frame(self) -> pd.DataFrame:
        """One row per slot: every term and the slot's utility (rows sum to the totals)."""
        frame = pd.DataFrame(self.slot_terms.T, columns=list(TERMS))
        frame["utility"] = self.slot_utility
        frame.index.name = "slot"
        return frame

    def sites_frame(self) -> pd.DataFrame:
        """One row per site and slot: grid import/export, battery, renewables, IT power."""
        T = next(iter(self.site_series.values())).shape[1]
        index = pd.MultiIndex.from_product([self.site_names, range(T)], names=["site", "slot"])
        return pd.DataFrame({k: v.reshape(-1) for k, v in self.site_series.items()},
                            index=index)

    def to_dict(self) -> dict:
        return {
            "utility": self.utility, "terms": self.terms, "jobs": self.jobs,
            "mean_quality": self.mean_quality, "mean_steps": self.mean_steps,
            "sites": self.sites, "feasible": self.feasible,
            "violation_counts": self.violation_counts,
            "violations": [str(v) for v in self.violations[:20]],
        } | ({"class_late": self.class_late} if self.class_late is not None else {})

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)


def gap(u_policy: float, u_oracle: float) -> float:
    """MODEL.md's optimality gap: (U_oracle - U_policy) / |U_oracle|; NaN (undefined, null
    in JSON) where the oracle's utility is 0, e.g. a day without jobs (`sweep --param load
    --values 0`)."""
    return (u_oracle - u_policy) / abs(u_oracle) if u_oracle != 0 else float("nan")


def captured(u_policy: float, u_oracle: float, u_baseline: float) -> float | None:
    """Share of the oracle's gain over a baseline that a policy captures (None when the
    oracle gains nothing over the baseline)."""
    gain = u_oracle - u_baseline
    return (u_policy - u_baseline) / gain if gain > 0 else None


class _Checker:
    """Collects violations: excess > tol * max(1, scale), elementwise."""

    def __init__(self, c: Compiled, tol: float, keep: int):
        self.c, self.tol, self.keep = c, tol, keep
        self.found: list[Violation] = []
        self.counts: dict[str, int] = {}

    def __call__(self, name: str, excess: NDArray, scale: NDArray | float,
                 names: tuple[str, ...] | None) -> None:
        """excess[..., T] (or [...] without slots); names label the first axis."""
        bad = excess > self.tol * np.maximum(1.0, np.abs(scale))
        if not bad.any():
            return
        self.counts[name] = self.counts.get(name, 0) + int(bad.sum())
        for idx in np.argwhere(bad)[: max(0, self.keep - len(self.found))]:
            where = names[idx[0]] if names is not None and excess.ndim >= 1 else None
            slot = int(idx[-1]) if excess.ndim >= 2 else None
            self.found.append(Violation(name, slot, where, float(excess[tuple(idx)])))


def evaluate(c: Compiled, s: Schedule, *, tol: float = 1e-6, milp: bool = False,
             keep: int = 200) -> Evaluation:
    """Score a schedule and check MODEL.md's constraints. `milp=True` also demands integer
    powered-on GPUs and never charging and discharging in the same slot."""
    if not isinstance(milp, bool):
        raise ScenarioError("milp", "must be True or False", milp)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < 1:
        # NaN passed every check (a negated schedule was feasible), -1 failed them all
        raise ScenarioError("tol", "must be a number in [0, 1)", tol)
    _check_shapes(c, s)
    check = _Checker(c, tol, keep)
    cls, sites = c.classes, c.sites
    served = s.x.sum(axis=1)                                             # [K, T]
    lam = c.arrivals

    nonneg = [("nonnegative x", s.x.min(axis=1), cls), ("nonnegative y", s.y, cls),
              ("nonnegative q", s.q, cls), ("nonnegative n", s.n, sites),
              ("nonnegative ch", s.ch, sites), ("nonnegative dis", s.dis, sites),
              ("nonnegative r", s.r, sites), ("nonnegative b", s.b, sites),
              ("nonnegative z", s.z, sites)]
    if c.commit:
        nonneg.append(("nonnegative start", s.start, sites))
    for name, arr, names in nonneg:
        check(name, -arr, 0.0, names)
    check("eligibility", np.where(c.eligible[:, :, None], 0.0, s.x).sum(axis=1), 0.0, cls)

    # 1-2 jobs: conservation, waiting limit, interactive and end-of-horizon backlog
    q_prev = np.concatenate([np.zeros((c.K, 1)), s.q[:, :-1]], axis=1)
    residual = s.q - (q_prev + lam - served - s.y)
    check("conservation", np.abs(residual), q_prev + lam + served + s.y, cls)
    check("waiting limit", s.q - c.backlog_cap, c.backlog_cap, cls)

    # 3 GPUs and capacity
    check("gpus on", s.n - c.gpus[:, None], c.gpus[:, None], sites)
    used = gpu_seconds_used(c, s.x)
    start = s.start if c.commit else None
    if start is None:
        cap = c.util_cap[:, None] * c.dt_s * s.n
    else:   # provisioning: a started GPU loads for cold_start_s before it serves
        short_starts = np.zeros_like(s.n)        # slot 0's GPUs are warm: start >= 0 only
        short_starts[:, 1:] = s.n[:, 1:] - s.n[:, :-1] - start[:, 1:]
        check("gpu starts", short_starts, s.n, sites)
        cap = c.util_cap[:, None] * (c.dt_s * s.n - c.cold_start_s * start)
    check("gpu capacity", used - cap, cap, sites)
    if milp:
        check("integer gpus", np.abs(s.n - np.round(s.n)), 0.0, sites)

    # 4-6 power balance and grid limits
    p_it = it_kw(c, s.x, s.n, start)
    p_fac = physics.facility_kw(c.pue, p_it)
    rhs = p_fac + s.ch - s.dis - s.r
    check("balance", np.abs(s.b - s.z - rhs), p_fac + s.ch + s.dis + s.r, sites)
    check("renewable available", s.r - c.renewable, c.renewable, sites)
    check("import cap", s.b - c.import_cap[:, None], c.import_cap[:, None], sites)
    check("export cap", s.z - c.export_cap[:, None], c.export_cap[:, None], sites)

    # 7 battery
    soc_prev = np.concatenate([c.soc0[:, None], s.soc[:, :-1]], axis=1)
    soc_expect = physics.soc_next(soc_prev, s.ch, s.dis, c.dt_h, c.eta_c[:, None],
                                  c.eta_d[:, None])
    check("soc recursion", np.abs(s.soc - soc_expect), soc_prev + s.ch + s.dis, sites)
    check("soc min", c.soc_min[:, None] - s.soc, c.soc_min[:, None], sites)
    check("soc max", s.soc - c.soc_max[:, None], c.soc_max[:, None], sites)
    check("charge max", s.ch - c.ch_max[:, None], c.ch_max[:, None], sites)
    check("discharge max", s.dis - c.dis_max[:, None], c.dis_max[:, None], sites)
    if milp:
        check("battery mode", np.minimum(s.ch, s.dis), 0.0, sites)

    # objective, slot by slot (MODEL.md objective; terms 8-9 booked as described above)
    price = c.price / 1000.0                                             # $/kWh
    peak_run = np.maximum.accumulate(np.maximum(s.b, 0.0), axis=1)
    peak_rise = np.diff(peak_run, axis=1, prepend=0.0)
    peak = peak_run[:, -1]
    short = np.maximum(c.soc0 - s.soc[:, -1], 0.0)
    terminal = np.zeros(c.T)
    terminal[-1] = float(short @ c.terminal_price)
    late_slot = np.einsum("ko,kot->t", c.late_cost, s.x)
    late_q = queue_late(c, s.x, s.n)
    if c.queueing:
        late_slot = late_slot + c.queue_penalty @ late_q
    slot_terms = np.stack([
        np.einsum("ko,kot->t", c.revenue, s.x),
        np.einsum("ko,kot->t", c.transfer, s.x),
        late_slot,
        c.drop_penalty @ s.y,
        c.wait_cost @ s.q,
        (c.dt_h * price * (s.b - c.sell_factor[:, None] * s.z)).sum(axis=0),
        c.demand_charge @ peak_rise,
        c.dt_h * (c.deg_cost @ (s.ch + s.dis)),
        c.carbon_price * c.dt_h * (c.ci * s.b).sum(axis=0) / 1e6,
        terminal,
    ])
    terms = dict(zip(TERMS, (float(v) for v in slot_terms.sum(axis=1)), strict=True))
    utility = utility_of(terms)

    total_served = float(served.sum())
    late_jobs = float(np.einsum("ko,kot->", c.late, s.x))
    per_opt = s.x.sum(axis=(0, 2))
    jobs = {"arrived": float(lam.sum()), "served": total_served, "dropped": float(s.y.sum()),
            "late": late_jobs,
            "transferred": float(np.einsum("ko,kot->", c.opt_site[None, :] != c.home[:, None],
                                           s.x)),
            "backlog_end": float(s.q[:, -1].sum())}
    if c.queueing:
        jobs["late_waiting"] = float(late_q.sum())
        jobs["late"] = late_jobs + jobs["late_waiting"]
    denom = max(total_served, 1e-12)
    grid_kwh = c.dt_h * s.b.sum(axis=1)
    site_summary = {
        name: {
            "grid_import_kwh": float(grid_kwh[i]),
            "grid_export_kwh": float(c.dt_h * s.z[i].sum()),
            "facility_kwh": float(c.dt_h * p_fac[i].sum()),
            "it_kwh": float(c.dt_h * p_it[i].sum()),
            "renewable_used_kwh": float(c.dt_h * s.r[i].sum()),
            "renewable_available_kwh": float(c.dt_h * c.renewable[i].sum()),
            "battery_throughput_kwh": float(c.dt_h * (s.ch[i] + s.dis[i]).sum()),
            "emissions_kg": float(c.dt_h * (c.ci[i] * s.b[i]).sum() / 1000.0),
            "peak_import_kw": float(peak[i]),
            "soc_end_kwh": float(s.soc[i, -1]),
            "jobs_served": float(per_opt[c.opt_site == i].sum()),
            "energy_cost": float(c.dt_h * (price[i] * (s.b[i] - c.sell_factor[i] * s.z[i]))
                                 .sum()),
        } | ({"late_waiting": float(late_q[i].sum())} if c.queueing else {})
          | (cold_starts(c, start, i) if start is not None else {})
        for i, name in enumerate(sites)
    }
    series = {"price": c.price, "renewable_avail": c.renewable, "pue": c.pue,
              "gpus_on": s.n, "it_kw": p_it, "facility_kw": p_fac, "renewable_kw": s.r,
              "grid_import_kw": s.b, "grid_export_kw": s.z, "charge_kw": s.ch,
              "discharge_kw": s.dis, "soc_kwh": s.soc} | (
                  {"gpus_started": start} if start is not None else {})
    return Evaluation(
        utility=float(utility), terms=terms, slot_terms=slot_terms, jobs=jobs,
        mean_quality=float(c.quality @ per_opt / denom),
        mean_steps=float(c.opt_steps @ per_opt / denom),
        sites=site_summary, site_series=series, site_names=sites,
        violations=check.found, violation_counts=check.counts,
        class_late=_class_late(c, s.x, late_q) if c.queueing else None,
    )


def cold_starts(c: Compiled, start: NDArray[np.float64], i: int) -> dict[str, float]:
    """Site i's cold starts (provisioning on): GPUs started over the horizon and the IT
    energy they draw while loading (idle power for cold_start_s each), kWh."""
    n_starts = float(start[i].sum())
    return {"gpu_starts": n_starts,
            "cold_start_kwh": float(c.idle_kw[i] * c.cold_start_s / 3600.0 * n_starts)}


def queue_late(c: Compiled, x: NDArray[np.float64], n: NDArray[np.float64]
               ) -> NDArray[np.float64]:
    """Late jobs from waiting [I, T]: the largest of the site's tangent cuts
    a_j W_int - b_j dt_s n, and 0 (docs/model.md, "Queueing-aware capacity"); zeros when
    queueing is off."""
    if not c.queueing:
        return np.zeros((c.I, c.T))
    work = np.einsum("io,o,kot->it", c.site_of, c.gpu_s, x[c.interactive])
    cuts = (c.queue_a[:, :, None] * work[:, None, :]
            - c.queue_b[:, :, None] * (c.dt_s * n)[:, None, :])
    return np.maximum(cuts.max(axis=1), 0.0)


def _class_late(c: Compiled, x: NDArray[np.float64], late_q: NDArray[np.float64]
                ) -> dict[str, dict[str, float]]:
    """Per class: served, late (fixed latency + waiting) and the late rate. A site's
    waiting-late jobs are shared among its interactive classes by their jobs there."""
    jobs = np.einsum("io,kot->kit", c.site_of, x) * c.interactive[:, None, None]  # [K, I, T]
    total = jobs.sum(axis=0)
    share = np.divide(jobs, total, out=np.zeros_like(jobs), where=total > 0)
    late = np.einsum("ko,kot->k", c.late, x) + np.einsum("kit,it->k", share, late_q)
    served = x.sum(axis=(1, 2))
    return {name: {"served": float(served[k]), "late": float(late[k]),
                   "late_rate": float(late[k] / served[k]) if served[k] > 0 else 0.0}
            for k, name in enumerate(c.classes)}


def _check_shapes(c: Compiled, s: Schedule) -> None:
    expected = {"x": (c.K, c.O, c.T), "y": (c.K, c.T), "q": (c.K, c.T)}
    expected |= {k: (c.I, c.T) for k in ("n", "ch", "dis", "soc", "r", "b", "z")}
    if c.commit:
        expected["start"] = (c.I, c.T)
    for name, shape in expected.items():
        arr = getattr(s, name)
        if arr.shape != shape:
            raise ValueError(f"schedule.{name}: expected shape {shape}, got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"schedule.{name}: contains NaN or inf")
