"""The batched core's slot, compiled: decode, repair and accounting one copy at a time.

numpy over the batch axis needs ~60 array calls a slot, which costs ~1.8 us per copy at
B = 8192 (memory traffic of the temporaries) and ~290 us for one copy (call overhead).
A compiled loop over copies keeps each copy's dozen numbers in registers. The rules are
those of MODEL.md's environment reading, written once here for both action paths: the
flat action of `BatchedCore.step` and the detailed plans of `step_plan`. Every function
uses numba's numpy error model: a division by zero gives inf/nan as the numpy core did,
where the Python model checks each division (1.10 -> 0.73 us per copy at B = 8192).

Layouts are batch first, so that a copy's numbers lie together: want/x [B, K, I, P] jobs
per option slot, opt [Bo, Ko, I, P] option index within a class (Bo, Ko = 1 broadcast),
state q [B, K], per-site state st[row, B, I] (soc, running peak import, GPUs on in the last
slot), per-site decisions dec [B, I] (battery power) or, with provisioning (docs/model.md,
"Provisioning before arrivals"), dec [B, 2 I] (battery power, then the GPUs committed),
decisions res [row, B, I];
series [T, D, X] with columns arrivals (K), backlog cap (K), price (I), renewables (I),
PUE (I), carbon (I).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from optsched.evaluator import TERMS

# Columns of the per-site parameter table site[i, col].
# Reciprocals (inv_*) turn the slot's divisions by constants into multiplications: a
# division costs ~15 cycles and a copy-step had ~50 of them.
SITE_KEYS = ("gpus", "idle_kw", "import_cap", "export_cap", "soc_min", "soc_max", "soc0",
             "ch_max", "dis_max", "eta_c", "eta_d", "sell_factor", "demand_charge",
             "deg_cost", "cap_slot", "inv_cap_slot", "inv_eta_d", "inv_dt_eta_c", "cold")
(GPUS, IDLE, IMP_CAP, EXP_CAP, SOC_MIN, SOC_MAX, SOC0, CH_MAX, DIS_MAX, ETA_C, ETA_D, SELL,
 DEMAND, DEG, CAP_SLOT, INV_CAP_SLOT, INV_ETA_D, INV_DT_ETA_C, COLD) = range(len(SITE_KEYS))
# `cold` is cold_start_s / dt_s (0 without provisioning): the share of the slot a GPU
# switched on spends loading, drawing idle power without serving. With `start` GPUs
# started of n on, a site serves cap_slot (n - cold start) GPU-seconds and idles at
# idle_kw (n + cold start).
# With queueing on (docs/model.md), the site table goes on with the queueing cuts: the
# late penalty at column QUEUE, then the cuts' work slopes a_ij (J columns) and capacity
# slopes per powered-on GPU b_ij dt_s (J columns); without, it ends at QUEUE. (They
# ride in the site table because a 31st argument of `_slot` would make CPython pass the
# arguments as a tuple, which numba cannot inline.)
QUEUE = len(SITE_KEYS)
# Rows of the per-class table cls[row, k].
CLASS_KEYS = ("drop_penalty", "wait_cost", "defer", "tier")
DROP, WAIT, DEFER, TIER = range(len(CLASS_KEYS))
# Rows of the per-(class, option) table tab[row, k * O + o].
TAB_KEYS = ("gpu_s", "busy", "revenue", "transfer", "late")
GPU_S, BUSY, REVENUE, TRANSFER, LATE = range(len(TAB_KEYS))
# Rows of the per-site decisions res[row, b, i] (the evaluator's names).
RES_KEYS = ("n", "ch", "dis", "r", "b", "z", "start")   # kept only when recording
# Rows of the per-site state st[row, b, i].
STATE_KEYS = ("soc", "peak", "n_prev")
# Columns of the per-copy series ser[t, day, col], K or I wide each (offsets in `_slot`).
SERIES_KEYS = ("arrivals", "backlog_cap", "price", "renewable", "pue", "ci")
# The slot's terms tm[m], in the evaluator's TERMS order. A module-level int, which numba
# freezes into the compiled code; numba's cache does not see a change of TERMS, but a new
# term needs new accounting below, which does invalidate it.
N_TERMS = len(TERMS)

ROUTE_SCALE = 4.0          # logits in [-4, 4]: a share can go from ~0 to ~1
MIN_SHARE = 0.01           # routing shares below 1% are zeroed and the rest renormalised
# A plan within solver tolerance of a limit fits (HiGHS's primal tolerance is 1e-7), and
# GPUs are rounded up only past a micro-GPU, so an optimal plan replays unchanged; a
# round-down never leaves more work than the evaluator's tolerance (1e-6 of the
# capacity, at least 1e-6 GPU-s: no sliver of work on zero GPUs).
FIT_RTOL = 1e-7
ROUND_TOL = 1e-6


@njit(cache=True, error_model="numpy", inline="always")
def _clip(v: float, lo: float, hi: float) -> float:
    return min(max(v, lo), hi)


@njit(cache=True, error_model="numpy", inline="always")
def _rint(v: float) -> int:
    """np.rint (half to even) from floor, which compiles to one instruction where
    numba's np.rint is a library call (~5 ns, 21 a copy-step)."""
    r = np.floor(v + 0.5)
    if r - v == 0.5 and r % 2.0 != 0.0:
        r -= 1.0
    return int(r)


