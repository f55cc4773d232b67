"""The decomposed LP oracle for many sites: price coordination over the job transfers.

Sites couple only through the classes' conservation rows (a class's jobs may be served at
any site). Dualising those rows with prices lam[k, t] (the value of one more job of class k
in slot t) splits the LP relaxation into one LP per site and a closed form per class:

- the Lagrangian dual g(lam) = lam . arrivals + backlog term + sum of the site optima is an
  upper bound on the LP optimum for every lam >= -drop_penalty (weak duality); the least
  one seen is the certified bound;
- the site LP at prices lam (`solve_site`: HiGHS, warm-started from the site's previous
  basis, a pure function of picklable inputs, so a Ray task as it stands) serves, per
  option and slot, the class of highest `value - lam` (every class's jobs use an option's
  GPU time and energy alike, so this aggregation is exact) and bids the (class, option,
  slot) columns its plan uses;
- the coordinator's master is the model of matrix.py restricted to admitted columns (home
  options first, then the bids): a feasible schedule, hence a lower bound, and its
  conservation duals are the next prices. It starts from the union of the sites' local
  optimal bases (solved in parallel) and re-solves warm after each round's bids;
- the master's prices alone bound poorly (a class served only at home is priced at its
  home site's margin, so every other site over-serves it in g), so each round also prices
  the sites at the *repaired* prices (`_Master.repaired`): the master's raised until no x
  column of the full model has a positive reduced cost at the master's site duals, a dual
  feasible point of the full LP. On multisite-10 day 4 that bound is 0.05% above the LP
  optimum after the first re-solve; the 10- and 30-site days close 0.5% in 2 rounds
  (6, and more than 5, before).

Before any round, balanced clusters (`balanced_clusters`, `solve_cluster`): the sites
dealt into groups that mix those short of capacity with those that have some to spare,
each group's LP with its inner transfers solved whole; their union is a feasible
schedule and their repaired prices a near-optimal dual point. On multisite-N (where every
job moved crosses regions, from short sites to spare ones) this alone closes
0.5%: 30 sites to 0.24%, 100 sites to 0.18% (groups of 7), where the master's re-solve
with the admitted transfers does not finish in 10 minutes.

The run stops when bound - primal <= tol max(1, |bound|). The better of the clusters'
and the master's schedules, scored by the one evaluator, is the primal utility.
docs/model.md, "Decomposed oracle".
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from optsched.errors import ScenarioError
from optsched.evaluator import Evaluation, evaluate
from optsched.oracle.highs import (
    MIP_GAP,
    highs_lp,
    load_highs,
    matrix_to_highs,
    new_highs,
    run_highs,
)
from optsched.oracle.matrix import MatrixModel, build_matrix, unpack
from optsched.scenario.compile import Compiled
from optsched.schedule import Schedule

MAX_ITER = 50
# With smoothing > 0 each round also prices the sites at this mix of the best-bound prices
# and the master's (Wentges' smoothing). Off: the repaired prices bound better (multisite-10
# day 4: 2 rounds either way, one site sweep less per round without).
SMOOTHING = 0.0

# Per-site arrays of Compiled, sliced to one site by `site_view`.
SITE_FIELDS = ("gpus", "util_cap", "idle_kw", "import_cap", "export_cap", "sell_factor",
               "demand_charge", "has_battery", "soc0", "soc_min", "soc_max", "ch_max",
               "dis_max", "eta_c", "eta_d", "deg_cost", "price", "renewable", "pue", "ci",
               "terminal_price", "queue_a", "queue_b", "queue_penalty", "queue_service_s",
               "queue_slack_s")
CLASS_FIELDS = ("interactive", "revenue_per_job", "min_quality", "drop_penalty",
                "late_penalty", "deadline_s", "wait_cost", "max_wait", "arrivals",
                "backlog_cap")
PAIR_FIELDS = ("latency_s", "late", "eligible", "revenue", "transfer", "late_cost", "value")
OPTION_FIELDS = ("opt_steps", "opt_clock", "quality", "gpu_s", "energy_j", "busy_kwh")


def cluster_size_for(sites: int) -> int:
    """The default sites per balanced cluster: max(5, round(sqrt(sites / 2))). The repaired
    bound loosens as the clusters grow in number (a class is priced at the cheapest
    spare capacity of any of them) and a cluster's LP grows with its size cubed, so the
    size grows with the square root. Chosen from multisite-N day 4 (docs/model.md): 6
    clusters of 5 closed 30 sites to 0.24% in one pass; at 100 sites 20 of 5 left 0.73%,
    14 of 7 closed to 0.18%."""
    return max(5, round(math.sqrt(sites / 2)))


# ------------------------------------------------------------------ site subproblems
@dataclass(frozen=True, eq=False)
class SiteProblem:
    """One site's LP without prices (picklable: a Ray task's input). Columns: the
    aggregated jobs w[e, t] of option `opts[e]` (first m T columns, slot innermost), then
    the site's own blocks (n, battery, r, b, z, peak, short) as in oracle/matrix.py."""

    site: int
    opts: NDArray[np.int64]          # [m] option indices at this site
    classes: NDArray[np.int64]       # [Kc] classes eligible for at least one of them
    value: NDArray[np.float64]       # [Kc, m] value[k, o], -inf where not eligible
    T: int
    A: sp.csc_matrix
    row_lo: NDArray[np.float64]
    row_hi: NDArray[np.float64]
    col_lo: NDArray[np.float64]
    col_hi: NDArray[np.float64]
    cost: NDArray[np.float64]        # the site's own utility per column (0 on w)
    blocks: dict[str, slice]         # site blocks in the columns after w

    @property
    def m(self) -> int:
        return len(self.opts)


