"""The per-slot capacity-price dispatch, compiled: one copy at a time, as `kernel.py`.

numpy over the batch axis ran every copy's Newton iterations and line searches until the
slowest copy of the batch had converged (~20 passes with the Hessian and ~60 without over
[K, O, B] temporaries a slot: ~1 ms per copy at B = 1,024 on jemas-3, more per copy as
the batch grew). Here each copy stops when its own prices have converged (~11 Newton
steps and ~35 evaluations of the dual per copy on jemas-3, ~1.5 us each), only the
eligible (class, option) pairs are visited, options whose weight is negligible get no
exp, and the weights at the accepted prices serve the next Newton step.

The arithmetic is that of the numpy version, term for term (tests/test_dispatch.py keeps
it as a second implementation); `optsched.env.dispatch` says what is computed and why.
On two-site days the plans agree to rounding. Where sites serve each other's classes
(jemas-3) Newton's systems are nearly singular, so a rounding difference (numpy's own
reduction order changes with the batch size) can end the price search at another point
within CAP_RTOL of full: ~98% of plans agree to 1e-9 of the pending jobs, the rest to
~1e-4. A copy's plan here does not depend on the batch it is in.

`step_dispatch` is `DispatchCore.step` whole: per copy the dispatch (`dispatch_copy`), the
GPUs provisioned and the plan meeting the real arrivals, then the repair and accounting
of `kernel._slot`, in one pass over the copies. The two-step path it replaced
(`DispatchCore.plan_from_action`, then `BatchedCore.step_plan`: ~25 numpy calls and
[B, K, O] temporaries a slot: ~5 us per copy at B = 64, ~140 us a step at B = 1) gives
the same numbers to the last bit (tests/test_dispatch.py keeps it as the reference). The
price search is what is left: ~4 Newton steps and ~9 evaluations of the dual per copy
and slot on jemas-3-genai, each ~100 exps and ~430 pair scores.

Layouts: eligible (class, option) pairs flat, those of class k at site i at
bptr[k I + i]:bptr[k I + i + 1] in option order; per pair its option e_opt, site
e_site, value e_val ($ per job), energy e_kwh (kWh per job), GPU-seconds e_gs and
e_g = e_gs / tau[k].
"""

from __future__ import annotations

import numpy as np
from numba import njit

from optsched.env.kernel import DEFER, GPUS, N_SCRATCH, N_TERMS, _provision, _slot

# numba's cache keys a compiled function on its own file only, and `step_dispatch`
# inlines `kernel._slot` and `kernel._provision`: the digest of the kernel.py it was
# compiled against, so that a change there changes this file too, and numba compiles
# `step_dispatch` again instead of loading a stale one (tests/test_dispatch.py checks it).
KERNEL_SHA256 = "1e682bb57f240e8b9705b875e8facb29c43aafffd9f7978a71ea5073f3d5a946"

NEWTON_STEPS = 60
LINE_SEARCH = 40
SLIVER = 1e-3              # jobs; smaller shares of an option are left unserved
CAP_RTOL = 1e-4            # a priced site is full to this share of its capacity
ARMIJO = 1e-4              # sufficient decrease of the line search
# Options whose score is CUT below their class's best weigh under 1e-18 of it (less than
# a rounding of the sums, 90 options at most): their exp, ~70% of them and slow where it
# underflows, is skipped.
CUT = 42.0