@njit(cache=True, error_model="numpy", inline="always")
def _decode(b, action, want, opt, dec, q, arr, site_mask, fix, cls, site, S, F):
    """Action row b in [-1, 1] -> jobs asked want[0, :, :, 0] of options opt[0, :, :, 0]
    and per-site decisions dec[0]: battery power (kW, > 0 charge), then with provisioning
    the GPUs committed, round((a + 1) / 2 G_i). One copy's scratch."""
    K, I = site_mask.shape
    KI = K * I
    for k in range(K):
        total = 0.0
        for i in range(I):
            w = 0.0
            if site_mask[k, i]:
                w = np.exp(_clip(action[b, k * I + i], -1.0, 1.0) * ROUTE_SCALE)
            want[0, k, i, 0] = w
            total += w
        kept, inv = 0.0, 1.0 / total
        for i in range(I):
            s = want[0, k, i, 0] * inv
            if s < MIN_SHARE:
                s = 0.0
            want[0, k, i, 0] = s
            kept += s
        a = _clip(action[b, 2 * KI + k], -1.0, 1.0)
        serve = 1.0 + cls[DEFER, k] * ((a + 1.0) * 0.5 - 1.0)
        asked = (q[b, k] + arr[k]) * serve / kept
        for i in range(I):
            want[0, k, i, 0] *= asked
    for i in range(I):
        a = _clip(action[b, 2 * KI + K + i], -1.0, 1.0)
        f_idx = _rint((a + 1.0) * (0.5 * (F - 1)))
        for k in range(K):
            a_s = _clip(action[b, KI + k * I + i], -1.0, 1.0)
            s_idx = _rint((a_s + 1.0) * (0.5 * (S - 1)))
            opt[0, k, i, 0] = i * S * F + fix[k, i, s_idx] * F + f_idx
        a = _clip(action[b, 2 * KI + K + I + i], -1.0, 1.0)
        dec[0, i] = a * site[i, CH_MAX] if a > 0 else a * site[i, DIS_MAX]
        if dec.shape[1] > I:
            a = _clip(action[b, 2 * KI + K + 2 * I + i], -1.0, 1.0)
            dec[0, I + i] = _rint((a + 1.0) * 0.5 * site[i, GPUS])


@njit(cache=True, error_model="numpy", inline="always")
def _queue_late(i, n, work, site):
    """Late jobs from waiting at site i: the largest cut a_j W - b_j dt_s n, and 0."""
    J = (site.shape[1] - QUEUE - 1) // 2
    late = 0.0
    for j in range(J):
        late = max(late, site[i, QUEUE + 1 + j] * work - site[i, QUEUE + 1 + J + j] * n)
    return late