@dataclass(frozen=True, eq=False)
class SiteResult:
    objective: float                 # site optimum at the prices (the Lagrangian part)
    utility: float                   # the plan's own utility (no prices)
    served: sp.coo_matrix            # [K, T] jobs served per class and slot (the proposal)
    w_index: NDArray[np.int64]       # nonzero w: flat index e T + t
    w_class: NDArray[np.int64]       # ... the class it serves
    w_value: NDArray[np.float64]     # ... jobs
    site_values: NDArray[np.float64]  # the site's other columns
    basis: tuple[NDArray[np.int8], NDArray[np.int8]] | None


def site_view(c: Compiled, i: int, opts: NDArray[np.int64]) -> Compiled:
    """Site i alone with one pseudo-class per option in `opts` (eligible for that option
    only, nothing arriving): build_matrix of it is the site's rows over w."""
    m, one = len(opts), slice(i, i + 1)
    zeros_ko, zeros_kt = np.zeros((m, m)), np.zeros((m, c.T))
    return dataclasses.replace(
        c, sites=(c.sites[i],), models=(c.models[i],),
        classes=tuple(f"option-{o}" for o in opts),
        opt_site=np.zeros(m, np.int64), opt_steps=c.opt_steps[opts],
        opt_clock=c.opt_clock[opts], quality=c.quality[opts], gpu_s=c.gpu_s[opts],
        energy_j=c.energy_j[opts], busy_kwh=c.busy_kwh[opts], site_of=np.ones((1, m)),
        home=np.zeros(m, np.int64), interactive=np.ones(m, bool),
        revenue_per_job=np.zeros(m), min_quality=np.zeros(m), drop_penalty=np.zeros(m),
        late_penalty=np.zeros(m), deadline_s=np.full(m, np.inf), wait_cost=np.zeros(m),
        max_wait=np.zeros(m, np.int64), latency_s=zeros_ko, late=np.zeros((m, m), bool),
        eligible=np.eye(m, dtype=bool), revenue=zeros_ko, transfer=zeros_ko,
        late_cost=zeros_ko, value=zeros_ko, arrivals=zeros_kt, backlog_cap=zeros_kt,
        **{name: getattr(c, name)[one] for name in SITE_FIELDS})


def cluster_view(c: Compiled, group: Sequence[int]) -> tuple[NDArray[np.int64],
                                                              NDArray[np.int64], Compiled]:
    """The sites of `group` (ascending) and their home classes, each class served only at
    those sites: (classes, options, the view). One site is the master's block of that
    site before any transfer is admitted (its own LP, solved in parallel for a warm
    start); several are a cluster of the balanced primal (`solve_cluster`)."""
    sites = np.asarray(group, np.int64)
    ks, opts = np.flatnonzero(np.isin(c.home, sites)), np.flatnonzero(np.isin(c.opt_site, sites))
    local = np.full(c.I, -1)
    local[sites] = np.arange(len(sites))
    opt_site = local[c.opt_site[opts]]
    site_of = np.zeros((len(sites), len(opts)))
    site_of[opt_site, np.arange(len(opts))] = 1.0
    return ks, opts, dataclasses.replace(
        c, sites=tuple(c.sites[i] for i in sites), models=tuple(c.models[i] for i in sites),
        classes=tuple(c.classes[k] for k in ks), opt_site=opt_site, site_of=site_of,
        home=local[c.home[ks]],
        **{name: getattr(c, name)[opts] for name in OPTION_FIELDS},
        **{name: getattr(c, name)[ks] for name in CLASS_FIELDS},
        **{name: getattr(c, name)[np.ix_(ks, opts)] for name in PAIR_FIELDS},
        **{name: getattr(c, name)[sites] for name in SITE_FIELDS})


