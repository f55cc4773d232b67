"""The simulator's compiled loops (numba): admission of a class's jobs slot by slot, and a
site's GPUs serving interactive jobs before deferrable ones (`serve_priority`).

Measured before choosing (docs/model.md, "Per-job simulation"): simpy 4.1 needs 7.1 s for a
bare 12-server FCFS queue of 750k jobs, this kind of loop 0.02 s; the day's full replay
(admission, priorities, cold starts) must fit in 10 s, so the loops are compiled.
"""

from __future__ import annotations

import numpy as np
from numba import njit

DROPPED = -1      # job outcome codes in `option` (>= 0: the option that served it)
QUEUED_END = -2   # still waiting (held, or in a site queue) at the horizon's end


@njit(cache=True, error_model="numpy")
def admit_class(slot_of, tails, served, dropped, held, opt_count, D, keys, option, event_slot,
                hold_out, drop_out):
    """One class's jobs (sorted by arrival) through the slots. Pending jobs are a FCFS range
    [head, tail): the oldest `served[t]` (capped by what is pending) are served, with the
    slot's option counts `opt_count[:, t]` shuffled over them; of the rest, the newest that
    are still within their slack (arrival slot > t - D) are held, at least `held[t]`, and
    more when more arrived than planned (all but the planned `dropped[t]`); the oldest are
    dropped. What is held after the last slot is QUEUED_END. Writes each job's outcome
    (option, DROPPED or QUEUED_END) and the slot of that outcome. `keys` (uniform, one per
    planned served job over the horizon) order the shuffle."""
    T = tails.size
    O = opt_count.shape[0]
    head = 0
    used = 0
    for t in range(T):
        tail = tails[t]
        pending = tail - head
        s = min(served[t], pending)
        if s > 0:
            labels = np.empty(served[t], np.int64)
            m = 0
            for o in range(O):
                for _ in range(opt_count[o, t]):
                    labels[m] = o
                    m += 1
            labels = labels[np.argsort(keys[used:used + served[t]])]
            for j in range(s):
                option[head + j] = labels[j]
                event_slot[head + j] = t
        used += served[t]
        rest = pending - s
        first_ok = np.searchsorted(slot_of[:tail], t - D, side="right")  # in slack from here
        in_slack = tail - max(first_ok, head + s)
        keep = min(in_slack, max(held[t], rest - dropped[t]))
        keep = max(keep, 0)
        for j in range(head + s, tail - keep):
            option[j] = DROPPED
            event_slot[j] = t
        drop_out[t] = rest - keep
        hold_out[t] = keep
        head = tail - keep
    for j in range(head, tails[T - 1]):
        option[j] = QUEUED_END
        event_slot[j] = T - 1


@njit(cache=True, error_model="numpy")
def serve_site(ready_hi, work_hi, ready_lo, work_lo, iv_start, iv_end, gpu_ptr,
               start_hi, start_lo):
    """Two FCFS tiers without preemption (`serve_priority` with each interactive job due at
    its ready time and no job that can be paused). Start times are written; inf = never
    started."""
    never_hi, never_lo = np.full(ready_hi.size, np.inf), np.full(ready_lo.size, np.inf)
    serve_priority(ready_hi, ready_hi, work_hi, never_hi, ready_lo, work_lo, never_lo,
                   iv_start, iv_end, gpu_ptr, start_hi, np.empty(ready_hi.size), start_lo,
                   np.empty(ready_lo.size))


@njit(cache=True, error_model="numpy")
def _heap_push(key, idx, size, k, j):
    """Push (k, j) on the binary min-heap key/idx[:size] (ties: lower j first)."""
    p = size
    key[p] = k
    idx[p] = j
    while p > 0:
        up = (p - 1) // 2
        if key[up] < key[p] or (key[up] == key[p] and idx[up] < idx[p]):
            break
        key[up], key[p] = key[p], key[up]
        idx[up], idx[p] = idx[p], idx[up]
        p = up
    return size + 1