@njit(cache=True, error_model="numpy", inline="always")
def _queue_sites(scr, site, ser, t, d, o_pr, o_ren, o_pue, o_ci, dt_h, carbon_price):
    """With queueing: per site, GPUs on (scr row 9) from the fewest that fit the work,
    one more while the late jobs it saves are worth more than its idle draw at the slot's
    energy and carbon price and the power supply allows it (late jobs are convex in n:
    the first GPU not worth it ends the search). Returns the late jobs' cost. Interactive
    work is tier 0 when there is any (without, every cut is 0). Inlined, as every
    helper here: a call left in `_slot`, even one never taken, made every copy-step ~25%
    slower with queueing off (0.36 -> 0.46 us at B = 4096)."""
    cost = 0.0
    for i in range(site.shape[0]):
        pue = ser[t, d, o_pue + i]
        work, n = scr[4, i] * scr[0, i], scr[9, i]
        supply = site[i, IMP_CAP] + ser[t, d, o_ren + i] + scr[8, i]
        gpu_cost = pue * site[i, IDLE] * dt_h * (ser[t, d, o_pr + i] * 1e-3
                                                  + carbon_price * ser[t, d, o_ci + i] * 1e-6)
        late = _queue_late(i, n, work, site)
        while n < site[i, GPUS] and late > 0.0:
            if pue * (site[i, IDLE] * (n + 1.0) + scr[7, i]) > supply:
                break
            fewer = _queue_late(i, n + 1.0, work, site)
            if site[i, QUEUE] * (late - fewer) <= gpu_cost:
                break
            n += 1.0
            late = fewer
        scr[9, i] = n
        cost += site[i, QUEUE] * late
    return cost


@njit(cache=True, error_model="numpy", inline="always")
def _fewest(work, i, site):
    """The fewest GPUs whose capacity holds `work` GPU-seconds at site i, rounded up only
    past a micro-GPU (uncapped)."""
    cs = site[i, CAP_SLOT]
    n = np.ceil(work * site[i, INV_CAP_SLOT] - ROUND_TOL)
    if work - n * cs > 0.5e-6 * max(1.0, n * cs):
        n += 1.0
    return n


@njit(cache=True, error_model="numpy", inline="always")
def _tier_sums(scr, want, opt, bw, tab, cls, O):
    """GPU-seconds (scr rows 0, 1) and busy kWh (rows 2, 3) of plan row bw per tier and
    site; the other scratch rows zeroed."""
    K, I, P = want.shape[1], want.shape[2], want.shape[3]
    bo_on, ko_on = opt.shape[0] > 1, opt.shape[1] > 1
    for r_ in range(scr.shape[0]):
        for i in range(I):
            scr[r_, i] = 0.0
    for k in range(K):
        j = int(cls[TIER, k])
        for i in range(I):
            for p in range(P):
                w = want[bw, k, i, p]
                if w != 0.0:
                    o = k * O + opt[bw if bo_on else 0, k if ko_on else 0, i, p]
                    scr[j, i] += w * tab[GPU_S, o]
                    scr[2 + j, i] += w * tab[BUSY, o]


@njit(cache=True, error_model="numpy", inline="always")
def _discharge_available(i, b, bw, dec, st, site, inv_dt):
    """Discharge the battery at site i can give this slot. Called inside the site loop:
    a loop of its own over the sites before it made every copy-step ~40% slower (0.47 ->
    0.67 us at B = 1024)."""
    avail = (st[0, b, i] - site[i, SOC_MIN]) * site[i, ETA_D] * inv_dt
    return min(min(max(-dec[bw, i], 0.0), site[i, DIS_MAX]), max(avail, 0.0))


