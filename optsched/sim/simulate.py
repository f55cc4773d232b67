"""Replay a schedule job by job (docs/model.md, "Per-job simulation").

The fluid model lets every interactive job finish within its slot with a fixed latency.
`simulate` sends the day's actual jobs through a schedule's decisions and measures what
happens to each one:

1. Admission, per class and slot (`engine.admit_class`). The schedule's counts are made
   integer by cumulative rounding over the slots (served `sum_o x[k, o, t]`, dropped
   `y[k, t]`; held `round(q[k, t])`), and each slot's served count is split over the
   options in proportion to `x[k, :, t]` by largest remainder (deterministic). The pending
   jobs (held ones first, then the slot's arrivals, first come first served) meet those
   counts: the oldest are served, the option labels shuffled over them (seeded); of the
   rest, the newest that are within their slack (a deferrable job arriving in slot a may
   be served up to slot a + D_k) are held, at least the planned backlog and, when more
   arrived than planned, all but the planned drops; the others (all of them for an
   interactive class) are dropped. Arrivals beyond what the schedule serves or holds are
   thus dropped, except deferrable ones, which wait within their slack for capacity
   planned in later slots, first come first served. What is still held after the last
   slot is `queued_end`.
2. Service, per site (`engine.serve_priority`). A served job is released at its arrival
   (or at the start of its serving slot if it was held), reaches the serving site after
   the transfer latency (`c.latency_s - c.gpu_s`) and needs `gpu_s[o] * work` seconds of
   one GPU. The site's powered-on GPUs serve interactive jobs before deferrable ones:
   interactive jobs earliest deadline first, deferrable ones first come first served,
   and a running job may be paused at a denoising-step boundary for an interactive job
   due sooner (docs/model.md, "Per-job simulation": the discipline the fluid model's
   queueing states).
3. GPUs. Slot t has `ceil(n[i, t])` GPUs on (the lowest-numbered ones: switching off
   takes the most recently started). A GPU on from slot t (t > 0) after being off serves
   only after a cold-start delay (`ColdStart`, sampled per start); GPUs on in slot 0 are
   warm (the previous day left them on). A job starts only while its GPU is on and ready,
   and runs to its end even if the GPU's slot ends (it drains). Jobs that no GPU starts
   before the horizon's end are `queued_end`.
4. A job's latency is its finish less its arrival: waiting + service + transfer. An
   interactive job is late above its class deadline; a deferrable one when it finishes
   after the end of slot a + D_k (its slack). Every job ends as exactly one of served,
   dropped or queued_end.
5. Utility uses the evaluator: the realised schedule (jobs started per class, option and
   serving slot; drops and backlog per slot; GPUs on plus cold-start seconds as idle-GPU
   equivalents; busy energy weighted by each job's work; the schedule's own battery and
   renewable decisions, grid import by the power balance) is scored by `evaluate`, and
   its `late` term is replaced by the late penalty of the jobs that were actually late.
   With provisioning on (docs/model.md) the cold starts that count are the ones sampled
   here, already in the idle-GPU equivalents: the realised schedule is scored without the
   fluid model's fixed cold_start_s per start (`_sampled_cold_starts`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from optsched import physics
from optsched.errors import ScenarioError
from optsched.evaluator import evaluate, utility_of
from optsched.scenario.compile import Compiled
from optsched.schedule import Schedule, complete, it_kw
from optsched.sim import engine
from optsched.sim.jobs import ColdStart, Jobs, poisson_jobs

F = NDArray[np.float64]
I_ = NDArray[np.int64]
PERCENTILES = (50, 95, 99)
GPU_TOL = 1e-6      # n within this of an integer counts as that integer


def cum_round(a: F) -> I_:
    """Integer counts per slot whose running totals are the rounded running totals of `a`
    (last axis): never negative, and the horizon's total is off by at most 1/2."""
    run = np.floor(np.cumsum(np.maximum(a, 0.0), axis=-1) + 0.5)
    return np.diff(run, axis=-1, prepend=0.0).astype(np.int64)


def split_counts(x: F, total: I_) -> I_:
    """total[k, t] jobs split over options in proportion to x[k, :, t], largest remainder."""
    xs = x.sum(axis=1, keepdims=True)
    share = np.divide(x, xs, out=np.zeros_like(x), where=xs > 0)
    want = share * total[:, None, :]
    base = np.floor(want)
    frac = np.where(x > 0, want - base, -1.0)
    left = total - base.sum(axis=1)                                    # [K, T]
    rank = np.argsort(np.argsort(-frac, axis=1, kind="stable"), axis=1, kind="stable")
    return (base + (rank < left[:, None, :])).astype(np.int64)


