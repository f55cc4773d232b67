"""The batched environment core: B copies of MODEL.md stepped slot by slot in numpy.

Action per copy (all in [-1, 1]), for K classes and I sites:
  route[K, I]   logits of each class's routing distribution over sites (masked where the
                class has no eligible option),
  steps[K, I]   step level of each class at each site (lowest .. highest step count;
                raised to the class's quality floor there),
  serve[K]      share of pending jobs to serve now (deferrable classes; interactive
                classes always ask for everything),
  clock[I]      GPU clock level per site,
  battery[I]    battery power: > 0 charge (share of ch_max), < 0 discharge.
Repair turns any action into a feasible slot schedule: capacity and import-cap overflow
scale the site's jobs down (they wait within the class's limit or are dropped), GPUs are
powered on as needed (integer), battery power is clipped to soc and grid limits, and
renewables serve load first. The repaired decisions are exactly what the evaluator
scores: with `record=True` an episode's schedule is kept and `evaluate` of it equals the
sum of rewards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from optsched.env.bank import DayBank
from optsched.evaluate import COSTS, TERMS
from optsched.schedule import Schedule

F64 = NDArray[np.float64]
REWARD_MODES = ("dense", "settlement", "episode")
ROUTE_SCALE = 4.0          # logits in [-4, 4]: a share can go from ~0 to ~1
# A plan within solver tolerance of a limit fits (HiGHS's primal tolerance is 1e-7), and
# GPUs are rounded up only past a micro-GPU, so an optimal plan replays unchanged; any
# a round-down never leaves more work than the evaluator's tolerance (1e-6 of the
# capacity, at least 1e-6 GPU-s: no sliver of work on zero GPUs).
FIT_RTOL = 1e-7
ROUND_TOL = 1e-6
MIN_SHARE = 0.01           # routing shares below 1% are zeroed and the rest renormalised


@dataclass(frozen=True)
class EnvConfig:
    reward: str = "dense"
    settlement_slots: int = 12          # the sparse reward: paid every hour of 5-min slots
    reward_scale: float = 1.0           # rewards are divided by this (utility in $ / scale)
    record: bool = False                # keep the repaired schedule for the evaluator
    forecast_slots: tuple[int, ...] = ()  # leads (slots ahead) of price/arrival forecasts
    forecast_error: float = 0.0         # lognormal sd at one hour ahead, grows as sqrt(lead)


def _sum_sites(a: F64) -> F64:
    """a[K, I, B] summed over sites; a loop over the few sites beats numpy's strided
    middle-axis reduction several times over."""
    out = a[:, 0].copy()
    for i in range(1, a.shape[1]):
        out += a[:, i]
    return out


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
        self.opt_base = (np.arange(c.I) * S * Fq)[None, :]                # [1, I]
        self.is_deferrable = ~c.interactive
        self.action_dim = 2 * c.K * c.I + c.K + 2 * c.I
        self.obs_dim = 2 * c.K + 4 * c.I + 2 + len(config.forecast_slots) * (c.K + c.I)
        peak = bank.arrivals.max(axis=(0, 2))
        self.arr_scale = np.where(peak > 0, peak, 1.0)
        self.ren_scale = np.maximum(bank.renewable.max(axis=(0, 2)), 1e-9)
        self.soc_scale = np.where(c.soc_max > 0, c.soc_max, 1.0)
        self.cap_slot = c.util_cap * c.dt_s                               # GPU-s per GPU
        # Per-copy series, time-major with days last: a step gathers [K or I, B] rows.
        self.series = {k: np.ascontiguousarray(np.moveaxis(getattr(bank, k), 0, -1))
                       for k in ("arrivals", "backlog_cap", "price", "renewable", "pue",
                                 "ci")}                                   # [X, T, D]
        self.series = {k: np.ascontiguousarray(v.transpose(1, 0, 2))
                       for k, v in self.series.items()}                   # [T, X, D]
        self.terminal_price = np.ascontiguousarray(bank.terminal_price.T)  # [I, D]
        # Per (class, option) tables, flat: entry k * O + o.
        self.tab = {"gpu_s": np.tile(c.gpu_s, c.K), "busy": np.tile(c.busy_kwh, c.K),
                    "revenue": c.revenue.ravel(), "transfer": c.transfer.ravel(),
                    "late": c.late_cost.ravel()}
        self.k_off = (np.arange(c.K) * c.O)[:, None, None]                 # [K, 1, 1]
        self.opt_site_base = (np.arange(c.I) * S * Fq)[None, :, None]      # [1, I, 1]
        self.fix_flat = self.fix_step.reshape(c.K * c.I, S)                # [(k, i), s]
        self.ki = (np.arange(c.K)[:, None] * c.I + np.arange(c.I)[None, :])[:, :, None]
        self.site_mask = np.where(self.site_ok, 0.0, -np.inf)[:, :, None]  # [K, I, 1]
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
        self.col["eta_c_safe"] = col(np.where(c.eta_c > 0, c.eta_c, 1.0))
        self._obs = np.empty((self.obs_dim, self.B))
        self.rng = np.random.default_rng()
        self.day = np.zeros(self.B, dtype=np.int64)
        self.t = 0

    # ------------------------------------------------------------------ state
    def reset(self, days: NDArray | None = None, seed: int | None = None) -> F64:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.day = (self.rng.integers(0, len(self.bank), self.B) if days is None
                    else np.broadcast_to(np.asarray(days, dtype=np.int64), (self.B,)).copy())
        c = self.c
        self.t = 0
        self.q = np.zeros((c.K, self.B))                 # state, batch last
        self.soc = np.repeat(c.soc0[:, None], self.B, axis=1)
        self.peak = np.zeros((c.I, self.B))
        self.unpaid = np.zeros(self.B)
        self.episode_terms = np.zeros((self.B, len(TERMS)))
        if self.cfg.record:
            T = self.T
            self.rec = {"x": np.zeros((self.B, c.K, c.O, T)), "y": np.zeros((self.B, c.K, T)),
                        "q": np.zeros((self.B, c.K, T)),
                        **{k: np.zeros((self.B, c.I, T)) for k in
                           ("n", "ch", "dis", "soc", "r", "b", "z")}}
        return self.observe()

    def _at(self, key: str, t: int) -> F64:
        """Series `key` at slot t for every copy: [K or I, B]."""
        return np.take(self.series[key][t], self.day, axis=1)

    def observe(self) -> F64:
        """[B, obs_dim]: arrivals and backlog (per class, / peak), soc (/ max), price
        ($/MWh / 100), renewables (/ max), PUE - 1 (per site), time of day (sin, cos),
        then per forecast lead: arrivals (per class) and price (per site) that many slots
        ahead, with the configured error."""
        t = min(self.t, self.T - 1)
        phase = 2 * np.pi * self.t / self.T
        obs = self._obs                  # reused buffer: callers copy what they keep
        K, I = self.K, self.I
        obs[:K] = self._at("arrivals", t) / self.arr_scale[:, None]
        obs[K:2 * K] = self.q / self.arr_scale[:, None]
        obs[2 * K:2 * K + I] = self.soc / self.soc_scale[:, None]
        obs[2 * K + I:2 * K + 2 * I] = self._at("price", t) / 100.0
        obs[2 * K + 2 * I:2 * K + 3 * I] = self._at("renewable", t) / self.ren_scale[:, None]
        obs[2 * K + 3 * I:2 * K + 4 * I] = self._at("pue", t) - 1.0
        j = 2 * K + 4 * I
        obs[j], obs[j + 1] = np.sin(phase), np.cos(phase)
        j += 2
        for lead in self.cfg.forecast_slots:
            ahead = min(t + lead, self.T - 1)
            noise = 1.0
            if self.cfg.forecast_error > 0:
                sd = self.cfg.forecast_error * np.sqrt(lead * self.c.dt_h)
                noise = np.exp(self.rng.normal(0.0, sd, (K + I, self.B)) - sd**2 / 2)
            obs[j:j + K] = self._at("arrivals", ahead) / self.arr_scale[:, None]
            obs[j + K:j + K + I] = self._at("price", ahead) / 100.0
            obs[j:j + K + I] *= noise
            j += K + I
        return obs.T

    # ------------------------------------------------------------------ step
    def decode(self, action: F64) -> dict[str, NDArray]:
        """Action [B, action_dim] in [-1, 1] -> shares [K, I, B], step indices [K*I, B],
        serve shares [K, B], clock indices [I, B], battery [I, B]."""
        K, I = self.K, self.I
        a = np.clip(np.asarray(action, dtype=float).T, -1.0, 1.0)       # [A, B]
        j = K * I
        # Logits lie in [-ROUTE_SCALE, ROUTE_SCALE] (or -inf where masked): exp is safe
        # without subtracting the maximum.
        w = np.exp(a[:j].reshape(K, I, -1) * ROUTE_SCALE + self.site_mask)
        shares = w / _sum_sites(w)[:, None, :]
        shares[shares < MIN_SHARE] = 0.0                       # no slivers of a class
        shares /= _sum_sites(shares)[:, None, :]
        s_idx = np.rint((a[j:2 * j] + 1.0) * (0.5 * (self.S - 1))).astype(np.int64)
        j *= 2
        serve = 1.0 + self.defer * ((a[j:j + K] + 1.0) * 0.5 - 1.0)
        f_idx = np.rint((a[j + K:j + K + I] + 1.0) * (0.5 * (self.F - 1))).astype(np.int64)
        return {"shares": shares, "s_idx": s_idx, "serve": serve, "f_idx": f_idx,
                "battery": a[j + K + I:]}

    def step(self, action: F64) -> tuple[F64, F64, bool, dict]:
        """One slot for every copy from actions [B, action_dim] in [-1, 1]."""
        d = self.decode(action)
        B = self.B
        # Options [K, I, B]: the step level raised to each site's quality floor.
        s_fix = np.take_along_axis(self.fix_flat, d["s_idx"], axis=1).reshape(self.K,
                                                                             self.I, B)
        opt = self.opt_site_base + s_fix * self.F + d["f_idx"][None]
        pending = self.q + self._at("arrivals", self.t)
        want = (pending * d["serve"])[:, None, :] * d["shares"]           # [K, I, B]
        battery_kw = np.where(d["battery"] > 0, d["battery"] * self.col["ch_max"],
                              d["battery"] * self.col["dis_max"])
        return self._apply(want[:, :, None], opt[:, :, None], battery_kw)

    def step_plan(self, x: F64, battery_kw: F64, drop: F64 | None = None
                  ) -> tuple[F64, F64, bool, dict]:
        """One slot from a detailed plan, through the same repair: jobs x[B, K, O] per
        option, battery power [B, I] (kW, > 0 charge), planned drops [B, K]. A feasible
        plan passes unchanged; this is how MPC and oracle replays act."""
        c, B = self.c, self.B
        P = self.S * self.F
        want = np.ascontiguousarray(np.asarray(x, float).transpose(1, 2, 0)
                                    ).reshape(self.K, self.I, P, B)
        want = np.maximum(want, 0.0)
        # A plan made on forecasts may ask for more jobs than are pending: scale down.
        pending = self.q + self._at("arrivals", self.t)
        asked = want.sum(axis=(1, 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(asked > pending, pending / asked, 1.0)
        want *= scale[:, None, None, :]
        opt = np.arange(c.O).reshape(1, self.I, P, 1)
        planned = None if drop is None else np.asarray(drop, float).T
        return self._apply(want, opt, np.asarray(battery_kw, float).T, planned)

    def _apply(self, want: F64, opt: NDArray, battery_kw: F64, drop: F64 | None = None
               ) -> tuple[F64, F64, bool, dict]:
        """The repair and the slot's accounting. want[K, I, P, B] jobs asked of options
        opt[K or 1, I, P, B or 1] (P options per site), battery power [I, B] in kW."""
        c, t, col = self.c, self.t, self.col
        B = self.B
        flat = opt + self.k_off[..., None]
        g = self.tab["gpu_s"][flat]
        e = self.tab["busy"][flat]
        pending = self.q + self._at("arrivals", t)                        # [K, B]
        pue, ren = self._at("pue", t), self._at("renewable", t)           # [I, B]
        # Power available to the load: the import cap, renewables, and what the battery
        # is asked to discharge (within its limits).
        avail = (self.soc - col["soc_min"]) * col["eta_d"] / c.dt_h
        dis_asked = np.minimum(np.minimum(np.maximum(-battery_kw, 0.0), col["dis_max"]),
                               np.maximum(avail, 0.0))
        supply = col["import_cap"] + ren
        load_supply = supply + dis_asked
        cap_g = col["gpus"] * col["cap_slot"]
        # What each site can take. A plan that fits (GPUs, and power with GPUs rounded up)
        # passes whole. Otherwise interactive work goes first (it cannot wait), deferrable
        # work gets what is left; each tier is scaled down to the GPU capacity and to the
        # power cap (with one GPU of slack for the rounding).
        wg, we = want * g, want * e
        needs = [(wg[rows].sum(axis=(0, 2)), we[rows].sum(axis=(0, 2)) / c.dt_h)
                 for rows in self.tier_rows]
        all_g = sum(ng for ng, _ in needs)
        all_kw = sum(nk for _, nk in needs)
        n_all = np.minimum(np.ceil(all_g / col["cap_slot"] - ROUND_TOL), col["gpus"])
        fits = (all_g <= cap_g * (1 + FIT_RTOL)) & (
            pue * (col["idle_kw"] * n_all + all_kw) <= load_supply * (1 + FIT_RTOL)
            + FIT_RTOL)
        gpu_left = np.broadcast_to(cap_g, (self.I, B))
        head_kw = load_supply / pue - col["idle_kw"]
        idle_per_gs = col["idle_kw"] / col["cap_slot"]
        alphas = []
        used_g = np.zeros((self.I, B))
        used_kw = np.zeros((self.I, B))
        for need_g, need_kw in needs:
            load = idle_per_gs * need_g + need_kw
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                alpha = np.minimum(np.where(need_g > 0, gpu_left / need_g, 1.0),
                                   np.where(load > 0, head_kw / load, 1.0))
            np.clip(alpha, 0.0, 1.0, out=alpha)
            alpha[fits] = 1.0
            alphas.append(alpha)
            gpu_left = gpu_left - alpha * need_g
            head_kw = head_kw - alpha * load
            used_g += alpha * need_g
            used_kw += alpha * need_kw
        x = want * np.stack(alphas)[self.tier_of][:, :, None, :]
        n = np.ceil(used_g / col["cap_slot"] - ROUND_TOL)
        over = used_g - n * col["cap_slot"] > 0.5e-6 * np.maximum(1.0, n * col["cap_slot"])
        n = np.minimum(n + over, col["gpus"])
        p_fac = pue * (col["idle_kw"] * n + used_kw)
        # Battery: charge from headroom and soc room; discharge down to the load (plus
        # what may be exported) and the soc floor. Never both in one slot.
        room = (col["soc_max"] - self.soc) / (c.dt_h * col["eta_c_safe"])
        ch = np.minimum(np.minimum(np.maximum(battery_kw, 0.0), col["ch_max"]),
                        np.maximum(np.minimum(room, supply - p_fac), 0.0))
        dis = np.minimum(dis_asked, np.maximum(p_fac + col["export_cap"], 0.0))
        r = np.clip(p_fac + ch - dis + col["export_cap"], 0.0, ren)
        net = p_fac + ch - dis - r
        imp, exp_ = np.maximum(net, 0.0), np.maximum(-net, 0.0)
        soc = self.soc + c.dt_h * (col["eta_c"] * ch - dis / col["eta_d"])
        served = _sum_sites(x[:, :, 0]) if x.shape[2] == 1 else x.sum(axis=(1, 2))
        left = np.maximum(pending - served, 0.0)
        if drop is not None:
            left_after = left - np.clip(drop, 0.0, left)
            q = self.defer * np.minimum(left_after, self._at("backlog_cap", t))
        else:
            q = self.defer * np.minimum(left, self._at("backlog_cap", t))
        y = left - q
        # Utility terms of this slot (MODEL.md objective; peak and terminal as booked by
        # the evaluator: demand on the running peak's rise, terminal in the last slot).
        price = self._at("price", t) / 1000.0
        new_peak = np.maximum(self.peak, imp)
        last = t == self.T - 1
        terminal = (np.maximum(col["soc0"] - soc, 0.0) * np.take(
            self.terminal_price, self.day, axis=1)).sum(axis=0) if last else np.zeros(B)
        xs = x.reshape(-1, B)
        per_job = [(np.broadcast_to(self.tab[k][flat], x.shape).reshape(-1, B) * xs
                    ).sum(axis=0)
                   for k in ("revenue", "transfer", "late")]
        terms = np.stack([
            per_job[0], per_job[1], per_job[2],
            (col["drop_penalty"] * y).sum(axis=0),
            (col["wait_cost"] * q).sum(axis=0),
            (c.dt_h * price * (imp - col["sell_factor"] * exp_)).sum(axis=0),
            (col["demand_charge"] * (new_peak - self.peak)).sum(axis=0),
            (c.dt_h * col["deg_cost"] * (ch + dis)).sum(axis=0),
            (c.carbon_price * c.dt_h / 1e6) * (self._at("ci", t) * imp).sum(axis=0),
            terminal,
        ], axis=1)
        utility = terms[:, 0] - terms[:, 1:].sum(axis=1)
        if self.cfg.record:
            rec = self.rec
            full = np.broadcast_to(opt, x.shape).reshape(self.K, -1, B)
            bb = np.arange(B)[:, None, None]
            kk = np.arange(self.K)[None, :, None]
            rec["x"][bb, kk, full.transpose(2, 0, 1), t] = x.reshape(self.K, -1, B
                                                                     ).transpose(2, 0, 1)
            for name, val in (("y", y), ("q", q), ("n", n), ("ch", ch), ("dis", dis),
                              ("soc", soc), ("r", r), ("b", imp), ("z", exp_)):
                rec[name][:, :, t] = val.T
        self.q, self.soc, self.peak = q, soc, new_peak
        self.episode_terms += terms
        self.t += 1
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

    def snapshot(self) -> dict:
        """The episode state (for exact checkpoint resume)."""
        return {"t": self.t, "day": self.day, "q": self.q, "soc": self.soc,
                "peak": self.peak, "unpaid": self.unpaid, "terms": self.episode_terms,
                "rng": self.rng.bit_generator.state}

    def restore(self, s: dict) -> None:
        self.t, self.day, self.q, self.soc, self.peak = s["t"], s["day"], s["q"], s["soc"], \
            s["peak"]
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


__all__ = ["BatchedCore", "EnvConfig", "REWARD_MODES", "COSTS"]