@njit(cache=True, error_model="numpy", inline="always")
def _slot(b, bw, want, opt, dec, drop, t, last, day, ser, tprice, site, cls, tab, O,
          n_tiers, dt_h, carbon_price, q, st, x, q_out, st_out, record, y_out, res,
          terms, scr, tm):
    """The repair and the slot's accounting for copy b, whose plan is row bw of want,
    opt, dec and x (b, or 0 for a one-copy scratch); drop [B, K] planned drops, or
    empty. The next state (q_out, st_out = soc, peak and GPUs on) and the terms are
    always written; with `record`, also the decisions only the evaluator needs (x, y_out,
    res rows n, ch, dis, r, b, z, start). With provisioning (dec has 2 I columns) the
    GPUs on are the committed ones, paid whether used or not, less the cold start of
    those switched on since the last slot (none in slot 0, which starts warm)."""
    K, I, P = want.shape[1], want.shape[2], want.shape[3]
    bo_on, ko_on = opt.shape[0] > 1, opt.shape[1] > 1
    commit = dec.shape[1] > I
    d = day[b]
    o_bc, o_pr, o_ren, o_pue, o_ci = K, 2 * K, 2 * K + I, 2 * K + 2 * I, 2 * K + 3 * I
    inv_dt = 1.0 / dt_h
    # Scratch rows: need_g (tiers), need_kw (tiers), alpha (tiers), used_g, used_kw,
    # dis_asked, GPUs on, GPUs started; the caller allocates them once per batch.
    _tier_sums(scr, want, opt, bw, tab, cls, O)
    for i in range(I):
        pue, ren = ser[t, d, o_pue + i], ser[t, d, o_ren + i]
        scr[8, i] = _discharge_available(i, b, bw, dec, st, site, inv_dt)
        load_supply = site[i, IMP_CAP] + ren + scr[8, i]
        all_g = 0.0
        all_kw = 0.0
        for j in range(n_tiers):
            scr[2 + j, i] *= inv_dt
            all_g += scr[j, i]
            all_kw += scr[2 + j, i]
        if commit:
            # The committed GPUs, within the fleet and, with the cold start of those
            # switched on, within the power supply; they serve less the cold start and
            # idle whatever the work.
            n_c = min(max(float(_rint(dec[bw, I + i])), 0.0), site[i, GPUS])
            n_prev = st[2, b, i] if t > 0 else site[i, GPUS]
            cold = site[i, COLD]
            if site[i, IDLE] > 0.0:
                m = load_supply / (pue * site[i, IDLE]) * (1 + FIT_RTOL) + FIT_RTOL
                if n_c + cold * max(n_c - n_prev, 0.0) > m:
                    n_c = np.floor(m) if m <= n_prev else np.floor(
                        (m + cold * n_prev) / (1.0 + cold))
                    n_c = max(n_c, 0.0)
            if cold > 1.0:
                # a start that loses more than its slot: never below zero capacity
                n_c = min(n_c, max(np.floor(cold * n_prev / (cold - 1.0)), n_prev))
            start = max(n_c - n_prev, 0.0)
            scr[9, i], scr[10, i] = n_c, start
            cap_g = site[i, CAP_SLOT] * (n_c - cold * start)
            fixed_kw = site[i, IDLE] * (n_c + cold * start)
            head_kw = load_supply / pue - fixed_kw
            idle_per_gs = 0.0
        else:
            cap_g = site[i, GPUS] * site[i, CAP_SLOT]
            # GPUs rounded up to the work, for the check that the plan fits
            fixed_kw = site[i, IDLE] * min(np.ceil(all_g * site[i, INV_CAP_SLOT] - ROUND_TOL),
                                           site[i, GPUS])
            head_kw = load_supply / pue - site[i, IDLE]
            idle_per_gs = site[i, IDLE] * site[i, INV_CAP_SLOT]
        # A plan that fits (GPUs, and power) passes whole.
        fits = (all_g <= cap_g * (1 + FIT_RTOL)) and (
            pue * (fixed_kw + all_kw) <= load_supply * (1 + FIT_RTOL) + FIT_RTOL)
        # Otherwise interactive work goes first (it cannot wait), deferrable work gets
        # what is left; each tier is scaled to the GPU capacity and the power headroom
        # (without provisioning: supply less one GPU's idle draw, the margin for rounding
        # GPUs up, each GPU-second of work charged its share of the idle draw).
        gpu_left = cap_g
        for j in range(n_tiers):
            ng, nk = scr[j, i], scr[2 + j, i]
            load = idle_per_gs * ng + nk
            a = 1.0
            if not fits:
                a = min(gpu_left / ng if ng > 0 else 1.0, head_kw / load if load > 0 else 1.0)
                a = _clip(a, 0.0, 1.0)
            scr[4 + j, i] = a
            gpu_left -= a * ng
            head_kw -= a * load
            scr[6, i] += a * ng
            scr[7, i] += a * nk
    for m in range(N_TERMS):
        tm[m] = 0.0
    for k in range(K):
        j = int(cls[TIER, k])
        served = 0.0
        for i in range(I):
            for p in range(P):
                v = want[bw, k, i, p] * scr[4 + j, i]
                x[bw, k, i, p] = v
                if v != 0.0:
                    served += v
                    o = k * O + opt[bw if bo_on else 0, k if ko_on else 0, i, p]
                    tm[0] += v * tab[REVENUE, o]
                    tm[1] += v * tab[TRANSFER, o]
                    tm[2] += v * tab[LATE, o]
        pending = q[b, k] + ser[t, d, k]
        left = max(pending - served, 0.0)
        if drop.shape[0]:
            left -= _clip(drop[b, k], 0.0, left)
        q_k = cls[DEFER, k] * min(left, ser[t, d, o_bc + k])
        y_k = max(pending - served, 0.0) - q_k
        q_out[b, k] = q_k
        if record:
            y_out[b, k] = y_k
        tm[3] += cls[DROP, k] * y_k
        tm[4] += cls[WAIT, k] * q_k
    if commit:
        # Late jobs from waiting at the committed GPUs: no GPU is added after the fact.
        if site.shape[1] > QUEUE:
            for i in range(I):
                tm[2] += site[i, QUEUE] * _queue_late(i, scr[9, i], scr[4, i] * scr[0, i],
                                                      site)
    else:
        # GPUs: the fewest that fit the work (then, with queueing, more while they pay:
        # `_queue_sites`).
        for i in range(I):
            scr[9, i] = min(_fewest(scr[6, i], i, site), site[i, GPUS])
        if site.shape[1] > QUEUE:
            tm[2] += _queue_sites(scr, site, ser, t, d, o_pr, o_ren, o_pue, o_ci, dt_h,
                                  carbon_price)
    # Energy: battery within soc and grid limits (never both ways in a slot), renewables
    # serve load (and export) first, the grid the rest.
    for i in range(I):
        pue, ren = ser[t, d, o_pue + i], ser[t, d, o_ren + i]
        n = scr[9, i]
        gpus_kw = site[i, IDLE] * n
        if commit:
            gpus_kw += site[i, IDLE] * site[i, COLD] * scr[10, i]
        p_fac = pue * (gpus_kw + scr[7, i])
        soc = st[0, b, i]
        room = (site[i, SOC_MAX] - soc) * site[i, INV_DT_ETA_C]
        supply = site[i, IMP_CAP] + ren
        ch = min(min(max(dec[bw, i], 0.0), site[i, CH_MAX]), max(min(room, supply - p_fac), 0.0))
        dis = min(scr[8, i], max(p_fac + site[i, EXP_CAP], 0.0))
        r = _clip(p_fac + ch - dis + site[i, EXP_CAP], 0.0, ren)
        net = p_fac + ch - dis - r
        imp, exp_ = max(net, 0.0), max(-net, 0.0)
        soc_new = soc + dt_h * (site[i, ETA_C] * ch - dis * site[i, INV_ETA_D])
        peak = st[1, b, i]
        new_peak = max(peak, imp)
        price = ser[t, d, o_pr + i] * 1e-3
        tm[5] += dt_h * price * (imp - site[i, SELL] * exp_)
        tm[6] += site[i, DEMAND] * (new_peak - peak)
        tm[7] += dt_h * site[i, DEG] * (ch + dis)
        tm[8] += ser[t, d, o_ci + i] * imp
        if last:
            tm[9] += max(site[i, SOC0] - soc_new, 0.0) * tprice[i, d]
        st_out[0, b, i], st_out[1, b, i], st_out[2, b, i] = soc_new, new_peak, n
        if record:
            res[0, b, i], res[1, b, i], res[2, b, i] = n, ch, dis
            res[3, b, i], res[4, b, i], res[5, b, i] = r, imp, exp_
            res[6, b, i] = scr[10, i]
    tm[8] *= carbon_price * dt_h / 1e6
    for m in range(N_TERMS):
        terms[b, m] = tm[m]


