"""MODEL.md as one sparse matrix: the direct HiGHS reference, and the diagnosis's input.

Variables, in blocks (row-major, slot innermost): x[E, T], y[K, T], q[Kd, T], n[I, T],
ch/dis/soc[Ib, T], r/b/z[I, T], peak[I], short[Ib], in the MILP u[Ib, T], with
queueing the late jobs from waiting lq[I, T], and with provisioning the GPUs started
start[I, T].
Row families carry MODEL.md's constraint names so a diagnosis can point at them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from optsched.oracle.layout import (
    Layout,
    build_layout,
    queue_cut_rows,
    rise_matrix,
    shift_matrix,
)
from optsched.scenario.compile import Compiled
from optsched.schedule import Schedule

INF = np.inf


@dataclass(frozen=True)
class Family:
    name: str              # MODEL.md constraint name
    rows: slice
    axis: str              # "class" or "site": what the row's first index names
    labels: tuple[str, ...]
    per_slot: bool


@dataclass(eq=False)
class MatrixModel:
    layout: Layout
    blocks: dict[str, slice]
    shapes: dict[str, tuple[int, ...]]
    cost: NDArray[np.float64]           # maximise cost @ v
    A: sp.csr_matrix
    row_lo: NDArray[np.float64]
    row_hi: NDArray[np.float64]
    col_lo: NDArray[np.float64]
    col_hi: NDArray[np.float64]
    integer: NDArray[np.bool_]
    families: list[Family]

    @property
    def n_vars(self) -> int:
        return self.A.shape[1]

    @property
    def n_cons(self) -> int:
        return self.A.shape[0]

    def block(self, v: NDArray, name: str) -> NDArray:
        return v[self.blocks[name]].reshape(self.shapes[name])


def build_matrix(c: Compiled, relax: bool = True, soc_ref: NDArray | None = None,
                 peak_floor: NDArray | None = None, n_prev: NDArray | None = None
                 ) -> MatrixModel:
    """The model of MODEL.md over c's horizon. For a rolling window (MPC), `soc_ref` is
    the state of charge the terminal rule measures against (default c.soc0, where the
    window starts), `peak_floor` the import peak already reached [I] and, with
    provisioning, `n_prev` the GPUs on before the window [I] (default: slot 0 is warm)."""
    L = build_layout(c)
    ref = c.soc0 if soc_ref is None else np.asarray(soc_ref, float)
    T, I, K = c.T, c.I, c.K
    Kd, Ib = len(L.deferrable), len(L.batt)
    shapes: dict[str, tuple[int, ...]] = {
        "x": (L.E, T), "y": (K, T), "q": (Kd, T), "n": (I, T), "ch": (Ib, T),
        "dis": (Ib, T), "soc": (Ib, T), "r": (I, T), "b": (I, T), "z": (I, T),
        "peak": (I,), "short": (Ib,)}
    if not relax:
        shapes["u"] = (Ib, T)
    if c.queueing:
        shapes["lq"] = (I, T)
    if c.commit:
        shapes["start"] = (I, T)
    blocks, pos = {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        blocks[name] = slice(pos, pos + size)
        pos += size
    n_vars = pos

    eye_t = sp.eye(T, format="csr")
    diff_t = (eye_t - shift_matrix(T)).tocsr()          # v[t] - v[t-1]

    def over_t(m) -> sp.csr_matrix:
        return sp.kron(sp.csr_matrix(m), eye_t, format="csr")

    fam_rows: list[tuple[Family, dict, NDArray, NDArray]] = []
    row0 = 0

    def family(name, axis, labels, parts, lo, hi, per_slot=True):
        nonlocal row0
        m = len(lo)
        fam = Family(name, slice(row0, row0 + m), axis, tuple(labels), per_slot)
        fam_rows.append((fam, parts, np.asarray(lo, float), np.asarray(hi, float)))
        row0 += m

    lam = c.arrivals.ravel()
    family("conservation", "class", c.classes, {
        "x": over_t(L.class_of_pair), "y": sp.eye(K * T, format="csr"),
        "q": sp.kron(L.q_of_class, diff_t, format="csr")}, lam, lam)
    zeros_it = np.zeros(I * T)
    # provisioning: a started GPU serves cold_start_s less and draws idle power meanwhile
    cold = {"start": sp.diags(np.repeat(c.util_cap * c.cold_start_s, T))} if c.commit else {}
    family("gpu capacity", "site", c.sites, {
        "x": over_t(L.gpu_at_site),
        "n": -sp.diags(np.repeat(c.util_cap * c.dt_s, T))} | cold,
        np.full(I * T, -INF), zeros_it)
    pue = sp.diags(c.pue.ravel())
    batt_t = over_t(L.batt_of_site)
    idle_pue = c.pue.ravel() * np.repeat(c.idle_kw, T)           # kW per GPU on
    loading = ({"start": -sp.diags(idle_pue * (c.cold_start_s / c.dt_s))} if c.commit
               else {})
    family("balance", "site", c.sites, {
        "b": sp.eye(I * T), "z": -sp.eye(I * T),
        "x": -(pue @ over_t(L.busy_at_site / c.dt_h)),
        "n": -sp.diags(idle_pue),
        "ch": -batt_t, "dis": batt_t, "r": sp.eye(I * T)} | loading, zeros_it, zeros_it)
    if c.commit:     # start[i, t] >= n[i, t] - n[i, t-1]; slot 0 warm (or after n_prev)
        lo = np.zeros((I, T))
        if n_prev is not None:
            lo[:, 0] = -np.asarray(n_prev, float)
        family("gpu starts", "site", c.sites, {
            "start": sp.eye(I * T, format="csr"),
            "n": -sp.kron(sp.eye(I), rise_matrix(T, warm=n_prev is None), format="csr")},
            lo.ravel(), np.full(I * T, INF))
    if Ib:
        eta_c, eta_d = c.eta_c[L.batt], c.eta_d[L.batt]
        rhs = np.zeros((Ib, T))
        rhs[:, 0] = c.soc0[L.batt]
        family("soc recursion", "site", np.asarray(c.sites)[L.batt], {
            "soc": sp.kron(sp.eye(Ib), diff_t, format="csr"),
            "ch": -sp.diags(np.repeat(c.dt_h * eta_c, T)),
            "dis": sp.diags(np.repeat(c.dt_h / eta_d, T))}, rhs.ravel(), rhs.ravel())
    family("peak import", "site", c.sites, {
        "b": sp.eye(I * T), "peak": -sp.kron(sp.eye(I), np.ones((T, 1)), format="csr")},
        np.full(I * T, -INF), zeros_it)
    if Ib:
        last = sp.csr_matrix(([1.0], ([0], [T - 1])), shape=(1, T))
        family("terminal soc", "site", np.asarray(c.sites)[L.batt], {
            "short": sp.eye(Ib), "soc": sp.kron(sp.eye(Ib), last, format="csr")},
            ref[L.batt], np.full(Ib, INF), per_slot=False)
        if not relax:
            family("battery mode (charge)", "site", np.asarray(c.sites)[L.batt], {
                "ch": sp.eye(Ib * T), "u": -sp.diags(np.repeat(c.ch_max[L.batt], T))},
                np.full(Ib * T, -INF), np.zeros(Ib * T))
            family("battery mode (discharge)", "site", np.asarray(c.sites)[L.batt], {
                "dis": sp.eye(Ib * T), "u": sp.diags(np.repeat(c.dis_max[L.batt], T))},
                np.full(Ib * T, -INF), np.repeat(c.dis_max[L.batt], T))

    for j in range(c.queue_a.shape[1]):
        cut_x, cut_n = queue_cut_rows(c, L, j)
        family(f"queueing cut {j + 1}", "site", c.sites, {
            "lq": sp.eye(I * T, format="csr"), "x": -cut_x, "n": cut_n},
            zeros_it, np.full(I * T, INF))

    rows = []
    for fam, parts, _, _ in fam_rows:
        m = fam.rows.stop - fam.rows.start
        row = [parts.get(name, sp.csr_matrix((m, blocks[name].stop - blocks[name].start)))
               for name in shapes]
        rows.append(sp.hstack(row, format="csr"))
    A = sp.vstack(rows, format="csr")
    row_lo = np.concatenate([lo for *_, lo, _ in fam_rows])
    row_hi = np.concatenate([hi for *_, hi in fam_rows])

    price = c.price / 1000.0
    cost = np.zeros(n_vars)
    col_lo, col_hi = np.zeros(n_vars), np.full(n_vars, INF)
    integer = np.zeros(n_vars, bool)

    def put(name, obj=None, lo=None, hi=None):
        sl = blocks[name]
        if obj is not None:
            cost[sl] = np.broadcast_to(obj, shapes[name]).ravel()
        if lo is not None:
            col_lo[sl] = np.broadcast_to(lo, shapes[name]).ravel()
        if hi is not None:
            col_hi[sl] = np.broadcast_to(hi, shapes[name]).ravel()

    put("x", obj=L.value[:, None])
    put("y", obj=-c.drop_penalty[:, None])
    put("q", obj=-c.wait_cost[L.deferrable][:, None], hi=c.backlog_cap[L.deferrable])
    put("n", hi=c.gpus[:, None])
    deg = -c.dt_h * c.deg_cost[L.batt][:, None]
    put("ch", obj=deg, hi=c.ch_max[L.batt][:, None])
    put("dis", obj=deg, hi=c.dis_max[L.batt][:, None])
    put("soc", lo=c.soc_min[L.batt][:, None], hi=c.soc_max[L.batt][:, None])
    put("r", hi=c.renewable)
    put("b", obj=-c.dt_h * price - c.carbon_price * c.dt_h * c.ci / 1e6,
        hi=c.import_cap[:, None])
    put("z", obj=c.dt_h * c.sell_factor[:, None] * price, hi=c.export_cap[:, None])
    put("peak", obj=-c.demand_charge, lo=0.0 if peak_floor is None else peak_floor)
    put("short", obj=-L.terminal_price)
    if c.queueing:
        put("lq", obj=-c.queue_penalty[:, None])
    if not relax:
        put("u", hi=1.0)
        integer[blocks["u"]] = True
        integer[blocks["n"]] = True
    return MatrixModel(layout=L, blocks=blocks, shapes=shapes, cost=cost, A=A, row_lo=row_lo,
                       row_hi=row_hi, col_lo=col_lo, col_hi=col_hi, integer=integer,
                       families=[f for f, *_ in fam_rows])


def unpack(c: Compiled, L: Layout, get) -> Schedule:
    """A full Schedule from block values; `get(name)` returns the block's array."""
    x = np.zeros((c.K, c.O, c.T))
    x[L.pair_k, L.pair_o] = get("x")
    q = np.zeros((c.K, c.T))
    q[L.deferrable] = get("q")
    battery = {}
    for name in ("ch", "dis", "soc"):
        full = np.zeros((c.I, c.T)) if name != "soc" else np.repeat(c.soc0[:, None], c.T, 1)
        full[L.batt] = get(name)
        battery[name] = full
    clip = np.maximum      # solver round-off below 0 is not a decision
    return Schedule(x=clip(x, 0.0), y=clip(get("y"), 0.0), q=clip(q, 0.0),
                    n=clip(get("n"), 0.0), r=clip(get("r"), 0.0), b=clip(get("b"), 0.0),
                    z=clip(get("z"), 0.0), ch=clip(battery["ch"], 0.0),
                    dis=clip(battery["dis"], 0.0), soc=battery["soc"],
                    start=clip(get("start"), 0.0) if c.commit else None)
