"""Greedy: per slot, the best value per GPU-second within each site's GPU capacity, then
leftover capacity spent on upgrades (more steps) by marginal value per extra GPU-second;
battery by price thresholds against the running mean price. No look-ahead.

With provisioning it plans on the point forecast of the slot's arrivals and its GPUs are
provisioned for the forecast's 90th percentile (`provision_quantile`,
optsched.env.known.provision_for)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optsched.env.core import BatchedCore

CHARGE_BELOW, DISCHARGE_ABOVE = 0.85, 1.15    # x running mean price seen so far


@dataclass
class Greedy:
    name: str = "greedy"
    provision_quantile: float | None = 0.9

    def plan(self, core: BatchedCore) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c, t, B = core.c, core.t, core.B
        x = np.zeros((B, c.K, c.O))
        bat = np.zeros((B, c.I))
        pairs = self._pairs(core)
        for j in range(B):
            day = core.compiled(j)
            pending = core.q[:, j] + day.arrivals[:, t]
            left = c.gpus * c.util_cap * c.dt_s
            for k, o in pairs["cover"]:                 # phase 1: cover the most jobs
                take = min(pending[k], left[c.opt_site[o]] / c.gpu_s[o])
                if take > 0:
                    x[j, k, o] += take
                    pending[k] -= take
                    left[c.opt_site[o]] -= take * c.gpu_s[o]
            for k, o_from, o_to, dg in pairs["upgrade"]:  # phase 2: upgrade with leftovers
                i = c.opt_site[o_to]
                move = min(x[j, k, o_from], left[i] / dg)
                if move > 0:
                    x[j, k, o_from] -= move
                    x[j, k, o_to] += move
                    left[i] -= move * dg
            mean = day.price[:, :t + 1].mean(axis=1)
            now = day.price[:, t]
            bat[j] = np.where(now < CHARGE_BELOW * mean, c.ch_max,
                              np.where(now > DISCHARGE_ABOVE * mean, -c.dis_max, 0.0))
        return x, bat, np.zeros((B, c.K))

    def _pairs(self, core: BatchedCore) -> dict:
        """Static orders: eligible (class, option) by value per GPU-second; upgrades from
        each class's best-ratio option at a site to richer ones by marginal ratio."""
        cached = getattr(self, "_cache", None)
        if cached is not None and cached[0] is core.c:
            return cached[1]
        c = core.c
        k_idx, o_idx = np.nonzero(c.eligible & (c.value > 0))
        ratio = c.value[k_idx, o_idx] / c.gpu_s[o_idx]
        order = np.argsort(-ratio, kind="stable")
        cover = list(zip(k_idx[order].tolist(), o_idx[order].tolist(), strict=True))
        best = {}
        for k, o in cover:
            best.setdefault((k, int(c.opt_site[o])), o)
        upgrades = []
        for (k, i), o in best.items():
            # Walk the upper concave hull of (GPU-seconds, value) from the best-ratio
            # option: each segment is one upgrade, with falling marginal ratios.
            options = np.flatnonzero(c.eligible[k] & (c.opt_site == i))
            while True:
                dv = c.value[k, options] - c.value[k, o]
                dg = c.gpu_s[options] - c.gpu_s[o]
                ok = (dv > 0) & (dg > 0)
                if not ok.any():
                    break
                slope = np.where(ok, dv / np.where(ok, dg, 1.0), -np.inf)
                nxt = int(options[np.argmax(slope)])
                upgrades.append((float(slope.max()), k, o, nxt,
                                 float(c.gpu_s[nxt] - c.gpu_s[o])))
                o = nxt
        upgrades.sort(key=lambda u: -u[0])
        pairs = {"cover": cover, "upgrade": [u[1:] for u in upgrades]}
        self._cache = (c, pairs)
        return pairs
