"""Index sets and sparse operators of the oracle model, derived once from `Compiled`.

Only eligible (class, option) pairs get an x variable; only deferrable classes a backlog;
only sites with a battery get battery variables. Every backend (direct HiGHS matrix,
CVXPY, Pyomo) uses these operators, so the three build the same model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from optsched.scenario.compile import Compiled


@dataclass(frozen=True, eq=False)
class Layout:
    pair_k: NDArray[np.int64]          # [E] class of eligible pair e
    pair_o: NDArray[np.int64]          # [E] option of eligible pair e
    deferrable: NDArray[np.int64]      # [Kd] class indices with a backlog
    batt: NDArray[np.int64]            # [Ib] site indices with a battery
    class_of_pair: sp.csr_matrix       # [K, E] 1 where pair e belongs to class k
    gpu_at_site: sp.csr_matrix         # [I, E] gpu_s[o] where option o runs at site i
    busy_at_site: sp.csr_matrix        # [I, E] busy_kwh[o] where option o runs at site i
    gpu_int_at_site: sp.csr_matrix     # [I, E] gpu_at_site for interactive classes' pairs
    q_of_class: sp.csr_matrix          # [K, Kd] selects backlog rows
    batt_of_site: sp.csr_matrix        # [I, Ib] selects battery rows
    value: NDArray[np.float64]         # [E] value[k, o] of each pair
    terminal_price: NDArray[np.float64]  # [Ib] $/kWh for a shortfall at the horizon's end

    @property
    def E(self) -> int:
        return len(self.pair_k)


def build_layout(c: Compiled) -> Layout:
    pair_k, pair_o = np.nonzero(c.eligible)
    E = len(pair_k)
    cols = np.arange(E)
    site = c.opt_site[pair_o]
    deferrable = np.flatnonzero(~c.interactive)
    batt = np.flatnonzero(c.has_battery)
    inter = c.interactive[pair_k]
    return Layout(
        pair_k=pair_k, pair_o=pair_o, deferrable=deferrable, batt=batt,
        class_of_pair=sp.csr_matrix((np.ones(E), (pair_k, cols)), shape=(c.K, E)),
        gpu_at_site=sp.csr_matrix((c.gpu_s[pair_o], (site, cols)), shape=(c.I, E)),
        busy_at_site=sp.csr_matrix((c.busy_kwh[pair_o], (site, cols)), shape=(c.I, E)),
        gpu_int_at_site=sp.csr_matrix((c.gpu_s[pair_o][inter], (site[inter], cols[inter])),
                                      shape=(c.I, E)),
        q_of_class=sp.csr_matrix((np.ones(len(deferrable)), (deferrable,
                                  np.arange(len(deferrable)))), shape=(c.K, len(deferrable))),
        batt_of_site=sp.csr_matrix((np.ones(len(batt)), (batt, np.arange(len(batt)))),
                                   shape=(c.I, len(batt))),
        value=c.value[pair_k, pair_o],
        terminal_price=c.terminal_price[batt],
    )


def shift_matrix(T: int) -> sp.csr_matrix:
    """[T, T] with ones below the diagonal: (v @ S.T)[t] = v[t-1], 0 at t = 0."""
    return sp.eye(T, k=-1, format="csr")


def rise_matrix(T: int, warm: bool = True) -> sp.csr_matrix:
    """[T, T]: (rise @ v)[t] = v[t] - v[t-1]; row 0 is empty when the GPUs on in slot 0
    are warm (provisioning's start[i, t] >= rise of n, docs/model.md), else v[0]."""
    rise = (sp.eye(T, format="csr") - shift_matrix(T)).tolil()
    if warm:
        rise[0, 0] = 0.0
    rise = rise.tocsr()
    rise.eliminate_zeros()
    return rise


def queue_cut_rows(c: Compiled, L: Layout, j: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Cut j of the queueing-aware capacity as operators on x [E, T] and n [I, T], slot
    innermost: late_q[i, t] >= (cut_x @ x)[i t] - (cut_n @ n)[i t] (docs/model.md)."""
    eye_t = sp.eye(c.T, format="csr")
    cut_x = sp.kron(sp.diags(c.queue_a[:, j]) @ L.gpu_int_at_site, eye_t, format="csr")
    cut_n = sp.diags(np.repeat(c.queue_b[:, j] * c.dt_s, c.T), format="csr")
    cut_x.eliminate_zeros()
    cut_n.eliminate_zeros()
    return cut_x, cut_n