@njit(cache=True, error_model="numpy", inline="always")
def _weights(mu, net, stay, amount, bptr, e_g, tau, cap, score, band, w, fr, pz):
    """The smoothed dual at capacity prices mu [I]: returns its value. Fills the band,
    the pairs whose weight is not negligible, class after class: band [n] the pair, w [n]
    its weight (exp of its score less its class's best); per class fr [K, 2] its jobs
    per unit weight (x = w fr[k, 0]) and its run's end in the band, and pz [K, 2] the
    tranches' (must leave, may wait) choice shares per unit weight."""
    K, I = tau.shape[0], cap.shape[0]
    value = 0.0
    nb = 0
    for k in range(K):
        if amount[0, k] == 0.0 and amount[1, k] == 0.0:
            # No jobs: the class adds exactly 0 to the value, loads and Hessian.
            pz[k, 0], pz[k, 1] = 0.0, 0.0
            fr[k, 0], fr[k, 1] = 0.0, nb
            continue
        best = -np.inf
        for i in range(I):
            m = mu[i]
            for e in range(bptr[k * I + i], bptr[k * I + i + 1]):
                sc = net[e] - e_g[e] * m
                score[e] = sc
                if sc > best:
                    best = sc
        if not np.isfinite(best):
            best = 0.0
        wsum = 0.0
        for e in range(bptr[k * I], bptr[k * I + I]):
            d = score[e] - best
            if d > -CUT:
                v = np.exp(d)
                band[nb], w[nb] = e, v
                nb += 1
                wsum += v
        vk = 0.0
        frac = 0.0
        for j in range(2):
            am = amount[j, k]
            if am == 0.0:                 # adds exactly 0 to the value, loads and Hessian
                pz[k, j] = 0.0
                continue
            st = stay[j, k]
            if best >= st:                # exp(0) is 1 exactly
                tp, sh = best, 1.0
                zz = wsum + np.exp(st - tp)
            else:
                tp, sh = st, np.exp(best - st)
                zz = wsum * sh + 1.0
            pz[k, j] = sh / zz
            vk += am * (np.log(zz) + tp)
            frac += am * sh / zz
        value += tau[k] * vk
        fr[k, 0], fr[k, 1] = frac, nb
    priced = 0.0
    for i in range(I):
        priced += mu[i] * cap[i]
    return value + priced


@njit(cache=True, error_model="numpy", inline="always")
def _loads(e_site, e_gs, band, w, fr, load):
    """From the weights of `_weights`: the loads load [I] (cap - load is the gradient)."""
    for i in range(load.shape[0]):
        load[i] = 0.0
    first = 0
    for k in range(fr.shape[0]):
        frac = fr[k, 0]
        for n in range(first, int(fr[k, 1])):
            e = band[n]
            load[e_site[e]] += e_gs[e] * (w[n] * frac)
        first = int(fr[k, 1])


@njit(cache=True, error_model="numpy", inline="always")
def _hessian(amount, e_site, e_gs, tau, band, w, fr, pz, hess, diag, m1, m2):
    """From the weights of `_weights`: the Hessian hess [I, I], from each class's per
    site sums m1 = sum G w and m2 = sum G^2 w (only where a converged search needs none:
    `_loads` gives the gradient). diag, m1 and m2 [I] are scratch."""
    K, I = tau.shape[0], hess.shape[0]
    for i in range(I):
        diag[i] = 0.0
        for h in range(I):
            hess[i, h] = 0.0
    first = 0
    for k in range(K):
        last = int(fr[k, 1])
        if last == first:            # no jobs (or no pair): adds nothing
            continue
        for i in range(I):
            m1[i] = 0.0
            m2[i] = 0.0
        for n in range(first, last):
            e, v = band[n], w[n]
            g, i = e_gs[e], e_site[e]
            m1[i] += g * v
            m2[i] += g * g * v
        first = last
        for j in range(2):
            p = pz[k, j]
            a = amount[j, k] / tau[k]
            if a == 0.0:
                continue
            for i in range(I):
                u = a * (m1[i] * p)
                diag[i] += a * (m2[i] * p)
                for h in range(I):
                    hess[i, h] += u * (m1[h] * p)
    for i in range(I):
        for h in range(I):
            hess[i, h] = -hess[i, h]
        hess[i, i] += diag[i]


@njit(cache=True, error_model="numpy", inline="always")
def _solve(h, r, step):
    """step = h^-1 r for a small dense system (Gaussian elimination with partial
    pivoting, as LAPACK's gesv); h and r are overwritten."""
    n = r.shape[0]
    for c in range(n):
        p = c
        for rr in range(c + 1, n):
            if abs(h[rr, c]) > abs(h[p, c]):
                p = rr
        if p != c:
            for cc in range(n):
                h[c, cc], h[p, cc] = h[p, cc], h[c, cc]
            r[c], r[p] = r[p], r[c]
        for rr in range(c + 1, n):
            f = h[rr, c] / h[c, c]
            if f != 0.0:
                for cc in range(c, n):
                    h[rr, cc] -= f * h[c, cc]
                r[rr] -= f * r[c]
    for c in range(n - 1, -1, -1):
        s = r[c]
        for cc in range(c + 1, n):
            s -= h[c, cc] * step[cc]
        step[c] = s / h[c, c]