N_SCRATCH = 11             # scratch rows of `_slot`


@njit(cache=True, error_model="numpy")
def step_actions(action, t, last, day, ser, tprice, site, cls, tab, site_mask, fix, S, F,
                 O, n_tiers, dt_h, carbon_price, q, st, x, opt_out, q_out, st_out,
                 record, y_out, res, terms, n_dec):
    """`BatchedCore.step`: decode each copy's flat action into a scratch plan, then its
    slot; with `record` the plan's options and jobs are kept in opt_out and x. n_dec: I,
    or 2 I with provisioning (the action's last I numbers commit GPUs)."""
    K, I = q.shape[1], st.shape[2]
    scr, tm = np.empty((N_SCRATCH, I)), np.empty(N_TERMS)
    want, x_s = np.empty((1, K, I, 1)), np.empty((1, K, I, 1))
    opt, dec = np.empty((1, K, I, 1), dtype=np.int64), np.empty((1, n_dec))
    drop, arr = np.zeros((0, 0)), np.empty(K)
    for b in range(action.shape[0]):
        for k in range(K):
            arr[k] = ser[t, day[b], k]
        _decode(b, action, want, opt, dec, q, arr, site_mask, fix, cls, site, S, F)
        _slot(b, 0, want, opt, dec, drop, t, last, day, ser, tprice, site, cls, tab, O,
              n_tiers, dt_h, carbon_price, q, st, x_s, q_out, st_out, record, y_out,
              res, terms, scr, tm)
        if record:
            x[b] = x_s[0]
            opt_out[b] = opt[0]