@dataclass(eq=False)
class SimResult:
    """Per-class outcomes, realised utility and energy of one simulated horizon."""

    classes: tuple[str, ...]
    interactive: NDArray[np.bool_]
    arrived: I_                 # [K]
    served: I_                  # [K] started service (and so finished)
    late: I_                    # [K] served after the deadline (interactive) or slack
    dropped: I_                 # [K]
    deferred: I_                # [K] held at the end of at least one slot
    queued_end: I_              # [K] still waiting at the horizon's end
    latency_pct: F              # [K, len(PERCENTILES)] seconds, NaN where none served
    utility: float
    terms: dict[str, float]     # the evaluator's TERMS, late from the simulation
    energy: dict[str, float]    # IT kWh: busy, idle, cold_start, total; facility; starts
    fluid: dict[str, float]     # the evaluator on the schedule itself, for comparison
    slot_served: I_             # [K, T] by serving slot
    slot_late: I_               # [K, T] by serving slot
    option: I_                  # [N] per job: option, engine.DROPPED or QUEUED_END
    latency_s: F                # [N] per job, NaN unless served

    @property
    def late_rate(self) -> F:
        """Late share of served jobs per class (0 where none served)."""
        return self.late / np.maximum(self.served, 1)

    def frame(self) -> pd.DataFrame:
        """One row per class: counts, late rate and latency percentiles."""
        out = pd.DataFrame({
            "kind": np.where(self.interactive, "interactive", "deferrable"),
            "arrived": self.arrived, "served": self.served, "late": self.late,
            "late_rate": self.late_rate, "dropped": self.dropped, "deferred": self.deferred,
            "queued_end": self.queued_end,
            **{f"p{p}_s": self.latency_pct[:, j] for j, p in enumerate(PERCENTILES)},
        }, index=pd.Index(self.classes, name="class"))
        return out

    def to_dict(self) -> dict:
        """JSON-safe (no NaN: a percentile of no jobs is None)."""
        def num(v: float) -> float | None:
            return None if not math.isfinite(v) else float(v)

        classes = {
            name: {
                "kind": "interactive" if self.interactive[k] else "deferrable",
                "arrived": int(self.arrived[k]), "served": int(self.served[k]),
                "late": int(self.late[k]), "late_rate": float(self.late_rate[k]),
                "dropped": int(self.dropped[k]), "deferred": int(self.deferred[k]),
                "queued_end": int(self.queued_end[k]),
                **{f"p{p}_s": num(self.latency_pct[k, j]) for j, p in enumerate(PERCENTILES)},
            }
            for k, name in enumerate(self.classes)
        }
        jobs = {key: int(getattr(self, key).sum()) for key in
                ("arrived", "served", "late", "dropped", "deferred", "queued_end")}
        return {"utility": num(self.utility), "terms": {k: num(v) for k, v in self.terms.items()},
                "jobs": jobs, "classes": classes,
                "energy": {k: num(v) for k, v in self.energy.items()},
                "fluid": {k: num(v) for k, v in self.fluid.items()},
                "slots": {"served": self.slot_served.tolist(), "late": self.slot_late.tolist()}}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)


def _gpu_intervals(c: Compiled, n: F, cold: ColdStart, rng: np.random.Generator
                   ) -> tuple[list[tuple[F, F, I_]], F, I_]:
    """Per site the GPUs' on-and-ready intervals (start, end, per-GPU pointer), and the
    cold-start seconds [I, T] and count [I, T] booked in the slot each start began."""
    on_count = np.minimum(np.ceil(n - GPU_TOL), c.gpus[:, None]).clip(0).astype(np.int64)
    cold_s = np.zeros((c.I, c.T))
    starts = np.zeros((c.I, c.T), np.int64)
    out = []
    for i in range(c.I):
        G = int(c.gpus[i])
        on = np.arange(G)[:, None] < on_count[i][None, :]                 # [G, T]
        off = np.zeros((G, 1), bool)
        begin = on & ~np.concatenate([off, on[:, :-1]], axis=1)
        finish = on & ~np.concatenate([on[:, 1:], off], axis=1)
        g, t0 = np.nonzero(begin)                                         # GPU-major order
        _, t1 = np.nonzero(finish)
        delay = np.zeros(t0.size)
        is_cold = t0 > 0
        delay[is_cold] = cold.sample(rng, int(is_cold.sum()))
        lo, hi = t0 * c.dt_s + delay, (t1 + 1) * c.dt_s
        np.add.at(cold_s[i], t0, np.minimum(delay, hi - t0 * c.dt_s))
        np.add.at(starts[i], t0[is_cold], 1)
        keep = lo < hi
        ptr = np.concatenate([[0], np.cumsum(np.bincount(g[keep], minlength=G))])
        out.append((lo[keep], hi[keep], ptr.astype(np.int64)))
    return out, cold_s, starts