@njit(cache=True, error_model="numpy")
def scratch(K, I, E):
    """One batch's working arrays for `dispatch_copy` (allocated once, not per copy)."""
    return (np.empty(E), np.empty(E), np.empty(E), np.empty(E, dtype=np.int64),
            np.empty((2, K)), np.empty((2, K)), np.empty((K, 2)), np.empty((K, 2)),
            np.empty((I, I)), np.empty((I, I)), np.empty((9, I)),
            np.empty(I, dtype=np.bool_))


@njit(cache=True, error_model="numpy")
def dispatch_copy(pending, may_wait, usd_kwh, cont, tables, prices, x, work):
    """Jobs x[K, O] (zero on entry) of one copy's slot: pending and may_wait [K] jobs,
    energy price usd_kwh [I] ($/kWh x PUE), continuation value cont [K] of a waiting
    job; the search starts from prices [I] (0: the plans of the numpy version) and
    leaves the prices found there. Returns its Newton iterations. tables: (bptr, e_opt,
    e_site, e_val, e_kwh, e_g, e_gs, tau, drop_penalty, cap, mu_max, curv_floor); work:
    `scratch`."""
    bptr, e_opt, e_site, e_val, e_kwh, e_g, e_gs, tau, drop_penalty, cap, mu_max, \
        curv_floor = tables
    net, score, w, band, stay, amount, fr, pz, hess, h, vec, free = work
    K, I = pending.shape[0], cap.shape[0]
    load, m1, m2, diag, mu, cand, grad, step, rhs = (vec[0], vec[1], vec[2], vec[3],
                                                     vec[4], vec[5], vec[6], vec[7], vec[8])
    for k in range(K):
        for e in range(bptr[k * I], bptr[k * I + I]):
            net[e] = (e_val[e] - e_kwh[e] * usd_kwh[e_site[e]]) / tau[k]
        stay[0, k] = -drop_penalty[k] / tau[k]
        stay[1, k] = cont[k] / tau[k]
        amount[0, k] = pending[k] - may_wait[k]
        amount[1, k] = may_wait[k]
    for i in range(I):
        mu[i] = prices[i]
    n_it = 0
    fresh = False                     # the weights are those at mu (value too)
    value = 0.0
    for _ in range(NEWTON_STEPS):
        if not fresh:
            value = _weights(mu, net, stay, amount, bptr, e_g, tau, cap, score, band, w,
                             fr, pz)
            fresh = True
        _loads(e_site, e_gs, band, w, fr, load)
        done = True
        for i in range(I):
            grad[i] = cap[i] - load[i]
            if mu[i] > 0:
                done &= abs(grad[i]) <= CAP_RTOL * cap[i]
            else:
                done &= grad[i] >= -CAP_RTOL * cap[i]
        if done:
            break
        n_it += 1
        _hessian(amount, e_site, e_gs, tau, band, w, fr, pz, hess, diag, m1, m2)
        # Newton's step on the sites that are priced or over capacity. A site whose
        # jobs all sit firmly in one option has no curvature: a floor on the diagonal
        # turns its step into a (clipped, line-searched) gradient step; a ridge for
        # substitute sites, whose systems are rank-deficient.
        big_diag = 0.0
        for i in range(I):
            free[i] = mu[i] > 0 or grad[i] < 0
        for i in range(I):
            for hh in range(I):
                h[i, hh] = hess[i, hh] if free[i] and free[hh] else 0.0
            big_diag = max(big_diag, abs(h[i, i]))
        for i in range(I):
            d = h[i, i]
            h[i, i] = d + (max(d, curv_floor[i]) - d + 1e-12 * big_diag)
            if not free[i]:
                h[i, i] += 1.0
            rhs[i] = -grad[i] if free[i] else 0.0
        _solve(h, rhs, step)
        # A badly conditioned system (curvatures 1e4 apart) can give a direction that
        # does not descend; the line search then fails at every length and the search
        # stalls where it is, sites far over capacity, until NEWTON_STEPS. The scaled
        # gradient, a descent direction, takes its place.
        slope = 0.0
        for i in range(I):
            slope += grad[i] * step[i]
        if not slope < 0.0:
            for i in range(I):
                step[i] = -grad[i] / max(hess[i, i], curv_floor[i]) if free[i] else 0.0
        # No step longer than the price range: the dual is nearly piecewise linear.
        big = 1.0
        for i in range(I):
            big = max(big, abs(step[i] / mu_max[i]))
        for i in range(I):
            step[i] /= big
        alpha = 1.0
        for _ in range(LINE_SEARCH):
            slope = 0.0
            for i in range(I):
                cand[i] = max(mu[i] + alpha * step[i], 0.0)
                slope += grad[i] * (cand[i] - mu[i])
            v_new = _weights(cand, net, stay, amount, bptr, e_g, tau, cap, score, band, w,
                             fr, pz)
            fresh = v_new <= value + ARMIJO * slope
            if fresh:
                for i in range(I):
                    mu[i] = cand[i]
                value = v_new
                break
            alpha *= 0.5
    for i in range(I):
        prices[i] = mu[i]
    if not fresh:
        _weights(mu, net, stay, amount, bptr, e_g, tau, cap, score, band, w, fr, pz)
    n = 0
    for k in range(K):
        while n < fr[k, 1]:
            v = w[n] * fr[k, 0]
            if v >= SLIVER:            # no GPU powered for a thousandth of a job
                x[k, e_opt[band[n]]] = v
            n += 1
    return n_it


