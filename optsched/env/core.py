"""The batched environment core: B copies of MODEL.md stepped slot by slot, each slot one
compiled pass over the copies (optsched/env/kernel.py), state in numpy arrays.

Action per copy (all in [-1, 1]), for K classes and I sites:
  route[K, I]   logits of each class's routing distribution over sites (masked where the
                class has no eligible option),
  steps[K, I]   step level of each class at each site (lowest .. highest step count;
                raised to the class's quality floor there),
  serve[K]      share of pending jobs to serve now (deferrable classes; interactive
                classes always ask for everything),
  clock[I]      GPU clock level per site,
  battery[I]    battery power: > 0 charge (share of ch_max), < 0 discharge,
  gpus[I]       only with provisioning (`Compiled.commit`): GPUs committed for the slot,
                round((a + 1) / 2 G_i).
Repair turns any action into a feasible slot schedule: capacity and import-cap overflow
scale the site's jobs down (they wait within the class's limit or are dropped), GPUs are
powered on as needed (integer), battery power is clipped to soc and grid limits, and
renewables serve load first. The repaired decisions are exactly what the evaluator
scores: with `record=True` an episode's schedule is kept and `evaluate` of it equals the
sum of rewards.

With provisioning (docs/model.md, "Provisioning before arrivals") a slot is decided before
its arrivals are seen: the GPUs on are committed (by the action, by `step_plan`'s `gpus`,
or by the repair's rule applied to the plan), paid whether used or not, and GPUs switched
on since the last slot lose a cold start; the slot's real arrivals then meet the plan
(interactive plans are shares of what is pending), and the observation shows the last
slot's arrivals, not the current one's. What policies may know in that mode:
`optsched.env.known`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from optsched.env import kernel
from optsched.env.bank import DayBank
from optsched.evaluator import TERMS, utility_of
from optsched.schedule import Schedule

F64 = NDArray[np.float64]
REWARD_MODES = ("dense", "settlement", "episode")


@dataclass(frozen=True)
class EnvConfig:
    reward: str = "dense"
    settlement_slots: int = 12          # the sparse reward: paid every hour of 5-min slots
    reward_scale: float = 1.0           # rewards are divided by this (utility in $ / scale)
    record: bool = False                # keep the repaired schedule for the evaluator
    forecast_slots: tuple[int, ...] = ()  # leads (slots ahead) of price/arrival forecasts
    forecast_error: float = 0.0         # lognormal sd at one hour ahead, grows as sqrt(lead)


def obs_dim(c, config: EnvConfig = EnvConfig()) -> int:
    """Length of `BatchedCore.observe`'s rows for compiled day c (see its docstring)."""
    extra = c.I if c.commit else 0
    return 2 * c.K + 4 * c.I + 2 + len(config.forecast_slots) * (c.K + c.I) + extra


