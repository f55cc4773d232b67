"""The batched environment core: B copies of MODEL.md stepped slot by slot in numpy.

Action per copy (all in [-1, 1]), for K classes and I sites:
  route[K, I]   logits of each class's routing distribution over sites (masked where the
                class has no eligible option),
  steps[K]      step level (lowest .. highest step count; raised to the class's quality
                floor at each site),
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
MIN_SHARE = 0.01           # routing shares below 1% are zeroed and the rest renormalised


@dataclass(frozen=True)
class EnvConfig:
    reward: str = "dense"
    settlement_slots: int = 12          # the sparse reward: paid every hour of 5-min slots
    reward_scale: float = 1.0           # rewards are divided by this (utility in $ / scale)
    record: bool = False                # keep the repaired schedule for the evaluator


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
        self.tiers = [t.astype(float) for t in (c.interactive, ~c.interactive) if t.any()]
        self.action_dim = c.K * c.I + 2 * c.K + 2 * c.I
        self.obs_dim = 2 * c.K + 4 * c.I + 2
        peak = bank.arrivals.max(axis=(0, 2))
        self.arr_scale = np.where(peak > 0, peak, 1.0)
        self.ren_scale = np.maximum(bank.renewable.max(axis=(0, 2)), 1e-9)
        self.soc_scale = np.where(c.soc_max > 0, c.soc_max, 1.0)
        self.cap_slot = c.util_cap * c.dt_s                               # GPU-s per GPU
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
        self.q = np.zeros((self.B, c.K))
        self.soc = np.broadcast_to(c.soc0, (self.B, c.I)).copy()
        self.peak = np.zeros((self.B, c.I))
        self.unpaid = np.zeros(self.B)
        self.episode_terms = np.zeros((self.B, len(TERMS)))
        if self.cfg.record:
            T = self.T
            self.rec = {"x": np.zeros((self.B, c.K, c.O, T)), "y": np.zeros((self.B, c.K, T)),
                        "q": np.zeros((self.B, c.K, T)),
                        **{k: np.zeros((self.B, c.I, T)) for k in
                           ("n", "ch", "dis", "soc", "r", "b", "z")}}
        return self.observe()

    def observe(self) -> F64:
        b, t = self.day, min(self.t, self.T - 1)
        phase = 2 * np.pi * self.t / self.T
        return np.concatenate([
            self.bank.arrivals[b, :, t] / self.arr_scale,
            self.q / self.arr_scale,
            self.soc / self.soc_scale,
            self.bank.price[b, :, t] / 100.0,
            self.bank.renewable[b, :, t] / self.ren_scale,
            self.bank.pue[b, :, t] - 1.0,
            np.broadcast_to([np.sin(phase), np.cos(phase)], (self.B, 2)),
        ], axis=1)

    # ------------------------------------------------------------------ step
    def decode(self, action: F64) -> dict[str, NDArray]:
        """Action [B, action_dim] in [-1, 1] -> shares, step/clock indices, battery."""
        K, I = self.K, self.I
        a = np.clip(np.asarray(action, dtype=float), -1.0, 1.0)
        j = K * I
        logits = np.where(self.site_ok, a[:, :j].reshape(-1, K, I) * ROUTE_SCALE, -np.inf)
        logits -= logits.max(axis=2, keepdims=True)
        w = np.exp(logits)
        shares = w / w.sum(axis=2, keepdims=True)
        shares = np.where(shares < MIN_SHARE, 0.0, shares)    # no slivers of a class
        shares /= shares.sum(axis=2, keepdims=True)
        s_idx = np.rint((a[:, j:j + K] + 1.0) * 0.5 * (self.S - 1)).astype(np.int64)
        serve = np.where(self.is_deferrable, (a[:, j + K:j + 2 * K] + 1.0) * 0.5, 1.0)
        f_idx = np.rint((a[:, j + 2 * K:j + 2 * K + I] + 1.0) * 0.5 * (self.F - 1)
                        ).astype(np.int64)
        battery = a[:, j + 2 * K + I:]
        return {"shares": shares, "s_idx": s_idx, "serve": serve, "f_idx": f_idx,
                "battery": battery}

    def step(self, action: F64) -> tuple[F64, F64, bool, dict]:
        d = self.decode(action)
        c, t, b = self.c, self.t, self.day
        B, K, I = self.B, self.K, self.I
        kk = np.arange(K)[None, :, None]
        ii = np.arange(I)[None, None, :]
        s_fix = self.fix_step[kk, ii, d["s_idx"][:, :, None]]              # [B, K, I]
        opt = self.opt_base[None] + s_fix * self.F + d["f_idx"][:, None, :]  # [B, K, I]
        lam = self.bank.arrivals[b, :, t]
        pending = self.q + lam
        want = (pending * d["serve"])[:, :, None] * d["shares"]            # [B, K, I]
        g, e = c.gpu_s[opt], c.busy_kwh[opt]
        pue = self.bank.pue[b, :, t]
        ren = self.bank.renewable[b, :, t]
        supply = c.import_cap + ren
        # What each site can take: interactive work first (it cannot wait), deferrable
        # work from what is left; each tier scaled down to the GPU capacity and to the
        # power cap (with one GPU of slack for rounding GPUs up).
        gpu_left = c.gpus * self.cap_slot * np.ones((B, I))
        head_kw = supply / pue - c.idle_kw
        x = np.zeros_like(want)
        used_g = np.zeros((B, I))
        used_kw = np.zeros((B, I))
        for tier in self.tiers:
            w = want * tier[None, :, None]
            need_g = (w * g).sum(axis=1)
            need_kw = (w * e).sum(axis=1) / c.dt_h
            with np.errstate(divide="ignore", invalid="ignore"):
                a_gpu = np.where(need_g > 0, gpu_left / need_g, 1.0)
                a_pow = np.where(need_g > 0, head_kw / (c.idle_kw * need_g / self.cap_slot
                                                        + need_kw), 1.0)
            alpha = np.clip(np.minimum(a_gpu, a_pow), 0.0, 1.0)
            x += w * alpha[:, None, :]
            gpu_left = gpu_left - alpha * need_g
            head_kw = head_kw - alpha * (c.idle_kw * need_g / self.cap_slot + need_kw)
            used_g += alpha * need_g
            used_kw += alpha * need_kw
        n = np.minimum(np.ceil(used_g / self.cap_slot - 1e-9), c.gpus)
        p_fac = pue * (c.idle_kw * n + used_kw)
        # Battery: charge from headroom and soc room; discharge down to the load (plus
        # what may be exported) and the soc floor. Never both in one slot.
        bat = d["battery"]
        room = (c.soc_max - self.soc) / (c.dt_h * np.where(c.eta_c > 0, c.eta_c, 1.0))
        avail = (self.soc - c.soc_min) * c.eta_d / c.dt_h
        ch = np.clip(np.maximum(bat, 0.0) * c.ch_max, 0.0,
                     np.maximum(np.minimum(room, supply - p_fac), 0.0))
        dis = np.clip(np.maximum(-bat, 0.0) * c.dis_max, 0.0,
                      np.maximum(np.minimum(avail, p_fac + c.export_cap), 0.0))
        r = np.clip(p_fac + ch - dis + c.export_cap, 0.0, ren)
        net = p_fac + ch - dis - r
        imp, exp_ = np.maximum(net, 0.0), np.maximum(-net, 0.0)
        soc = self.soc + c.dt_h * (c.eta_c * ch - dis / c.eta_d)
        served = x.sum(axis=2)
        left = np.maximum(pending - served, 0.0)
        q = np.where(self.is_deferrable, np.minimum(left, self.bank.backlog_cap[b, :, t]), 0.0)
        y = left - q
        # Utility terms of this slot (MODEL.md objective; peak and terminal as booked by
        # the evaluator: demand on the running peak's rise, terminal in the last slot).
        kidx = np.broadcast_to(kk, opt.shape)
        price = self.bank.price[b, :, t] / 1000.0
        new_peak = np.maximum(self.peak, imp)
        last = t == self.T - 1
        terminal = (np.maximum(c.soc0 - soc, 0.0) * self.bank.terminal_price[b]).sum(axis=1) \
            if last else np.zeros(B)
        terms = np.stack([
            (x * c.revenue[kidx, opt]).sum(axis=(1, 2)),
            (x * c.transfer[kidx, opt]).sum(axis=(1, 2)),
            (x * c.late_cost[kidx, opt]).sum(axis=(1, 2)),
            y @ c.drop_penalty,
            q @ c.wait_cost,
            (c.dt_h * price * (imp - c.sell_factor * exp_)).sum(axis=1),
            (new_peak - self.peak) @ c.demand_charge,
            c.dt_h * (ch + dis) @ c.deg_cost,
            c.carbon_price * c.dt_h * (self.bank.ci[b, :, t] * imp).sum(axis=1) / 1e6,
            terminal,
        ], axis=1)
        utility = terms[:, 0] - terms[:, 1:].sum(axis=1)
        if self.cfg.record:
            rec = self.rec
            bb = np.arange(B)[:, None, None]
            rec["x"][bb, kidx, opt, t] = x
            for name, val in (("y", y), ("q", q), ("n", n), ("ch", ch), ("dis", dis),
                              ("soc", soc), ("r", r), ("b", imp), ("z", exp_)):
                rec[name][:, :, t] = val
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

    # ------------------------------------------------------------------ results
    def schedule(self, copy: int) -> Schedule:
        """The repaired schedule of one copy's episode (needs record=True)."""
        if not self.cfg.record:
            raise RuntimeError("create the core with EnvConfig(record=True) to keep schedules")
        return Schedule(**{k: v[copy].copy() for k, v in self.rec.items()})

    def compiled(self, copy: int):
        return self.bank.day(int(self.day[copy]))


__all__ = ["BatchedCore", "EnvConfig", "REWARD_MODES", "COSTS"]