def local_view(c: Compiled, i: int) -> Compiled:
    """Site i and its home classes, served only there (`cluster_view` of one site)."""
    return cluster_view(c, [i])[2]


def solve_local(lc: Compiled) -> tuple[NDArray[np.int8], NDArray[np.int8]] | None:
    """The optimal basis of a `local_view`'s LP (pure: a Ray task as it stands)."""
    h = load_highs(matrix_to_highs(build_matrix(lc, relax=True)), None, MIP_GAP)
    h.run()
    return _get_basis(h) if h.getModelStatus() == highspy.HighsModelStatus.kOptimal else None


def _slots(index: Any, T: int) -> NDArray[np.int64]:
    """Flat (index, slot) positions of per-slot blocks and rows, slot innermost."""
    return (np.asarray(index, np.int64)[:, None] * T + np.arange(T)).ravel()


def _site_rows(m: MatrixModel, j: int, T: int) -> NDArray[np.int64]:
    """The rows of site j's own constraints in `m` (a build_matrix model), in
    `build_site`'s row order: the families after conservation, each site-major."""
    bpos = np.flatnonzero(m.layout.batt == j)
    start = {f.name: f.rows.start for f in m.families}
    per_family = {"gpu capacity": _slots([j], T), "balance": _slots([j], T),
                  "soc recursion": _slots(bpos, T), "peak import": _slots([j], T),
                  "terminal soc": bpos}
    return np.concatenate([start[name] + idx for name, idx in per_family.items()
                           if len(idx)])


def _local_index(c: Compiled, m: MatrixModel, i: int) -> tuple[NDArray, NDArray]:
    """Where the columns and rows of `local_view(c, i)`'s matrix sit in `m`, the matrix of
    c with home pairs admitted (both from build_matrix: same block and family order)."""
    T = c.T
    ks, opts = np.flatnonzero(c.home == i), np.flatnonzero(c.opt_site == i)
    pair_pos = np.full((c.K, c.O), -1)
    pair_pos[m.layout.pair_k, m.layout.pair_o] = np.arange(m.layout.E)
    kl, ol = np.nonzero(c.eligible[np.ix_(ks, opts)])
    dpos = np.full(c.K, -1)
    dpos[m.layout.deferrable] = np.arange(len(m.layout.deferrable))
    batt = np.flatnonzero(m.layout.batt == i)
    per_block = {"x": _slots(pair_pos[ks[kl], opts[ol]], T), "y": _slots(ks, T),
                 "q": _slots(dpos[ks[~c.interactive[ks]]], T), "n": _slots([i], T),
                 "ch": _slots(batt, T), "dis": _slots(batt, T), "soc": _slots(batt, T),
                 "r": _slots([i], T), "b": _slots([i], T), "z": _slots([i], T),
                 "peak": np.array([i]), "short": batt}
    cols = np.concatenate([m.blocks[name].start + idx for name, idx in per_block.items()])
    cons = next(f for f in m.families if f.name == "conservation").rows
    return cols, np.concatenate([cons.start + _slots(ks, T), _site_rows(m, i, T)])


def build_site(c: Compiled, i: int) -> SiteProblem:
    """Site i's LP: matrix.py's model of `site_view` without its conservation rows and
    drop columns (the class side lives in the master)."""
    usable = c.eligible.any(axis=0) & (c.opt_site == i)
    opts = np.flatnonzero(usable)
    mm = build_matrix(site_view(c, i, opts), relax=True)
    cons = next(f for f in mm.families if f.name == "conservation").rows
    rows = np.r_[0:cons.start, cons.stop:mm.n_cons]
    y = mm.blocks["y"]
    cols = np.r_[0:y.start, y.stop:mm.n_vars]
    shift = y.stop                                     # w (= x) and y come first
    blocks = {name: slice(sl.start - shift, sl.stop - shift) for name, sl in mm.blocks.items()
              if sl.start >= y.stop}
    classes = np.flatnonzero(c.eligible[:, opts].any(axis=1))
    value = np.where(c.eligible[np.ix_(classes, opts)], c.value[np.ix_(classes, opts)],
                     -np.inf)
    cost = mm.cost[cols]
    cost[:len(opts) * c.T] = 0.0
    return SiteProblem(site=i, opts=opts, classes=classes, value=value, T=c.T,
                       A=mm.A[rows][:, cols].tocsc(), row_lo=mm.row_lo[rows],
                       row_hi=mm.row_hi[rows], col_lo=mm.col_lo[cols], col_hi=mm.col_hi[cols],
                       cost=cost, blocks=blocks)