@njit(cache=True, error_model="numpy")
def dispatch(pending, may_wait, usd_kwh, cont, tables, prices, x, iters):
    """Jobs x[B, K, O] (zero on entry) of each copy's slot (`dispatch_copy`): pending and
    may_wait [B, K], usd_kwh [B, I], cont [B, K], prices [B, I] (left with those found),
    iters [B] Newton's iterations."""
    work = scratch(pending.shape[1], tables[9].shape[0], tables[1].shape[0])
    for b in range(pending.shape[0]):
        iters[b] = dispatch_copy(pending[b], may_wait[b], usd_kwh[b], cont[b], tables,
                                 prices[b], x[b], work)


@njit(cache=True, error_model="numpy", inline="always")
def _pairwise_block(a, lo, n):
    """a[lo:lo + n].sum() for n <= 128 as numpy adds it up (eight partial sums)."""
    if n < 8:
        res = 0.0
        for j in range(n):
            res += a[lo + j]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    j = 8
    while j < n - n % 8:
        r0, r1, r2, r3 = r0 + a[lo + j], r1 + a[lo + j + 1], r2 + a[lo + j + 2], \
            r3 + a[lo + j + 3]
        r4, r5, r6, r7 = r4 + a[lo + j + 4], r5 + a[lo + j + 5], r6 + a[lo + j + 6], \
            r7 + a[lo + j + 7]
        j += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while j < n:
        res += a[lo + j]
        j += 1
    return res


@njit(cache=True, error_model="numpy")
def _pairwise(a, n):
    """0.0 + a[:n].sum() as numpy adds it up: halves (a multiple of 8 on the left) down to
    blocks of at most 128 (`_pairwise_block`), summed left + right, so that the repair
    sees the very numbers of `BatchedCore.step_plan`'s sums. Without recursion (numba's
    cache does not take recursive functions)."""
    if n <= 128:
        return 0.0 + _pairwise_block(a, 0, n)
    todo = np.empty((64, 3), dtype=np.int64)        # (start, length, combine?) to visit
    vals = np.empty(64)
    nt, nv = 1, 0
    todo[0, 0], todo[0, 1], todo[0, 2] = 0, n, 0
    while nt:
        nt -= 1
        lo, m, combine = todo[nt, 0], todo[nt, 1], todo[nt, 2]
        if combine:
            nv -= 1
            vals[nv - 1] = vals[nv - 1] + vals[nv]
        elif m <= 128:
            vals[nv] = _pairwise_block(a, lo, m)
            nv += 1
        else:
            half = m // 2
            half -= half % 8
            todo[nt, 0], todo[nt, 1], todo[nt, 2] = lo, m, 1
            todo[nt + 1, 0], todo[nt + 1, 1], todo[nt + 1, 2] = lo + half, m - half, 0
            todo[nt + 2, 0], todo[nt + 2, 1], todo[nt + 2, 2] = lo, half, 0
            nt += 3
    return 0.0 + vals[0]