class BatchedCore:
    def __init__(self, bank: DayBank, batch: int, config: EnvConfig = EnvConfig()):
        if config.reward not in REWARD_MODES:
            raise ValueError(f"reward must be one of {REWARD_MODES}, got {config.reward!r}")
        self.bank, self.B, self.cfg = bank, int(batch), config
        c = self.c = bank.base
        self.K, self.I, self.T = c.K, c.I, c.T
        S, Fq = len(c.steps), len(c.clocks)
        self.S, self.F = S, Fq
        # Option table and eligibility repair: fix_step[k, i, s] is the nearest eligible
        # step index at site i (upward first), -1 where the site has none.
        elig_kis = c.eligible.reshape(c.K, c.I, S, Fq)[..., 0]
        fix = np.full((c.K, c.I, S), -1, dtype=np.int64)
        for k in range(c.K):
            for i in range(c.I):
                ok = np.flatnonzero(elig_kis[k, i])
                if ok.size:
                    up = np.searchsorted(ok, np.arange(S))
                    fix[k, i] = ok[np.minimum(up, ok.size - 1)]
        self.site_ok = fix[:, :, 0] >= 0                                  # [K, I]
        self.fix_step = np.maximum(fix, 0)
        self.is_deferrable = ~c.interactive
        # Per class, the option (index within the class's O) that takes pending jobs a
        # plan made before the arrivals left no share for (provisioning): the eligible
        # option of best value per GPU-second at the home site, else anywhere; -1: none.
        ratio = np.where(c.eligible, c.value / c.gpu_s[None, :], -np.inf)
        home = np.where(c.opt_site[None, :] == c.home[:, None], ratio, -np.inf)
        self.fallback = np.where(c.eligible.any(axis=1), np.where(
            np.isfinite(home).any(axis=1), home.argmax(axis=1), ratio.argmax(axis=1)), -1)
        self.commit = bool(c.commit)
        extra = c.I if self.commit else 0                  # GPUs committed / GPUs on
        self.action_dim = 2 * c.K * c.I + c.K + 2 * c.I + extra
        self.obs_dim = obs_dim(c, config)
        peak = bank.arrivals.max(axis=(0, 2))
        if self.commit:
            # Arrivals are scaled by what the fleet could serve, not by the days' peak,
            # which is known only once the days are over: per class, jobs a slot at the
            # option of fewest GPU-seconds at each site, over all sites.
            per_job = np.where(c.eligible, c.gpu_s[None, :], np.inf)         # [K, O]
            cheapest = np.stack([per_job[:, c.opt_site == i].min(axis=1)
                                 for i in range(c.I)], axis=1)              # [K, I]
            peak = (c.gpus * c.util_cap * c.dt_s / cheapest).sum(axis=1)
        self.arr_scale = np.where(peak > 0, peak, 1.0)
        self.ren_scale = np.maximum(bank.renewable.max(axis=(0, 2)), 1e-9)
        self.soc_scale = np.where(c.soc_max > 0, c.soc_max, 1.0)
        self.cap_slot = c.util_cap * c.dt_s                               # GPU-s per GPU
        # Per-copy series in the kernel's packed form ser[t, day, col]: the columns of
        # kernel.SERIES_KEYS side by side, so a step reads one copy's numbers together.
        # `series_at` reads one of them for every copy.
        self.ser = np.ascontiguousarray(np.concatenate(
            [getattr(bank, k) for k in kernel.SERIES_KEYS], axis=1).transpose(2, 0, 1))
        widths = np.cumsum([0] + [getattr(bank, k).shape[1] for k in kernel.SERIES_KEYS])
        self._columns = {k: slice(int(a), int(b)) for k, a, b in
                         zip(kernel.SERIES_KEYS, widths[:-1], widths[1:], strict=True)}
        self.terminal_price = np.ascontiguousarray(bank.terminal_price.T)  # [I, D]
        # Per (class, option) table, rows kernel.TAB_KEYS, flat entry k * O + o.
        self.tab_arr = np.stack([np.tile(c.gpu_s, c.K), np.tile(c.busy_kwh, c.K),
                                 c.revenue.ravel(), c.transfer.ravel(),
                                 c.late_cost.ravel()]).astype(float)
        tiers = [np.flatnonzero(t) for t in (c.interactive, ~c.interactive) if t.any()]
        self.tier_rows = tiers                                            # class indices
        self.tier_of = np.zeros(c.K, dtype=np.int64)                      # tier of class k
        for j, rows in enumerate(tiers):
            self.tier_of[rows] = j
        self.defer = self.is_deferrable.astype(float)[:, None]             # [K, 1]
        col = lambda v: np.asarray(v, float)[:, None]  # noqa: E731 - [X] -> [X, 1]
        self.col = {k: col(getattr(c, k)) for k in (
            "gpus", "idle_kw", "import_cap", "export_cap", "soc_min", "soc_max", "soc0",
            "ch_max", "dis_max", "eta_c", "eta_d", "sell_factor", "demand_charge",
            "deg_cost", "drop_penalty", "wait_cost")}
        self.col["cap_slot"] = col(self.cap_slot)
        self.col["cold"] = col(np.full(c.I, c.cold_start_s / c.dt_s))
        self.col["eta_c_safe"] = col(np.where(c.eta_c > 0, c.eta_c, 1.0))
        with np.errstate(divide="ignore"):
            self.col["inv_cap_slot"] = 1.0 / self.col["cap_slot"]
            self.col["inv_eta_d"] = 1.0 / self.col["eta_d"]
            self.col["inv_dt_eta_c"] = 1.0 / (c.dt_h * self.col["eta_c_safe"])
        # The kernel's packed forms of the parameters.
        queue = ([c.queue_penalty[:, None], c.queue_a, c.queue_b * c.dt_s]
                 if c.queueing else [])                          # kernel.QUEUE onwards
        self.site_par = np.ascontiguousarray(np.concatenate(
            [np.stack([self.col[k][:, 0] for k in kernel.SITE_KEYS], axis=1), *queue],
            axis=1))                                                          # [I, cols]
        self.cls_par = np.stack([c.drop_penalty, c.wait_cost, self.defer[:, 0],
                                 self.tier_of.astype(float)]).astype(float)   # [4, K]
        self.leads = np.asarray(config.forecast_slots, dtype=np.int64)
        self._inv_scale = [1.0 / v for v in (self.arr_scale, self.soc_scale, self.ren_scale)]
        # Provisioning: the observation's arrivals lag a slot, GPUs on last slot (/ G) follow.
        self._lag = 1 if self.commit else 0
        self._inv_gpus = (1.0 / np.maximum(c.gpus, 1.0)) if self.commit else np.zeros(0)
        self._no_noise = np.ones((len(self.leads), c.K + c.I, self.B))
        self._opt_none = np.empty((1, 1, 1, 1), dtype=np.int64)   # not recording
        self._plan_opt = np.arange(c.O, dtype=np.int64).reshape(1, 1, c.I, S * Fq)
        self._obs = np.empty((self.B, self.obs_dim))
        self.rng = np.random.default_rng()
        self.day = np.zeros(self.B, dtype=np.int64)
        self.t = 0

    # ------------------------------------------------------------------ state
    # The state lives batch first for the kernel (per-site rows kernel.STATE_KEYS of
    # _st [3, B, I]); callers see it batch last.
    @property
    def q(self) -> F64:
        """Backlog per class [K, B] at the start of the slot."""
        return self._q.T

    @property
    def soc(self) -> F64:
        """Battery state of charge per site [I, B] (kWh)."""
        return self._st[0].T

    @property
    def peak(self) -> F64:
        """Running peak grid import per site [I, B] (kW)."""
        return self._st[1].T

    @property
    def n_prev(self) -> F64:
        """GPUs on in the last slot per site [I, B]; G before the day starts (slot 0 is
        warm: the day starts from the night's fleet, no GPU pays a cold start)."""
        return self._st[2].T

    def reset(self, days: NDArray | None = None, seed: int | None = None) -> F64:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.day = (self.rng.integers(0, len(self.bank), self.B) if days is None
                    else np.broadcast_to(np.asarray(days, dtype=np.int64), (self.B,)).copy())
        c = self.c
        self.t = 0
        self._q = np.zeros((self.B, c.K))                # state, batch first (kernel)
        self._st = np.stack([np.repeat(c.soc0[None, :], self.B, axis=0),
                             np.zeros((self.B, c.I)),
                             np.repeat(c.gpus[None, :].astype(float), self.B, axis=0)])
        self.unpaid = np.zeros(self.B)
        self.episode_terms = np.zeros((self.B, len(TERMS)))
        if self.cfg.record:
            T = self.T
            self.rec = {"x": np.zeros((self.B, c.K, c.O, T)), "y": np.zeros((self.B, c.K, T)),
                        "q": np.zeros((self.B, c.K, T)),
                        **{k: np.zeros((self.B, c.I, T)) for k in
                           ("n", "ch", "dis", "soc", "r", "b", "z", "start")}}
        return self.observe()

    def series_at(self, key: str, t: int | None = None) -> F64:
        """Series `key` (one of kernel.SERIES_KEYS) at slot t, by default the current
        one, for every copy: [K or I, B]."""
        return self.ser[self.t if t is None else t, self.day, self._columns[key]].T

    def observe(self) -> F64:
        """[B, obs_dim] (kernel.observe): arrivals and backlog (per class, / peak), soc
        (/ max), price ($/MWh / 100), renewables (/ max), PUE - 1 (per site), time of day
        (sin, cos), then per forecast lead: arrivals (per class) and price (per site)
        that many slots ahead, with the configured error. With provisioning the arrivals
        are the last slot's (0 in slot 0), and GPUs on in the last slot (per site, / G)
        come last. A reused buffer: callers copy what they keep."""
        noise = self._no_noise
        if self.cfg.forecast_error > 0 and self.leads.size:
            noise = np.empty_like(noise)
            for m, lead in enumerate(self.cfg.forecast_slots):
                sd = self.cfg.forecast_error * np.sqrt(lead * self.c.dt_h)
                noise[m] = np.exp(self.rng.normal(0.0, sd, noise.shape[1:]) - sd**2 / 2)
        kernel.observe(self._obs, self.t, self.T, self.day, self.ser, self._q, self._st,
                       *self._inv_scale, self.leads, noise, self._lag, self._inv_gpus)
        return self._obs

    # ------------------------------------------------------------------ step
    def running(self) -> None:
        """Refuse a step before `reset` or after the day's last slot: the kernels index
        slot t unchecked, and past the end they read beyond the day's series (rewards of
        -1e197 and worse, no error)."""
        if not hasattr(self, "_q"):
            raise RuntimeError("step before reset(): reset the environment first")
        if self.t >= self.T:
            raise RuntimeError(f"the episode ended after slot {self.T - 1}: reset() before "
                               "stepping again")

    def step(self, action: F64) -> tuple[F64, F64, bool, dict]:
        """One slot for every copy from actions [B, action_dim] in [-1, 1]."""
        self.running()
        a = np.ascontiguousarray(action, dtype=np.float64)
        if a.shape != (self.B, self.action_dim):
            raise ValueError(f"action shape must be {(self.B, self.action_dim)}, got "
                             f"{a.shape}")
        if not np.isfinite(a).all():    # one NaN left every later reward and state NaN
            raise ValueError("action must be finite")
        shape = (self.B, self.K, self.I, 1)
        out = self._outputs(shape, x_written=self.cfg.record)
        opt = np.empty(shape, dtype=np.int64) if self.cfg.record else self._opt_none
        kernel.step_actions(a, self.t, self.t == self.T - 1, self.day, self.ser,
                            self.terminal_price, self.site_par, self.cls_par, self.tab_arr,
                            self.site_ok, self.fix_step, self.S, self.F, self.c.O,
                            len(self.tier_rows), self.c.dt_h, self.c.carbon_price, self._q,
                            self._st, out[0], opt, *out[1:3], self.cfg.record, *out[3:],
                            2 * self.I if self.commit else self.I)
        return self._finish(opt, *out)

    def step_plan(self, x: F64, battery_kw: F64, drop: F64 | None = None,
                  gpus: F64 | None = None) -> tuple[F64, F64, bool, dict]:
        """One slot from a detailed plan, through the same repair: jobs x[B, K, O] per
        option, battery power [B, I] (kW, > 0 charge), planned drops [B, K]. A feasible
        plan passes unchanged; this is how MPC and oracle replays act.

        With provisioning the plan was made before the slot's arrivals were seen: `gpus`
        [B, I] commits the GPUs on (None: `provision` of the plan); an interactive class's
        row and its drops are shares of the pending jobs it planned for, applied to those
        really pending (`_meet`); a deferrable row is a release, capped by what is
        pending."""
        self.running()
        B = self.B
        P = self.S * self.F
        want = np.maximum(np.asarray(x, float), 0.0).reshape(B, self.K, self.I, P)
        bkw = np.ascontiguousarray(battery_kw, dtype=float)
        if self.commit:
            if gpus is None:
                gpus = self.provision(want, bkw)
            bkw = np.ascontiguousarray(np.concatenate(
                [bkw, np.asarray(gpus, float).reshape(B, self.I)], axis=1))
        # A plan made on forecasts may ask for more jobs than are pending: scale down.
        pending = self._q + self.series_at("arrivals").T
        if self.commit:
            want = self._meet(want, pending, drop)
        asked = want.sum(axis=(2, 3))
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(asked > pending, pending / asked, 1.0)
        want *= scale[:, :, None, None]
        drop_bk = (np.zeros((0, 0)) if drop is None
                   else np.ascontiguousarray(drop, dtype=float))
        out = self._outputs(want.shape, x_written=True)
        kernel.step_plans(want, self._plan_opt, bkw, drop_bk, self.t,
                          self.t == self.T - 1, self.day, self.ser, self.terminal_price,
                          self.site_par, self.cls_par, self.tab_arr, self.c.O,
                          len(self.tier_rows), self.c.dt_h, self.c.carbon_price, self._q,
                          self._st, out[0], *out[1:3], self.cfg.record, *out[3:])
        return self._finish(self._plan_opt, *out)

    def provision(self, x: F64, battery_kw: F64 | None = None) -> F64:
        """GPUs [B, I] the repair commits for plans x [B, K, O] (or [B, K, I, S F]) when
        the policy leaves it to the repair (provisioning on): the fewest that hold the
        planned work, less the cold start of those switched on, then with queueing one
        more while it pays (kernel.provision). Needs no arrivals: a policy may call it."""
        B, P = self.B, self.S * self.F
        want = np.ascontiguousarray(np.maximum(np.asarray(x, float), 0.0)
                                    .reshape(B, self.K, self.I, P))
        dec = (np.zeros((B, self.I)) if battery_kw is None
               else np.ascontiguousarray(battery_kw, dtype=float))
        gpus = np.empty((B, self.I))
        kernel.provision(want, self._plan_opt, dec, self.t, self.day, self.ser,
                         self.site_par, self.cls_par, self.tab_arr, self.c.O,
                         len(self.tier_rows), self.c.dt_h, self.c.carbon_price, self._st,
                         gpus)
        return gpus

    def gpu_action(self, gpus: F64) -> F64:
        """The flat action's last I numbers [B, I] in [-1, 1] that commit `gpus` [B, I]
        (provisioning): the inverse of round((a + 1) / 2 G_i)."""
        G = self.c.gpus[None, :]
        return np.where(G > 0, 2.0 * np.asarray(gpus, float) / np.maximum(G, 1.0) - 1.0,
                        -1.0)

    def _meet(self, want: F64, pending: F64, drop: F64 | None) -> F64:
        """The real pending jobs [B, K] meet a plan want [B, K, I, P] made on believed
        ones: an interactive row becomes its shares of what it planned for (served by
        option, and dropped: drop [B, K]) times what is pending; a class with jobs
        pending and nothing planned takes its fallback option (`self.fallback`)."""
        inter = self.c.interactive
        if not inter.any():
            return want
        rows = want[:, inter]                                     # [B, Ki, I, P]
        planned = rows.sum(axis=(2, 3))
        if drop is not None:
            planned = planned + np.maximum(np.asarray(drop, float)[:, inter], 0.0)
        real = pending[:, inter]
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(planned > 0, real / planned, 0.0)
        rows = rows * factor[:, :, None, None]
        empty = (planned <= 0) & (real > 0)
        if empty.any():
            flat = rows.reshape(rows.shape[0], rows.shape[1], -1)
            opts = self.fallback[inter]
            for b, k in zip(*np.nonzero(empty & (opts >= 0)[None]), strict=True):
                flat[b, k, opts[k]] = real[b, k]
        want = want.copy()
        want[:, inter] = rows
        return want

    def _outputs(self, shape: tuple[int, ...], x_written: bool) -> tuple[F64, ...]:
        """Fresh result arrays of a slot: x (the plan's shape; a stand-in unless the
        kernel writes it), next q [B, K], next per-site state [3, B, I], y [B, K]
        and decisions [7, B, I] (stand-ins unless recording), terms [B, len(TERMS)]."""
        K, I, B = self.K, self.I, self.B
        x = np.empty(shape) if x_written else np.empty((1, 1, 1, 1))
        rec = self.cfg.record
        y = np.empty((B, K)) if rec else np.empty((1, 1))
        res = np.empty((len(kernel.RES_KEYS), B, I)) if rec else np.empty((1, 1, 1))
        return (x, np.empty((B, K)), np.empty((len(kernel.STATE_KEYS), B, I)), y, res,
                np.empty((B, len(TERMS))))

    def _finish(self, opt: NDArray, x: F64, q: F64, state: F64, y: F64, res: F64,
                terms: F64) -> tuple[F64, F64, bool, dict]:
        """Record the repaired decisions, advance the state, pay the reward."""
        t, B = self.t, self.B
        last = t == self.T - 1
        if self.cfg.record:
            rec = self.rec
            full = np.broadcast_to(opt, x.shape).reshape(B, self.K, -1)
            bb = np.arange(B)[:, None, None]
            kk = np.arange(self.K)[None, :, None]
            rec["x"][bb, kk, full, t] = x.reshape(B, self.K, -1)
            rec["y"][:, :, t], rec["q"][:, :, t], rec["soc"][:, :, t] = y, q, state[0]
            for j, name in enumerate(kernel.RES_KEYS):
                rec[name][:, :, t] = res[j]
        self._q, self._st = q, state
        self.episode_terms += terms
        self.t += 1
        utility = utility_of(terms)
        reward = self._reward(utility, last)
        info = {"terms": terms, "utility": utility}
        return self.observe(), reward / self.cfg.reward_scale, last, info

    def _reward(self, utility: F64, last: bool) -> F64:
        mode = self.cfg.reward
        if mode == "dense":
            return utility
        self.unpaid = self.unpaid + utility
        pay = last or (mode == "settlement" and self.t % self.cfg.settlement_slots == 0)
        if not pay:
            return np.zeros(self.B)
        paid, self.unpaid = self.unpaid, np.zeros(self.B)
        return paid

    @property
    def episode_utility(self) -> F64:
        """Utility of each copy's episode so far [B]."""
        return utility_of(self.episode_terms)

    def snapshot(self) -> dict:
        """The episode state (for exact checkpoint resume)."""
        return {"t": self.t, "day": self.day, "q": self.q, "soc": self.soc,
                "peak": self.peak, "n_prev": self.n_prev, "unpaid": self.unpaid,
                "terms": self.episode_terms, "rng": self.rng.bit_generator.state}

    def restore(self, s: dict) -> None:
        self.t, self.day = s["t"], s["day"]
        self._q = np.ascontiguousarray(np.asarray(s["q"]).T)
        # snapshots from before provisioning have no n_prev: the warm fleet
        n_prev = s.get("n_prev", np.repeat(self.c.gpus[:, None].astype(float), self.B, 1))
        self._st = np.ascontiguousarray(np.stack([np.asarray(s[k]).T for k in
                                                  ("soc", "peak")] + [np.asarray(n_prev).T]))
        self.unpaid, self.episode_terms = s["unpaid"], s["terms"]
        self.rng.bit_generator.state = s["rng"]

    # ------------------------------------------------------------------ results
    def schedule(self, copy: int) -> Schedule:
        """The repaired schedule of one copy's episode (needs record=True)."""
        if not self.cfg.record:
            raise RuntimeError("create the core with EnvConfig(record=True) to keep schedules")
        return Schedule(**{k: v[copy].copy() for k, v in self.rec.items()})

    def compiled(self, copy: int):
        return self.bank.day(int(self.day[copy]))


__all__ = ["BatchedCore", "EnvConfig", "REWARD_MODES"]