@njit(cache=True, error_model="numpy")
def _heap_pop(key, idx, size):
    """Pop the least (key, idx) of the heap key/idx[:size]; returns (j, new size)."""
    top = idx[0]
    size -= 1
    key[0] = key[size]
    idx[0] = idx[size]
    p = 0
    while True:
        a = 2 * p + 1
        if a >= size:
            break
        b = a + 1
        if b < size and (key[b] < key[a] or (key[b] == key[a] and idx[b] < idx[a])):
            a = b
        if key[p] < key[a] or (key[p] == key[a] and idx[p] < idx[a]):
            break
        key[a], key[p] = key[p], key[a]
        idx[a], idx[p] = idx[p], idx[a]
        p = a
    return top, size


@njit(cache=True, error_model="numpy")
def serve_priority(ready_hi, due_hi, work_hi, quantum_hi, ready_lo, work_lo, quantum_lo,
                   iv_start, iv_end, gpu_ptr, start_hi, finish_hi, start_lo, finish_lo):
    """Interactive (hi) jobs by earliest due time, then deferrable (lo) ones first come first
    served, on a site's GPUs, with preemption at a job's preemption points (every
    `quantum` seconds of its service: a denoising step; inf: never).

    A GPU that needs work takes the waiting hi job due first (EDF: `due_hi` is its
    deadline; due = ready time gives FCFS), else a paused lo job (oldest first), else the
    next lo job that is ready. When a hi job arrives while no GPU is free and more hi jobs
    wait than GPUs are already being freed for them, one running job is paused at its next
    preemption point for it: a lo job if one can be (the one reaching its point first),
    else the hi job due last, if it is due later than the arrival. A paused job keeps its
    work done and waits with its tier (a hi job by its due time) to resume on any GPU.
    GPU g is available in the intervals iv_start/iv_end[gpu_ptr[g]:gpu_ptr[g+1]] (sorted);
    a job (or a resumed part) may start only inside one and runs to its end or its next
    pause even past it; pauses happen only inside. Both tiers arrive sorted by ready
    time. Writes the first start and the finish of every job; inf = never started. A
    paused job that no GPU resumes before the last interval ends finishes after it."""
    G = gpu_ptr.size - 1
    start_hi[:] = np.inf
    finish_hi[:] = np.inf
    start_lo[:] = np.inf
    finish_lo[:] = np.inf
    nh, nl = ready_hi.size, ready_lo.size
    if G == 0:
        return
    free = np.full(G, np.inf)          # when GPU g next needs a decision
    cur = gpu_ptr[:-1].copy()          # its current on-interval
    run = np.full(G, -1)               # job running on g (-1: none) ...
    run_hi = np.zeros(G, np.bool_)     # ... of which tier
    seg = np.zeros(G)                  # when that job's current part began
    pause = np.zeros(G, np.bool_)      # g pauses its job at free[g] for a hi job
    for g in range(G):
        if cur[g] < gpu_ptr[g + 1]:
            free[g] = iv_start[cur[g]]
    rem_hi = work_hi.copy()            # work left
    rem_lo = work_lo.copy()
    hkey = np.empty(nh)                # waiting hi jobs (new or paused): heap by (due, index)
    hidx = np.empty(nh, np.int64)
    hsize = 0
    rkey = np.empty(nl)                # paused lo jobs: heap by index (= by ready time)
    ridx = np.empty(nl, np.int64)
    rsize = 0
    pa = 0                             # hi jobs that have arrived
    pl = 0                             # lo jobs started
    npause = 0
    last = 0.0
    for g in range(G):
        if gpu_ptr[g + 1] > gpu_ptr[g]:
            last = max(last, iv_end[gpu_ptr[g + 1] - 1])
    while hsize > 0 or pa < nh or pl < nl or rsize > 0:
        g = np.argmin(free)
        f = free[g]
        if pa < nh and ready_hi[pa] < f:
            # a hi job arrives while every GPU is busy or off: pause a running job for it?
            now, due = ready_hi[pa], due_hi[pa]
            hsize = _heap_push(hkey, hidx, hsize, due, pa)
            pa += 1
            if hsize > npause:
                best = -1
                best_lo = False
                best_due = due
                at = np.inf
                for h in range(G):
                    j = run[h]
                    if j < 0 or pause[h]:
                        continue
                    is_lo = not run_hi[h]
                    q = quantum_hi[j] if run_hi[h] else quantum_lo[j]
                    if q == np.inf or (not is_lo and due_hi[j] <= best_due):
                        continue
                    if best_lo and not is_lo:
                        continue
                    b = seg[h] + np.ceil((now - seg[h]) / q) * q if q > 0 else now
                    if b >= free[h] or b >= iv_end[cur[h]]:
                        continue
                    if is_lo and best_lo and b >= at:
                        continue
                    best, best_lo, at = h, is_lo, b
                    if not is_lo:
                        best_due = due_hi[j]
                if best >= 0:
                    pause[best] = True
                    free[best] = at
                    npause += 1
            continue
        if f == np.inf:
            break                                    # no GPU is on again
        j = run[g]
        if j >= 0:                                   # its job ends or pauses here
            run[g] = -1
            if pause[g]:
                pause[g] = False
                npause -= 1
                if run_hi[g]:
                    rem_hi[j] -= f - seg[g]
                    hsize = _heap_push(hkey, hidx, hsize, due_hi[j], j)
                else:
                    rem_lo[j] -= f - seg[g]
                    rsize = _heap_push(rkey, ridx, rsize, float(j), j)
        while pa < nh and ready_hi[pa] <= f:
            hsize = _heap_push(hkey, hidx, hsize, due_hi[pa], pa)
            pa += 1
        end = iv_end[cur[g]]
        if f >= end:                                 # this on-interval is over: next one
            cur[g] += 1                              # (a running job may drain into it)
            free[g] = max(f, iv_start[cur[g]]) if cur[g] < gpu_ptr[g + 1] else np.inf
            continue
        if hsize > 0:
            j, hsize = _heap_pop(hkey, hidx, hsize)
            run_hi[g] = True
            if start_hi[j] == np.inf:
                start_hi[j] = f
            work = rem_hi[j]
            finish_hi[j] = f + work
            if hsize < npause:                       # a pause no longer needed: undo the
                undo = -1                            # one furthest away
                for u in range(G):
                    if pause[u] and (undo < 0 or free[u] > free[undo]):
                        undo = u
                pause[undo] = False
                npause -= 1
                free[undo] = finish_hi[run[undo]] if run_hi[undo] else finish_lo[run[undo]]
        else:
            if rsize > 0:
                j, rsize = _heap_pop(rkey, ridx, rsize)
            elif pl < nl and ready_lo[pl] <= f:
                j = pl
                pl += 1
                start_lo[j] = f
            else:                                    # idle until the next arrival
                nxt = min(ready_hi[pa] if pa < nh else np.inf,
                          ready_lo[pl] if pl < nl else np.inf)
                free[g] = min(nxt, end) if nxt < np.inf else np.inf
                continue
            run_hi[g] = False
            work = rem_lo[j]
            finish_lo[j] = f + work
        run[g] = j
        seg[g] = f
        free[g] = f + work
    for r in range(rsize):                           # paused, never resumed: drain after
        finish_lo[ridx[r]] = last + rem_lo[ridx[r]]  # the last interval
    for r in range(hsize):
        j = hidx[r]
        if start_hi[j] < np.inf:
            finish_hi[j] = last + rem_hi[j]