@njit(cache=True, error_model="numpy")
def step_dispatch(seen_arr, seen_cap, high_arr, scale, cont, battery, headroom, head_f,
                  tables, prices, iters, interactive, fallback, commit, opt, t, last, day,
                  ser, tprice, site, cls, tab, O, n_tiers, dt_h, carbon_price, q, st, x,
                  q_out, st_out, record, y_out, res, terms):
    """`DispatchCore.step` in one pass over the copies: per copy the dispatch of the slot
    as believed, the GPUs committed, and the repair and accounting of `kernel._slot`,
    each as `DispatchCore.plan_from_action` then `BatchedCore.step_plan` compute them.

    What the dispatch sees: the belief tables seen_arr, seen_cap [D, T, K] (point
    forecast, provisioning on) or, where empty, the slot's real arrivals and backlog
    caps; with provisioning levels (scale [B, K] non-empty) the arrivals times scale and
    the caps as `DispatchCore.plan_from_action` moves them. cont [B, K] continuation
    values, battery [B, I] kW, prices [B, I] where each copy's search starts and ends,
    iters [B] its Newton iterations. With `commit` the GPUs are the repair's rule for
    the plan, its interactive rows scaled by the pending jobs believed at high_arr
    [D, T, K] (the provisioning quantile; empty: unscaled) over those seen
    (`known.provision_for`), then with headroom levels (non-empty) round(GPUs x
    head_f) up to the fleet where headroom != 0; the plan then meets the real pending
    jobs (`BatchedCore._meet`: interactive rows are shares of what they planned for, a
    class with nothing planned takes its fallback option). Every plan is scaled to the
    pending jobs and goes through `kernel._slot` (x [B, K, I, P] written with
    `record`)."""
    B, K = q.shape
    I = st.shape[2]
    P = O // I
    work = scratch(K, I, tables[1].shape[0])
    pend, may, seen, usd = np.empty(K), np.empty(K), np.empty(K), np.empty(I)
    xk = np.empty((K, O))
    want, xs = np.empty((1, K, I, P)), np.empty((1, K, I, P))
    flat = want.reshape(K, O)
    dec = np.empty((1, 2 * I if commit else I))
    scr, tm = np.empty((N_SCRATCH, I)), np.empty(N_TERMS)
    drop = np.zeros((0, 0))
    believed, scaled, high = seen_arr.shape[0] > 0, scale.shape[0] > 0, high_arr.shape[0] > 0
    o_pr, o_pue = 2 * K, 2 * K + 2 * I
    for b in range(B):
        d = day[b]
        for k in range(K):
            if believed:
                a_k, c_k = seen_arr[d, t, k], seen_cap[d, t, k]
            else:
                a_k, c_k = ser[t, d, k], ser[t, d, K + k]
            if scaled:
                # The slot's own arrivals enter its backlog cap (a window sum) once.
                s_k = scale[b, k]
                c_k = c_k + (s_k - 1.0) * a_k * (1.0 if c_k > 0 else 0.0)
                a_k = a_k * s_k
            seen[k] = a_k
            pend[k] = q[b, k] + a_k
            may[k] = min(pend[k], c_k) * cls[DEFER, k]
        for i in range(I):
            usd[i] = ser[t, d, o_pue + i] * ser[t, d, o_pr + i] / 1000.0
        xk[:] = 0.0
        iters[b] = dispatch_copy(pend, may, usd, cont[b], tables, prices[b], xk, work)
        for i in range(I):
            dec[0, i] = battery[b, i]
        if commit:
            for k in range(K):
                r = 1.0
                if high and interactive[k]:
                    lo, hi = q[b, k] + seen[k], q[b, k] + high_arr[d, t, k]
                    r = hi / lo if lo > 0 else 1.0
                for o in range(O):
                    flat[k, o] = max(xk[k, o] * r, 0.0)
            _provision(b, 0, want, opt, dec, t, day, ser, site, cls, tab, O, n_tiers, dt_h,
                       carbon_price, st, scr)
            for i in range(I):
                g = scr[9, i]
                if headroom.shape[0] and headroom[b, i] != 0.0:
                    g = min(np.floor(g * head_f[b, i] + 0.5), site[i, GPUS])
                dec[0, I + i] = g
        for k in range(K):
            for o in range(O):
                flat[k, o] = max(xk[k, o], 0.0)
            real = q[b, k] + ser[t, d, k]
            if commit and interactive[k]:
                planned = _pairwise(flat[k], O)
                f = real / planned if planned > 0 else 0.0
                for o in range(O):
                    flat[k, o] *= f
                if planned <= 0 and real > 0 and fallback[k] >= 0:
                    flat[k, fallback[k]] = real
            asked = _pairwise(flat[k], O)
            if asked > real:
                f = real / asked
                for o in range(O):
                    flat[k, o] *= f
        _slot(b, 0, want, opt, dec, drop, t, last, day, ser, tprice, site, cls, tab, O,
              n_tiers, dt_h, carbon_price, q, st, xs, q_out, st_out, record, y_out, res,
              terms, scr, tm)
        if record:
            x[b] = xs[0]
