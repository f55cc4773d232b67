"""The oracle model's size, known from the scenario's dimensions before anything is built,
and the guard that refuses a model too large to build (a 1e6-slot horizon would otherwise
allocate gigabytes and die in `bad_alloc`).

Every backend builds the same variables and rows (see matrix.py for the layout), so one
count serves all three.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from optsched.errors import ModelTooLarge, ScenarioError
from optsched.scenario.compile import Compiled

# The largest benchmark instance (10 sites x 7 days, MILP) has 9.78 M variables and
# passes with 20% to spare; above that the estimated peak passes 31 GiB. A 1e6-slot
# horizon has 13 M variables on the tests' tiny scenario (one site with a battery, four
# options) and 456 M on jemas-3: both are refused before anything is allocated.
MAX_VARS = 12_000_000
MAX_VARS_ENV = "OPTSCHED_MAX_VARS"
# Peak memory per variable of the MILP solve: 3.1 / 3.6 / 3.6 GiB (highs / cvxpy / pyomo)
# on the 10-site day's 1.40 M variables (benchmarks/oracle.py, HiGHS 1.16, one thread).
BYTES_PER_VAR = 2_800


@dataclass(frozen=True)
class ModelSize:
    n_vars: int
    n_cons: int
    nnz: int                        # structural nonzeros of the constraint matrix (the
                                    # built one omits coefficients that happen to be 0)

    @property
    def peak_bytes(self) -> int:
        """A rough peak memory of the solve (within about 2x on the benchmark instances)."""
        return self.n_vars * BYTES_PER_VAR


def model_size(c: Compiled, relax: bool) -> ModelSize:
    """Variables, rows and nonzeros of the oracle model of `c`, from its dimensions only."""
    T, I, K = c.T, c.I, c.K
    E = int(c.eligible.sum())                 # eligible (class, option) pairs
    Kd = int((~c.interactive).sum())          # classes with a backlog
    Ib = int(c.has_battery.sum())             # sites with a battery
    milp = 0 if relax else 1
    J = c.queue_a.shape[1]                    # queueing cuts per site (0: off)
    Iq = I if J else 0                        # sites with a late-from-waiting variable
    Ei = int(c.eligible[c.interactive].sum())  # eligible pairs of interactive classes
    Is = I if c.commit else 0                 # sites with a GPUs-started variable
    # Per slot: x, y, q, n, r, b, z, ch, dis, soc (and u, lq, start); once: peak, short.
    n_vars = T * (E + K + Kd + 4 * I + 3 * Ib + milp * Ib + Iq + Is) + I + Ib
    # Per slot: conservation, gpu capacity, balance, peak import, soc recursion (and the
    # two battery modes, the queueing cuts, the gpu starts); once: terminal soc.
    n_cons = T * (K + 3 * I + Ib + 2 * milp * Ib + J * I + Is) + Ib
    nnz = (T * (E + K) + Kd * (2 * T - 1)          # conservation: x, y, q[t] - q[t-1]
           + T * (E + I)                           # gpu capacity: x, n
           + T * (E + 4 * I + 2 * Ib)              # balance: x, n, b, z, r, ch, dis
           + Ib * (2 * T - 1) + 2 * T * Ib         # soc recursion: soc[t] - soc[t-1], ch, dis
           + 2 * T * I                             # peak import: b, peak
           + 2 * Ib                                # terminal soc: short, soc[T-1]
           + milp * 4 * T * Ib                     # battery modes: ch or dis, u
           + J * T * (2 * Iq + Ei)                 # queueing cuts: lq, n, interactive x
           + Is * (3 * T - 2)                      # gpu starts: start, n[t] - n[t-1]
           + 2 * T * Is)                           # start in gpu capacity and balance
    return ModelSize(n_vars, n_cons, nnz)


def vars_limit(max_vars: float | None = None) -> float:
    """The limit in force: the argument (`--max-vars`), else $OPTSCHED_MAX_VARS, else
    MAX_VARS."""
    key, value = "--max-vars", max_vars
    if value is None:
        key, value = MAX_VARS_ENV, os.environ.get(MAX_VARS_ENV)
        if value is None:
            return MAX_VARS
    try:
        limit = float(value)
    except (TypeError, ValueError):
        limit = math.nan
    if not limit > 0:
        raise ScenarioError(key, "must be a number of variables > 0", value)
    return limit


def check_size(c: Compiled, relax: bool, max_vars: float | None = None) -> ModelSize:
    """The model's size, or ModelTooLarge when it has more variables than the limit."""
    size = model_size(c, relax)
    limit = vars_limit(max_vars)
    if size.n_vars > limit:
        raise ModelTooLarge(size.n_vars, size.nnz, size.peak_bytes, limit,
                            "LP" if relax else "MILP")
    return size