def serve_sites(intervals: list[tuple[np.ndarray, np.ndarray, np.ndarray]], site: np.ndarray,
                interactive: np.ndarray, ready: np.ndarray, due: np.ndarray,
                work: np.ndarray, quantum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`serve_priority` at every site: per admitted job its serving site, tier, ready time,
    due time (interactive: its deadline), GPU seconds and preemption quantum (a denoising
    step); `intervals[i]` the site's GPU on-intervals (start, end, per-GPU pointer).
    Returns each job's first start and finish (inf: never started)."""
    start = np.full(site.size, np.inf)
    finish = np.full(site.size, np.inf)
    for i, (lo, up, ptr) in enumerate(intervals):
        hi, low = (sel[np.argsort(ready[sel], kind="stable")] for sel in (
            np.flatnonzero((site == i) & interactive), np.flatnonzero((site == i) & ~interactive)))
        s_hi, f_hi, s_lo, f_lo = (np.empty(n) for n in (hi.size, hi.size, low.size, low.size))
        serve_priority(ready[hi], due[hi], work[hi], quantum[hi], ready[low], work[low],
                       quantum[low], lo, up, ptr, s_hi, f_hi, s_lo, f_lo)
        start[hi], finish[hi], start[low], finish[low] = s_hi, f_hi, s_lo, f_lo
    return start, finish
