"""The simulator's compiled loops (numba): admission of a class's jobs slot by slot, and a
site's GPUs serving two FCFS tiers without preemption.

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
    """Non-preemptive priority service on a site's GPUs: whenever a GPU is free it takes the
    earliest-ready high-tier (interactive) job that is ready, else the earliest-ready
    low-tier one, else waits for the next arrival. GPU g is available in the intervals
    iv_start/iv_end[gpu_ptr[g]:gpu_ptr[g+1]] (sorted); a job may start only inside one and
    runs to its end even past it. Start times are written; inf = never started."""
    G = gpu_ptr.size - 1
    start_hi[:] = np.inf
    start_lo[:] = np.inf
    if G == 0:
        return
    free = np.full(G, np.inf)
    cur = gpu_ptr[:-1].copy()
    for g in range(G):
        if cur[g] < gpu_ptr[g + 1]:
            free[g] = iv_start[cur[g]]
    nh, nl = ready_hi.size, ready_lo.size
    ph = 0
    pl = 0
    while ph < nh or pl < nl:
        g = np.argmin(free)
        f = free[g]
        if f == np.inf:
            break                                    # no GPU is on again: the rest waits
        end = iv_end[cur[g]]
        if f >= end:                                 # this on-interval is over: next one
            cur[g] += 1                              # (a drained job may run into it)
            free[g] = max(f, iv_start[cur[g]]) if cur[g] < gpu_ptr[g + 1] else np.inf
            continue
        r_hi = ready_hi[ph] if ph < nh else np.inf
        r_lo = ready_lo[pl] if pl < nl else np.inf
        if r_hi <= f:
            hi = True
        elif r_lo <= f:
            hi = False
        else:
            hi = r_hi <= r_lo                        # idle until the next arrival
        begin = max(f, r_hi if hi else r_lo)
        if begin >= end:
            free[g] = end
            continue
        if hi:
            start_hi[ph] = begin
            free[g] = begin + work_hi[ph]
            ph += 1
        else:
            start_lo[pl] = begin
            free[g] = begin + work_lo[pl]
            pl += 1