def _set_basis(h: highspy.Highs, basis: tuple[NDArray[np.int8], NDArray[np.int8]]) -> None:
    b = highspy.HighsBasis()
    status = highspy.HighsBasisStatus
    b.col_status = [status(int(v)) for v in basis[0]]
    b.row_status = [status(int(v)) for v in basis[1]]
    b.valid = True
    h.setBasis(b)


def _get_basis(h: highspy.Highs) -> tuple[NDArray[np.int8], NDArray[np.int8]] | None:
    b = h.getBasis()
    if not b.valid:
        return None
    return (np.array([int(v) for v in b.col_status], np.int8),
            np.array([int(v) for v in b.row_status], np.int8))


def solve_site(p: SiteProblem, lam: NDArray[np.float64],
               basis: tuple[NDArray[np.int8], NDArray[np.int8]] | None = None) -> SiteResult:
    """Site p's LP at prices lam [K, T]: each (option, slot) column earns the best
    `value - lam` over the classes it may serve. Pure: a Ray task as it stands."""
    K = lam.shape[0]
    red = p.value[:, :, None] - lam[p.classes][:, None, :]          # [Kc, m, T]
    best = red.argmax(axis=0)                                         # [m, T]
    rv = np.take_along_axis(red, best[None], axis=0)[0]
    cost = p.cost.copy()
    cost[:p.m * p.T] = rv.ravel()
    h = new_highs()
    h.passModel(highs_lp(-cost, p.col_lo, p.col_hi, p.row_lo, p.row_hi, p.A,
                         np.zeros(len(cost), bool)))
    if basis is not None:
        _set_basis(h, basis)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal and basis is not None:
        return solve_site(p, lam, None)        # a warm start can stall: solve from scratch
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"site {p.site}: HiGHS {h.modelStatusToString(h.getModelStatus())}")
    v = np.asarray(h.getSolution().col_value)
    w = np.maximum(v[:p.m * p.T], 0.0)
    nz = np.flatnonzero(w > 0)
    k = p.classes[best.ravel()[nz]]
    t = nz % p.T
    served = sp.coo_matrix((w[nz], (k, t)), shape=(K, p.T))
    served.sum_duplicates()
    utility = float(p.cost @ v + (p.value[best.ravel()[nz], nz // p.T] * w[nz]).sum())
    return SiteResult(objective=float(cost @ v), utility=utility, served=served,
                      w_index=nz, w_class=k, w_value=w[nz], site_values=v[p.m * p.T:],
                      basis=_get_basis(h))


def repaired(problems: Sequence[SiteProblem], lam: NDArray[np.float64],
             site_duals: Sequence[NDArray[np.float64]]) -> NDArray[np.float64]:
    """lam raised until no x column of the full model has a positive reduced cost at the
    sites' row duals (`site_duals[j]`: problems[j]'s rows, of the maximisation): with
    them a dual feasible point of the full LP, so g at these prices bounds tightly when
    the duals are near optimal."""
    out = lam.copy()
    for p, ys in zip(problems, site_duals, strict=True):
        sc = (p.A[:, :p.m * p.T].T @ ys).reshape(p.m, p.T)          # [m, T]
        best = (p.value[:, :, None] - sc[None]).max(axis=1)          # [Kc, T]
        out[p.classes] = np.maximum(out[p.classes], best)
    return out


# ------------------------------------------------------------------ balanced clusters
@dataclass(frozen=True, eq=False)
class ClusterResult:
    objective: float                 # the cluster LP's optimum
    schedule: Schedule               # of its `cluster_view`
    lam: NDArray[np.float64]         # [Kc, T] its conservation rows' prices
    site_duals: list[NDArray[np.float64]]   # per site, its own rows' duals (build_site order)


def solve_cluster(cc: Compiled) -> ClusterResult:
    """The LP of a `cluster_view` (HiGHS, from scratch), with its prices. Pure: a Ray task
    as it stands."""
    m = build_matrix(cc, relax=True)
    h = load_highs(matrix_to_highs(m), None, MIP_GAP)
    res, _ = run_highs(h, relax=True, maximize=False)
    if res.status != "optimal":
        raise RuntimeError(f"decomposed oracle: cluster LP {res.status}")
    sol = h.getSolution()
    v, dual = np.asarray(sol.col_value), -np.asarray(sol.row_dual)   # of the maximisation
    cons = next(f for f in m.families if f.name == "conservation").rows
    return ClusterResult(objective=-h.getInfo().objective_function_value,
                         schedule=unpack(cc, m.layout, lambda name: m.block(v, name)),
                         lam=dual[cons].reshape(cc.K, cc.T),
                         site_duals=[dual[_site_rows(m, j, cc.T)] for j in range(cc.I)])


def balanced_clusters(score: NDArray[np.float64], size: int) -> list[NDArray[np.int64]]:
    """round(I / size) groups of sites, dealt in snake order of `score` (highest first),
    so each group mixes the sites whose jobs are worth most at home (short of capacity)
    with those worth least (capacity to spare): the transfers that pay stay possible
    inside a group."""
    n = max(1, round(len(score) / size))
    groups: list[list[int]] = [[] for _ in range(n)]
    for j, i in enumerate(np.argsort(-score, kind="stable")):
        lap, pos = divmod(j, n)
        groups[pos if lap % 2 == 0 else n - 1 - pos].append(int(i))
    return [np.sort(np.array(g, np.int64)) for g in groups]


def assemble(c: Compiled, parts: Sequence[tuple[NDArray[np.int64], NDArray[np.int64],
                                                NDArray[np.int64], Schedule]]) -> Schedule:
    """One schedule of c from disjoint clusters' (classes, options, sites, schedule)."""
    site = ("n", "ch", "dis", "soc", "r", "b", "z", "start")
    s = Schedule(x=np.zeros((c.K, c.O, c.T)), y=np.zeros((c.K, c.T)),
                 q=np.zeros((c.K, c.T)), **{name: np.zeros((c.I, c.T)) for name in site})
    for ks, opts, sites, part in parts:
        s.x[np.ix_(ks, opts)] = part.x
        s.y[ks], s.q[ks] = part.y, part.q
        for name in site:
            getattr(s, name)[sites] = getattr(part, name)
    return s


# ------------------------------------------------------------------ fan-out
class _Pool:
    """Runs the sites of an iteration: here one after another, or as Ray tasks on the
    runtime `optsched.parallel` starts (or finds running) for these settings; Ray is
    imported only then."""

    def __init__(self, workers: int, ray_address: str | None):
        from optsched.parallel import check_workers, started

        settings = check_workers(workers, ray_address)
        self._stack = contextlib.ExitStack()
        self.ray: Any = None if settings.serial else self._stack.enter_context(
            started(settings))
        self.remote: dict[Callable, Any] = {}

    def share(self, items: Sequence[Any]) -> list[Any]:
        """Objects every iteration reuses (the site problems), stored once."""
        return list(items) if self.ray is None else [self.ray.put(x) for x in items]

    def map(self, fn: Callable[..., Any], args: list[tuple]) -> list[Any]:
        if self.ray is None:
            return [fn(*a) for a in args]
        remote = self.remote.setdefault(fn, self.ray.remote(fn))
        return self.ray.get([remote.remote(*a) for a in args])

    def close(self) -> None:
        self._stack.close()


class _Master:
    """The coordinator's restricted LP: the model of matrix.py with x only for the (class,
    option) pairs admitted so far (home options first, then those sites have bid for),
    kept in one HiGHS object so each round re-solves warm from the last basis. Its rows do
    not depend on which pairs are admitted, so admitted pairs' columns are appended."""

    def __init__(self, c: Compiled, admitted: NDArray[np.bool_]):
        self.c = c
        self.home = admitted.copy()
        self.extra = np.zeros(0, np.int64)       # admitted triples, (k O + o) T + t
        self.m = build_matrix(dataclasses.replace(c, eligible=admitted), relax=True)
        self.h = load_highs(matrix_to_highs(self.m), None, MIP_GAP)
        self.cons = next(f for f in self.m.families if f.name == "conservation").rows

    def warm(self, bases: list[tuple[NDArray[np.int8], NDArray[np.int8]] | None]) -> bool:
        """Start from the sites' local optimal bases (home pairs admitted, the master is
        block-diagonal by site: their union is its optimal basis); False if one is
        missing or the union does not cover the master."""
        if any(b is None for b in bases):
            return False
        col = np.full(self.m.n_vars, -1, np.int8)
        row = np.full(self.m.n_cons, -1, np.int8)
        for i, (bc, br) in enumerate(bases):
            cols, rows = _local_index(self.c, self.m, i)
            if len(cols) != len(bc) or len(rows) != len(br):
                return False
            col[cols], row[rows] = bc, br
        if (col < 0).any() or (row < 0).any():
            return False
        _set_basis(self.h, (col, row))
        return True

    def admit(self, k: NDArray[np.int64], o: NDArray[np.int64], t: NDArray[np.int64],
              window: int | None = None) -> int:
        """Append the x columns of the bid (class, option, slot) triples, each widened to
        the slots within `window` of its own (None: every slot), that are not yet in;
        their count. Coefficients come from build_matrix of the triples' pairs."""
        c = self.c
        if window is None or window >= c.T:
            pair = np.unique(k * c.O + o)
            flat = (pair[:, None] * c.T + np.arange(c.T)).ravel()
        else:
            near = np.clip(t[:, None] + np.arange(-window, window + 1), 0, c.T - 1)
            flat = np.unique(((k * c.O + o)[:, None] * c.T + near).ravel())
        k, o = np.divmod(flat // c.T, c.O)
        keep = ~self.home[k, o] & ~np.isin(flat, self.extra)
        flat, k, o, t = flat[keep], k[keep], o[keep], flat[keep] % c.T
        if not len(flat):
            return 0
        pairs = np.zeros_like(self.home)
        pairs[k, o] = True
        mm = build_matrix(dataclasses.replace(c, eligible=pairs), relax=True)
        pos = np.zeros((c.K, c.O), np.int64)
        pos[mm.layout.pair_k, mm.layout.pair_o] = np.arange(mm.layout.E)
        idx = mm.blocks["x"].start + pos[k, o] * c.T + t
        cols = mm.A[:, idx].tocsc()
        n = len(idx)
        self.h.addCols(n, -mm.cost[idx], np.zeros(n), np.full(n, np.inf), cols.nnz,
                       cols.indptr[:-1].astype(np.int32), cols.indices.astype(np.int32),
                       cols.data)
        self.extra = np.concatenate([self.extra, flat])
        return n

    @property
    def columns(self) -> int:
        """x columns in the master."""
        return int(self.home.sum()) * self.c.T + len(self.extra)

    def solve(self) -> tuple[float, NDArray[np.float64]]:
        """The restricted optimum (utility) and the conservation rows' prices lam [K, T]."""
        res, _ = run_highs(self.h, relax=True, maximize=False)
        if res.status != "optimal":
            raise RuntimeError(f"decomposed oracle: master LP {res.status}")
        dual = -np.asarray(self.h.getSolution().row_dual)[self.cons]   # of the maximisation
        return -self.h.getInfo().objective_function_value, dual.reshape(self.c.K, self.c.T)

    def repaired(self, problems: Sequence[SiteProblem], lam: NDArray[np.float64]
                 ) -> NDArray[np.float64]:
        """`repaired` prices at this master's own site duals."""
        y = -np.asarray(self.h.getSolution().row_dual)
        return repaired(problems, lam, [y[_site_rows(self.m, p.site, self.c.T)]
                                        for p in problems])

    def schedule(self) -> Schedule:
        v = np.asarray(self.h.getSolution().col_value)
        n, c = self.m.n_vars, self.c
        s = unpack(c, self.m.layout, lambda name: self.m.block(v[:n], name))
        k, o = np.divmod(self.extra // c.T, c.O)
        s.x[k, o, self.extra % c.T] += np.maximum(v[n:], 0.0)   # one column per triple
        return s


def lagrangian_bound(c: Compiled, lam: NDArray[np.float64], site_opt: Sequence[float]
                     ) -> float:
    """g(lam): an upper bound on the LP optimum for lam >= -drop_penalty (weak duality):
    arrivals at their price, each backlog slot at its best (0 or its cap), the sites'
    optima."""
    g = float((lam * c.arrivals).sum()) + float(np.sum(site_opt))
    d = np.flatnonzero(~c.interactive)
    if len(d):
        gain = lam[d, 1:] - lam[d, :-1] - c.wait_cost[d, None]     # q[k, t], t < T-1
        g += float((c.backlog_cap[d, :-1] * np.maximum(gain, 0.0)).sum())
    return g


# ------------------------------------------------------------------ result
@dataclass
class Decomposed:
    schedule: Schedule
    evaluation: Evaluation
    utility: float                   # the evaluator's utility of the schedule (primal)
    bound: float                     # certified upper bound on the LP optimum
    gap: float                       # (bound - utility) / max(1, |bound|)
    iterations: int                  # pricing rounds
    converged: bool                  # gap <= tol
    admitted: int                    # x columns in the final master
    eligible: int                    # x columns of the full model
    build_s: float
    solve_s: float
    site_s: float                    # seconds in site solves (all sites, all rounds)
    master_s: float
    workers: int
    clusters: int = 0                # balanced clusters tried first (0: none)
    cluster_s: float = 0.0           # seconds building and solving them
    primal_from: str = "master"      # whose schedule this is: "clusters" or "master"
    history: list[tuple[float, float]] = field(default_factory=list)   # (bound, primal)

    def to_dict(self) -> dict:
        ev = self.evaluation
        return {"utility": self.utility, "bound": self.bound, "gap": self.gap,
                "iterations": self.iterations, "converged": self.converged,
                "x_columns": self.admitted, "x_columns_full": self.eligible,
                "build_s": self.build_s, "solve_s": self.solve_s, "site_s": self.site_s,
                "master_s": self.master_s, "workers": self.workers,
                "clusters": self.clusters, "cluster_s": self.cluster_s,
                "primal_from": self.primal_from, "feasible": ev.feasible,
                "terms": ev.terms, "jobs": ev.jobs,
                "relaxed": True, "backend": "decomposed"}


def _check(c: Compiled, tol: float, max_iter: int) -> None:
    if c.queueing:
        raise ScenarioError("queueing", "the decomposed oracle does not model the "
                            "queueing-aware capacity yet: solve without --decompose",
                            "enabled")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (
            math.isfinite(tol) and tol > 0):
        raise ScenarioError("--gap-tol", "must be a finite relative gap > 0", tol)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ScenarioError("--max-rounds", "must be an integer >= 1", max_iter)


def _closed(bound: float, primal: float, tol: float) -> bool:
    """The stopping rule: the certified relative gap is at most tol."""
    return math.isfinite(bound) and bound - primal <= tol * max(1.0, abs(bound))


def _clusters(c: Compiled, pool: _Pool, problems: Sequence[SiteProblem],
              lam: NDArray[np.float64], size: int) -> tuple[list[NDArray[np.int64]], Any,
                                                             NDArray, NDArray]:
    """The balanced clusters' stage from the home-only master's prices `lam`: (groups,
    (utility, schedule, evaluation) of their union or None if infeasible, their prices
    floored at -drop_penalty, those prices repaired at their sites' duals)."""
    groups = balanced_clusters(_home_price(c, lam), size)
    views = [cluster_view(c, g) for g in groups]
    solved = pool.map(solve_cluster, [(view,) for _, _, view in views])
    schedule = assemble(c, [(ks, opts, g, r.schedule) for (ks, opts, _), g, r
                            in zip(views, groups, solved, strict=True)])
    ev = evaluate(c, schedule, tol=1e-5)
    prices = np.empty_like(lam)          # every class is homed in exactly one group
    duals: list[Any] = [None] * c.I
    for (ks, _, _), g, r in zip(views, groups, solved, strict=True):
        prices[ks] = r.lam
        for j, i in enumerate(g):
            duals[i] = r.site_duals[j]
    prices = np.maximum(prices, -c.drop_penalty[:, None])
    fixed = repaired(problems, prices, [duals[p.site] for p in problems])
    return groups, (ev.utility, schedule, ev) if ev.feasible else None, prices, fixed


def _home_price(c: Compiled, lam: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per site, the mean price of its home classes' jobs (-inf without any)."""
    return np.array([lam[c.home == i].mean() if (c.home == i).any() else -np.inf
                     for i in range(c.I)])


def solve_decomposed(c: Compiled, workers: int = 1, ray_address: str | None = None,
                     tol: float = 5e-3, max_iter: int = MAX_ITER,
                     smoothing: float = SMOOTHING, window: int | None = None,
                     cluster_size: int | None = None,
                     progress: Callable[[int, float, float], None] | None = None
                     ) -> Decomposed:
    """The LP relaxation of `c` by price coordination over its sites, to a certified
    relative gap `tol` (bound - primal <= tol max(1, |bound|)) or `max_iter` rounds.

    With more than `cluster_size` sites (None: `cluster_size_for(c.I)`; 0: never) it
    first tries balanced clusters:
    the sites dealt into groups of about `cluster_size` (`balanced_clusters`, by their
    home prices in the home-only master), each group's LP with transfers inside it
    solved whole (`solve_cluster`, in parallel): their union is a feasible schedule, and
    their prices and site duals, repaired, a near-optimal dual point whose g bounds the
    full LP. If that does not close the gap, the rounds below start from it (its bids
    admitted, its bound and primal kept).

    A bid admits its (class, option) pair's columns in the slots within `window` of the
    bid's slot (None: all slots; on the 10- and 30-site days whole pairs reached a given
    gap sooner than single slots, benchmarks/scale_oracle.py). `progress(round, bound,
    primal)` is called after each round (round 0: the clusters)."""
    _check(c, tol, max_iter)
    if cluster_size is None:
        cluster_size = cluster_size_for(c.I)
    if isinstance(cluster_size, bool) or not isinstance(cluster_size, int) or cluster_size < 0:
        raise ScenarioError("--cluster-size", "must be an integer >= 0 (0: no clusters)",
                            cluster_size)
    t0 = time.perf_counter()
    problems = [build_site(c, i) for i in range(c.I)]
    home = c.eligible & (c.opt_site[None, :] == c.home[:, None])
    master = _Master(c, home)
    build_s = time.perf_counter() - t0
    pool = _Pool(workers, ray_address)
    shared = pool.share(problems)
    ts = time.perf_counter()
    master.warm(pool.map(solve_local, [(local_view(c, i),) for i in range(c.I)]))
    site_s = time.perf_counter() - ts
    bases: list[Any] = [None] * c.I
    bound, best_lam, history = math.inf, None, []
    master_s = cluster_s = 0.0
    floor = -c.drop_penalty[:, None]
    best: tuple[float, Schedule, Evaluation] | None = None     # the clusters' primal
    groups: list[NDArray[np.int64]] = []
    it = 0

    def price(probes: list[NDArray[np.float64]]) -> list[NDArray[np.int64]]:
        """The sites at each probe's prices: the bound (least g) and the bids."""
        nonlocal bound, best_lam, site_s
        bids: list[NDArray[np.int64]] = []
        for probe in probes:
            ts = time.perf_counter()
            results = pool.map(solve_site, [(shared[i], probe, bases[i])
                                            for i in range(c.I)])
            site_s += time.perf_counter() - ts
            g = lagrangian_bound(c, probe, [r.objective for r in results])
            if g < bound:
                bound, best_lam = g, probe
            for i, r in enumerate(results):
                bases[i] = r.basis
                bids += [r.w_class, problems[i].opts[r.w_index // c.T], r.w_index % c.T]
        return bids

    def admit(bids: list[NDArray[np.int64]]) -> int:
        return master.admit(*(np.concatenate(bids[j::3]) for j in range(3)), window)

    def finite(lam: NDArray[np.float64], fixed: NDArray[np.float64]) -> list[NDArray]:
        return [lam, fixed] if np.isfinite(fixed).all() else [lam]

    def resolve() -> tuple[float, NDArray[np.float64]]:
        nonlocal master_s
        tm = time.perf_counter()
        out = master.solve()
        master_s += time.perf_counter() - tm
        return out

    def incumbent() -> float:
        """The better primal so far: the master's optimum or the clusters' utility."""
        return max(primal, best[0] if best else -math.inf)

    try:
        primal, lam = resolve()
        if cluster_size and cluster_size < c.I:
            tc = time.perf_counter()
            groups, best, lam_c, fixed = _clusters(c, pool, problems, lam, cluster_size)
            cluster_s = time.perf_counter() - tc
            bids = price(finite(lam_c, fixed))
            history.append((bound, incumbent()))
            if progress is not None:
                progress(0, *history[-1])
            if not _closed(bound, incumbent(), tol) and admit(bids):
                primal, lam = resolve()
        while True:
            if _closed(bound, incumbent(), tol) or it >= max_iter:
                break
            it += 1
            lam = np.maximum(lam, floor)     # the drop column's dual feasibility, exactly
            probes = finite(lam, master.repaired(problems, lam))
            if smoothing and best_lam is not None:
                probes.append(smoothing * best_lam + (1.0 - smoothing) * lam)
            bids = price(probes)
            history.append((bound, incumbent()))
            if progress is not None:
                progress(it, *history[-1])
            if _closed(bound, history[-1][1], tol):
                break                        # the incumbent stands: no re-solve
            if not admit(bids):
                break                        # every bid is admitted: nothing left to add
            primal, lam = resolve()
    finally:
        pool.close()
    from_clusters = best is not None and best[0] >= primal
    if from_clusters:
        _, schedule, ev = best
    else:
        schedule = master.schedule()
        ev = evaluate(c, schedule, tol=1e-5)
        if best is not None and best[0] > ev.utility:    # the master's score fell short
            _, schedule, ev = best
            from_clusters = True
    solve_s = time.perf_counter() - t0 - build_s
    gap = (bound - ev.utility) / max(1.0, abs(bound))
    return Decomposed(schedule=schedule, evaluation=ev, utility=ev.utility, bound=bound,
                      gap=gap, iterations=it, converged=_closed(bound, ev.utility, tol),
                      admitted=master.columns, eligible=int(c.eligible.sum()) * c.T,
                      build_s=build_s, solve_s=solve_s, site_s=site_s, master_s=master_s,
                      workers=workers, clusters=len(groups), cluster_s=cluster_s,
                      primal_from="clusters" if from_clusters else "master",
                      history=history)
