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

Layouts: eligible (class, option) pairs flat, those of class k at site i at
bptr[k I + i]:bptr[k I + i + 1] in option order; per pair its option e_opt, site
e_site, value e_val ($ per job), energy e_kwh (kWh per job), GPU-seconds e_gs and
e_g = e_gs / tau[k].
"""

from __future__ import annotations

import numpy as np
from numba import njit

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
def _curvature(amount, e_site, e_gs, tau, band, w, fr, pz, load, hess, diag, m1, m2):
    """From the weights of `_weights`: the loads load [I] (cap - load is the gradient)
    and the Hessian hess [I, I], from each class's per site sums m1 = sum G w and
    m2 = sum G^2 w. diag, m1 and m2 [I] are scratch."""
    K, I = tau.shape[0], load.shape[0]
    for i in range(I):
        load[i] = 0.0
        diag[i] = 0.0
        for h in range(I):
            hess[i, h] = 0.0
    first = 0
    for k in range(K):
        frac = fr[k, 0]
        for i in range(I):
            m1[i] = 0.0
            m2[i] = 0.0
        for n in range(first, int(fr[k, 1])):
            e, v = band[n], w[n]
            g, i = e_gs[e], e_site[e]
            load[i] += g * (v * frac)
            m1[i] += g * v
            m2[i] += g * g * v
        first = int(fr[k, 1])
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
def dispatch(pending, may_wait, usd_kwh, cont, bptr, e_opt, e_site, e_val, e_kwh, e_g,
             e_gs, tau, drop_penalty, cap, mu_max, curv_floor, prices, x, iters):
    """Jobs x[B, K, O] (zero on entry) of each copy's slot. Per copy b: pending and
    may_wait [B, K] jobs, energy price usd_kwh [B, I] ($/kWh x PUE), continuation
    value cont [B, K] of a waiting job; the search starts from prices [B, I] (0: the
    plans of the numpy version) and leaves the prices found there; iters[b] gets its
    Newton iterations. Pairs of class k at site i are bptr[k I + i]:bptr[k I + i + 1]."""
    B, K = pending.shape
    I, E = cap.shape[0], e_opt.shape[0]
    net, score, w = np.empty(E), np.empty(E), np.empty(E)
    band = np.empty(E, dtype=np.int64)
    stay, amount = np.empty((2, K)), np.empty((2, K))
    fr, pz = np.empty((K, 2)), np.empty((K, 2))
    load, hess, h = np.empty(I), np.empty((I, I)), np.empty((I, I))
    m1, m2, diag = np.empty(I), np.empty(I), np.empty(I)
    mu, cand, grad, rhs, step = (np.empty(I), np.empty(I), np.empty(I), np.empty(I),
                                 np.empty(I))
    free = np.empty(I, dtype=np.bool_)
    for b in range(B):
        for k in range(K):
            for e in range(bptr[k * I], bptr[k * I + I]):
                net[e] = (e_val[e] - e_kwh[e] * usd_kwh[b, e_site[e]]) / tau[k]
            stay[0, k] = -drop_penalty[k] / tau[k]
            stay[1, k] = cont[b, k] / tau[k]
            amount[0, k] = pending[b, k] - may_wait[b, k]
            amount[1, k] = may_wait[b, k]
        for i in range(I):
            mu[i] = prices[b, i]
        n_it = 0
        fresh = False                     # the weights are those at mu (value too)
        value = 0.0
        for _ in range(NEWTON_STEPS):
            if not fresh:
                value = _weights(mu, net, stay, amount, bptr, e_g, tau, cap, score, band,
                                 w, fr, pz)
                fresh = True
            _curvature(amount, e_site, e_gs, tau, band, w, fr, pz, load, hess, diag, m1,
                       m2)
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
                v_new = _weights(cand, net, stay, amount, bptr, e_g, tau, cap, score,
                                 band, w, fr, pz)
                fresh = v_new <= value + ARMIJO * slope
                if fresh:
                    for i in range(I):
                        mu[i] = cand[i]
                    value = v_new
                    break
                alpha *= 0.5
        iters[b] = n_it
        for i in range(I):
            prices[b, i] = mu[i]
        if not fresh:
            _weights(mu, net, stay, amount, bptr, e_g, tau, cap, score, band, w, fr, pz)
        n = 0
        for k in range(K):
            while n < fr[k, 1]:
                v = w[n] * fr[k, 0]
                if v >= SLIVER:            # no GPU powered for a thousandth of a job
                    x[b, k, e_opt[band[n]]] = v
                n += 1