@njit(cache=True, error_model="numpy")
def step_plans(want, opt, dec, drop, t, last, day, ser, tprice, site, cls, tab, O,
               n_tiers, dt_h, carbon_price, q, st, x, q_out, st_out, record, y_out,
               res, terms):
    """`BatchedCore.step_plan`: each copy's slot from its detailed plan."""
    scr, tm = np.empty((N_SCRATCH, st.shape[2])), np.empty(N_TERMS)
    for b in range(want.shape[0]):
        _slot(b, b, want, opt, dec, drop, t, last, day, ser, tprice, site, cls, tab, O,
              n_tiers, dt_h, carbon_price, q, st, x, q_out, st_out, record, y_out,
              res, terms, scr, tm)


@njit(cache=True, error_model="numpy", inline="always")
def _provision(b, bw, want, opt, dec, t, day, ser, site, cls, tab, O, n_tiers, dt_h,
               carbon_price, st, scr):
    """`provision` of copy b, whose plan is row bw of want, opt and dec: the GPUs to
    commit per site in scr row 9 (scr: `_slot`'s scratch)."""
    I = st.shape[2]
    inv_dt = 1.0 / dt_h
    _tier_sums(scr, want, opt, bw, tab, cls, O)
    for i in range(I):
        scr[8, i] = _discharge_available(i, b, bw, dec, st, site, inv_dt)
        work = 0.0
        for j in range(n_tiers):
            work += scr[j, i]
            scr[7, i] += scr[2 + j, i] * inv_dt
        scr[4, i] = 1.0
        n = _fewest(work, i, site)
        n_prev = st[2, b, i] if t > 0 else site[i, GPUS]
        cold = site[i, COLD]
        if n > n_prev:
            # Each GPU switched on serves (1 - cold) of a warm one's slot.
            n = n_prev + (_fewest((work - n_prev * site[i, CAP_SLOT]) / (1.0 - cold),
                                  i, site) if cold < 1.0 else 0.0)
        scr[9, i] = min(n, site[i, GPUS])
    if site.shape[1] > QUEUE:
        K = want.shape[1]
        _queue_sites(scr, site, ser, t, day[b], 2 * K, 2 * K + I, 2 * K + 2 * I,
                     2 * K + 3 * I, dt_h, carbon_price)