def simulate(c: Compiled, schedule: Schedule, jobs: Jobs | None = None,
             seed: int | np.random.SeedSequence = 0,
             cold_start: ColdStart | None = None,
             deadline_s: ArrayLike | None = None) -> SimResult:
    """Replay `schedule` on `c` job by job (see the module docstring). `jobs` default:
    `poisson_jobs(c, counts="exact")`, the demand the schedule was planned for at random
    times within each slot. `cold_start` default: `ColdStart.default()`. `deadline_s` [K]
    default: the classes' own (`c.deadline_s`). One seed drives the jobs (when
    drawn here), the shuffle of options over jobs and the cold-start delays."""
    cold_start = ColdStart.default() if cold_start is None else cold_start
    fluid_ev = evaluate(c, schedule, keep=0)                      # also checks the shapes
    job_ss, admit_ss, cold_ss = _streams(seed, 3)
    jobs = poisson_jobs(c, job_ss, counts="exact") if jobs is None else jobs
    jobs.check(c)
    deadline = _deadlines(c, deadline_s)
    K, O, T, dt = c.K, c.O, c.T, c.dt_s
    N = len(jobs)
    slot_of = np.minimum((jobs.arrival_s // dt).astype(np.int64), T - 1)
    option, event_slot, hold, drop = _admit(c, schedule, jobs, slot_of,
                                            np.random.default_rng(admit_ss))
    deferred_mask = (event_slot > slot_of) | (option == engine.QUEUED_END)
    sent = np.flatnonzero(option >= 0)
    o_s, k_s = option[sent], jobs.k[sent]
    work = c.gpu_s[o_s] * jobs.work[sent]
    start, finish_all, cold_s, cold_n = _serve(
        c, schedule, cold_start, np.random.default_rng(cold_ss), jobs.arrival_s[sent], k_s,
        o_s, event_slot[sent], work)
    never = ~np.isfinite(start)
    option[sent[never]] = engine.QUEUED_END
    ok = ~never                                      # served: started (and so finishes)
    done, o_d, k_d = sent[ok], o_s[ok], k_s[ok]
    finish = finish_all[ok]
    latency = np.full(N, np.nan)
    latency[done] = finish - jobs.arrival_s[done]
    slack_end = (slot_of[done] + c.max_wait[k_d] + 1) * dt
    is_late = np.where(c.interactive[k_d], latency[done] > deadline[k_d], finish > slack_end)

    # 4. outcomes per class and slot
    t_d = event_slot[done]
    flat = (k_d * O + o_d) * T + t_d
    x_real = np.bincount(flat, minlength=K * O * T).reshape(K, O, T).astype(float)
    x_work = np.bincount(flat, jobs.work[done], minlength=K * O * T).reshape(K, O, T)
    slot_served = x_real.sum(axis=1).astype(np.int64)
    slot_late = np.bincount(k_d[is_late] * T + t_d[is_late], minlength=K * T).reshape(K, T)

    def per_class(mask: NDArray[np.bool_]) -> I_:
        return np.bincount(jobs.k[mask], minlength=K).astype(np.int64)

    served = per_class(option >= 0)
    late = np.bincount(k_d[is_late], minlength=K).astype(np.int64)
    pct = np.full((K, len(PERCENTILES)), np.nan)
    for k in range(K):
        lat = latency[done[k_d == k]]
        if lat.size:
            pct[k] = np.percentile(lat, PERCENTILES)

    # 5. realised utility through the evaluator
    n_eff = schedule.n + cold_s / dt
    c_real = _sampled_cold_starts(c)
    power = complete(c_real, x_work, drop.astype(float), n_eff, schedule.ch, schedule.dis,
                     schedule.r)
    real = Schedule(x=x_real, y=drop.astype(float), q=hold.astype(float), n=n_eff,
                    ch=power.ch, dis=power.dis, soc=power.soc, r=power.r, b=power.b,
                    z=power.z)
    ev = evaluate(c_real, real, keep=0)
    terms = dict(ev.terms)
    terms["late"] = float(c.late_penalty @ late)
    busy = float(np.sum(c.busy_kwh[o_d] * jobs.work[done]))
    idle = float(c.dt_h * np.sum(c.idle_kw[:, None] * schedule.n))
    cold_kwh = float(np.sum(c.idle_kw[:, None] * cold_s) / 3600.0)
    p_it = it_kw(c, x_work, n_eff)              # the evaluator's it_kwh would count x_real
    energy = {"busy_kwh": busy, "idle_kwh": idle, "cold_start_kwh": cold_kwh,
              "it_kwh": float(c.dt_h * p_it.sum()),
              "facility_kwh": float(c.dt_h * physics.facility_kw(c.pue, p_it).sum()),
              "cold_starts": float(cold_n.sum())}
    fluid = {"utility": fluid_ev.utility, **{f"{k}": v for k, v in fluid_ev.jobs.items()},
             "it_kwh": sum(s["it_kwh"] for s in fluid_ev.sites.values()),
             "facility_kwh": sum(s["facility_kwh"] for s in fluid_ev.sites.values())}
    if c.commit:            # the fluid model's fixed cold starts, against the sampled ones
        fluid |= {key: sum(s[key] for s in fluid_ev.sites.values())
                  for key in ("gpu_starts", "cold_start_kwh")}
    return SimResult(
        classes=c.classes, interactive=c.interactive.copy(), arrived=per_class(slot_of >= 0),
        served=served, late=late, dropped=per_class(option == engine.DROPPED),
        deferred=per_class(deferred_mask), queued_end=per_class(option == engine.QUEUED_END),
        latency_pct=pct, utility=float(utility_of(terms)), terms=terms, energy=energy,
        fluid=fluid, slot_served=slot_served, slot_late=slot_late.astype(np.int64),
        option=option, latency_s=latency)


def _sampled_cold_starts(c: Compiled) -> Compiled:
    """`c` for scoring the realised schedule: with provisioning on, its cold starts are
    the simulator's sampled delays, already booked as idle-GPU seconds in n, so the fluid
    model's fixed cold_start_s per start (capacity lost, loading draw) is left out instead
    of counted twice."""
    return dataclasses.replace(c, commit=False, cold_start_s=0.0) if c.commit else c


def _admit(c: Compiled, schedule: Schedule, jobs: Jobs, slot_of: I_,
           rng: np.random.Generator) -> tuple[I_, I_, I_, I_]:
    """Step 1 of the module docstring for every class: per job its outcome (option,
    DROPPED or QUEUED_END) and that outcome's slot; per class and slot the jobs held and
    dropped."""
    K, T = c.K, c.T
    served_n, dropped_n = cum_round(schedule.x.sum(axis=1)), cum_round(schedule.y)
    held_n = np.rint(np.maximum(schedule.q, 0.0)).astype(np.int64)
    opt_count = split_counts(schedule.x, served_n)
    assert np.array_equal(opt_count.sum(axis=1), served_n), "largest remainder lost a job"
    option = np.empty(len(jobs), np.int64)
    event_slot = np.empty(len(jobs), np.int64)
    hold = np.zeros((K, T), np.int64)
    drop = np.zeros((K, T), np.int64)
    for k in range(K):
        idx = np.flatnonzero(jobs.k == k)
        sk = slot_of[idx]
        tails = np.searchsorted(sk, np.arange(T), side="right").astype(np.int64)
        opt_k, ev_k = np.empty(idx.size, np.int64), np.empty(idx.size, np.int64)
        engine.admit_class(sk, tails, served_n[k], dropped_n[k], held_n[k],
                           np.ascontiguousarray(opt_count[k]), int(c.max_wait[k]),
                           rng.random(int(served_n[k].sum())), opt_k, ev_k, hold[k], drop[k])
        option[idx], event_slot[idx] = opt_k, ev_k
    return option, event_slot, hold, drop


def _serve(c: Compiled, schedule: Schedule, cold_start: ColdStart, rng: np.random.Generator,
           arrival_s: F, k: I_, o: I_, slot: I_, work: F) -> tuple[F, F, F, I_]:
    """Steps 2-3 of the module docstring for the admitted jobs (arrival, class, option,
    serving slot, GPU seconds needed): their start times (inf: never started), and per site
    and slot the cold-start seconds and count."""
    release = np.maximum(arrival_s, slot * c.dt_s)
    ready = release + (c.latency_s - c.gpu_s[None, :])[k, o]        # + transfer latency
    site = c.opt_site[o]
    interactive = c.interactive[k]
    intervals, cold_s, cold_n = _gpu_intervals(c, schedule.n, cold_start, rng)
    due = arrival_s + c.deadline_s[k]              # EDF key (inf: deferrable)
    quantum = work / c.opt_steps[o]                # preemption points: denoising steps
    start, finish = engine.serve_sites(intervals, site, interactive, ready, due, work, quantum)
    return start, finish, cold_s, cold_n


def _streams(seed: int | np.random.SeedSequence, n: int) -> list[np.random.SeedSequence]:
    """n independent streams under `seed`, like `spawn` but without changing `seed`, so the
    same SeedSequence given twice gives the same result."""
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, j)) for j in range(n)]


def _deadlines(c: Compiled, deadline_s: ArrayLike | None) -> F:
    d = np.asarray(c.deadline_s if deadline_s is None else deadline_s, dtype=float)
    if d.shape != (c.K,):
        raise ScenarioError("deadline_s", f"expected one deadline per class ({c.K})",
                            list(np.atleast_1d(d)))
    return d