@njit(cache=True, error_model="numpy")
def provision(want, opt, dec, t, day, ser, site, cls, tab, O, n_tiers, dt_h,
              carbon_price, st, gpus):
    """GPUs to commit for each copy's plan (gpus [B, I]): the fewest whose capacity, less
    the cold start of those switched on, holds the planned work (none started in slot
    0), at most G_i; then with queueing one more while it pays (`_queue_sites`, on the
    planned work). The repair's own rule, applied before the slot's arrivals are seen."""
    I = st.shape[2]
    scr = np.zeros((N_SCRATCH, I))
    for b in range(want.shape[0]):
        _provision(b, b, want, opt, dec, t, day, ser, site, cls, tab, O, n_tiers, dt_h,
                   carbon_price, st, scr)
        for i in range(I):
            gpus[b, i] = scr[9, i]


@njit(cache=True, error_model="numpy")
def observe(obs, t, T, day, ser, q, st, inv_arr, inv_soc, inv_ren, leads, noise, lag,
            inv_gpus):
    """obs[B, dim]: arrivals and backlog per class (x inv_arr: / peak), soc (/ max),
    price ($/MWh / 100), renewables (/ max), PUE - 1 per site, time of day (sin, cos),
    then per lead arrivals and price that many slots ahead times noise[lead, row, b].
    The arrivals are those of `lag` slots back (provisioning: 1, the last slot's, 0
    before the day starts, since a slot's own arrive after it is decided); with
    inv_gpus non-empty, GPUs on in the last slot (/ G) follow."""
    K, I = q.shape[1], st.shape[2]
    ts = min(t, T - 1)
    ta = ts - lag
    phase = 2 * np.pi * t / T
    o_pr, o_ren, o_pue = 2 * K, 2 * K + I, 2 * K + 2 * I
    for b in range(obs.shape[0]):
        d = day[b]
        for k in range(K):
            obs[b, k] = ser[ta, d, k] * inv_arr[k] if ta >= 0 else 0.0
            obs[b, K + k] = q[b, k] * inv_arr[k]
        j = 2 * K
        for i in range(I):
            obs[b, j + i] = st[0, b, i] * inv_soc[i]
            obs[b, j + I + i] = ser[ts, d, o_pr + i] * 0.01
            obs[b, j + 2 * I + i] = ser[ts, d, o_ren + i] * inv_ren[i]
            obs[b, j + 3 * I + i] = ser[ts, d, o_pue + i] - 1.0
        j += 4 * I
        obs[b, j], obs[b, j + 1] = np.sin(phase), np.cos(phase)
        j += 2
        for m in range(leads.shape[0]):
            ahead = min(ts + leads[m], T - 1)
            for k in range(K):
                obs[b, j + k] = ser[ahead, d, k] * inv_arr[k] * noise[m, k, b]
            for i in range(I):
                obs[b, j + K + i] = ser[ahead, d, o_pr + i] * 0.01 * noise[m, K + i, b]
            j += K + I
        for i in range(inv_gpus.shape[0]):
            obs[b, j + i] = st[2, b, i] * inv_gpus[i]
