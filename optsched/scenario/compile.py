"""Scenario -> `Compiled`: the numpy arrays every solver, the environment and the evaluator
build from, so the model's derived quantities (docs/model.md) are computed once, here.

Axes: i site, k class, o option = (site, steps, clock) in that nesting order, t slot.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from optsched import physics
from optsched.scenario.schema import Scenario

F = NDArray[np.float64]
B = NDArray[np.bool_]
I_ = NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Compiled:
    # names and horizon
    sites: tuple[str, ...]
    classes: tuple[str, ...]
    models: tuple[str, ...]
    steps: I_                 # [S]
    clocks: F                 # [F]
    T: int
    slot_minutes: int
    dt_h: float
    dt_s: float
    carbon_price: float
    # options o = (site, steps, clock)
    opt_site: I_              # [O] site index
    opt_steps: I_             # [O]
    opt_clock: F              # [O]
    quality: F                # [O] Q_m(s) of the serving site's model
    gpu_s: F                  # [O] GPU seconds per job
    energy_j: F               # [O] GPU energy per job
    busy_kwh: F               # [O] energy above the idle floor per job
    site_of: F                # [I, O] one-hot: option o runs at site i
    # classes x options
    home: I_                  # [K] home site
    interactive: B            # [K]
    revenue_per_job: F        # [K]
    min_quality: F            # [K]
    drop_penalty: F           # [K]
    late_penalty: F           # [K] 0 for deferrable
    deadline_s: F             # [K] seconds, inf for deferrable (the per-job simulator)
    wait_cost: F              # [K] 0 for interactive
    max_wait: I_              # [K] D_k, 0 for interactive
    latency_s: F              # [K, O]
    late: B                   # [K, O]
    eligible: B               # [K, O]
    revenue: F                # [K, O] rho_k * Q
    transfer: F               # [K, O] kappa[h(k), i]
    late_cost: F              # [K, O] v_k * late
    value: F                  # [K, O] revenue - transfer - late_cost
    arrivals: F               # [K, T]
    backlog_cap: F            # [K, T] sum of the last D_k slots' arrivals; 0 at T-1
    # sites
    gpus: F                   # [I]
    util_cap: F               # [I]
    idle_kw: F                # [I] P0 of the site's model
    import_cap: F             # [I]
    export_cap: F             # [I]
    sell_factor: F            # [I]
    demand_charge: F          # [I]
    has_battery: B            # [I]
    soc0: F                   # [I]
    soc_min: F                # [I]
    soc_max: F                # [I]
    ch_max: F                 # [I]
    dis_max: F                # [I]
    eta_c: F                  # [I]
    eta_d: F                  # [I]
    deg_cost: F               # [I]
    # site series
    price: F                  # [I, T] $/MWh
    renewable: F              # [I, T] kW available
    pue: F                    # [I, T]
    ci: F                     # [I, T] gCO2/kWh
    terminal_price: F         # [I] $/kWh for a terminal soc shortfall (docs/model.md)
    # queueing-aware capacity (docs/model.md): late_q[i, t] >= queue_a[i, j] W_int[i, t]
    # - queue_b[i, j] dt_s n[i, t]; J = 0 columns when the scenario has it off
    queue_a: F                # [I, J] late jobs per GPU-second of interactive work
    queue_b: F                # [I, J] late jobs per GPU-second of powered-on capacity
    queue_penalty: F          # [I] $ per late job from waiting (0 when off)
    queue_service_s: F        # [I] reference GPU-seconds per interactive job (0 when off)
    queue_slack_s: F          # [I] the wait an interactive job affords (0 when off)
    # provisioning before arrivals (docs/model.md): GPUs started in slot t, start[i, t] >=
    # n[i, t] - n[i, t-1], lose cold_start_s of service each and draw idle power meanwhile
    commit: bool = False      # the environment commits GPUs before the slot's arrivals
    cold_start_s: float = 0.0  # s per GPU start (0 when provisioning is off)

    @property
    def I(self) -> int:  # noqa: E743 - the model's symbol
        return len(self.sites)

    @property
    def K(self) -> int:
        return len(self.classes)

    @property
    def O(self) -> int:  # noqa: E743
        return len(self.opt_site)

    @property
    def queueing(self) -> bool:
        """Whether the queueing-aware capacity model is on (docs/model.md)."""
        return self.queue_a.shape[1] > 0

    def option_index(self, site: int, steps: int, clock: float) -> int:
        s = int(np.flatnonzero(self.steps == steps)[0])
        f = int(np.flatnonzero(np.isclose(self.clocks, clock))[0])
        return (site * len(self.steps) + s) * len(self.clocks) + f

    def arrays(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def backlog_cap(arrivals: F, max_wait: I_) -> F:
    """q[k, t] <= sum of arrivals of slots t-D_k+1..t (docs/model.md, sparse form); 0 at T-1."""
    K, T = arrivals.shape
    csum = np.concatenate([np.zeros((K, 1)), np.cumsum(arrivals, axis=1)], axis=1)
    t = np.arange(T)
    lo = np.clip(t[None, :] - max_wait[:, None] + 1, 0, None)
    cap = csum[np.arange(K)[:, None], t[None, :] + 1] - csum[np.arange(K)[:, None], lo]
    cap[max_wait == 0] = 0.0
    cap[:, -1] = 0.0
    return cap


def compile_scenario(sc: Scenario) -> Compiled:
    """The arrays of `sc`, checked again first (`load.revalidated`: a Scenario changed
    with `model_copy` was never validated)."""
    from optsched.scenario.history import claim
    from optsched.scenario.load import revalidated

    sc = revalidated(sc)
    claim(sc)
    h = sc.horizon
    models = {m.name: m for m in sc.models}
    site_ix = {s.name: i for i, s in enumerate(sc.sites)}
    steps = np.asarray(h.steps, dtype=np.int64)
    clocks = np.asarray(h.clocks, dtype=float)
    n_i, n_s, n_f = len(sc.sites), len(steps), len(clocks)
    opt_site = np.repeat(np.arange(n_i), n_s * n_f)
    opt_steps = np.tile(np.repeat(steps, n_f), n_i)
    opt_clock = np.tile(clocks, n_i * n_s)

    quality, gpu_s, energy_j, busy = (np.empty(len(opt_site)) for _ in range(4))
    idle_kw = np.empty(n_i)
    for i, site in enumerate(sc.sites):
        m = models[site.model]
        at = opt_site == i
        quality[at] = physics.quality(opt_steps[at], **m.quality.model_dump())
        gpu_s[at] = physics.gpu_seconds(opt_steps[at], opt_clock[at], m.step_time_s,
                                        m.fixed_time_s)
        energy_j[at] = physics.job_energy_j(opt_steps[at], opt_clock[at], m.step_energy_j,
                                            m.fixed_energy_j, m.static_power_fraction)
        busy[at] = physics.busy_kwh(energy_j[at], gpu_s[at], m.gpu_idle_kw)
        idle_kw[i] = m.gpu_idle_kw
    site_of = (opt_site[None, :] == np.arange(n_i)[:, None]).astype(float)

    zeros = np.zeros((n_i, n_i))
    tau = np.asarray(sc.network.transfer_latency_s, float) \
        if sc.network.transfer_latency_s is not None else zeros
    kappa = np.asarray(sc.network.transfer_cost, float) \
        if sc.network.transfer_cost is not None else zeros

    cls = sc.classes
    home = np.array([site_ix[c.home] for c in cls], dtype=np.int64)
    interactive = np.array([c.kind == "interactive" for c in cls])
    rho = np.array([c.revenue_per_job for c in cls], float)
    qmin = np.array([c.min_quality for c in cls], float)
    deadline = np.array([c.deadline_s if c.kind == "interactive" else np.inf for c in cls])
    v = np.array([c.late_penalty if c.kind == "interactive" else 0.0 for c in cls])
    w = np.array([c.wait_cost if c.kind == "deferrable" else 0.0 for c in cls])
    max_wait = np.array([c.max_wait_slots if c.kind == "deferrable" else 0 for c in cls],
                        dtype=np.int64)
    latency = tau[home][:, opt_site] + gpu_s[None, :]
    late = interactive[:, None] & (latency > deadline[:, None])
    eligible = quality[None, :] >= qmin[:, None]
    revenue = rho[:, None] * quality[None, :]
    transfer = kappa[home][:, opt_site]
    late_cost = v[:, None] * late
    arrivals = np.array([c.arrivals for c in cls], float)

    def site_series(key: str, default: float) -> F:
        return np.array([getattr(s, key) if getattr(s, key) is not None
                         else [default] * h.slots for s in sc.sites], float)

    def battery(key: str, default: float = 0.0) -> F:
        return np.array([getattr(s.battery, key) if s.battery else default for s in sc.sites])

    price = site_series("price", 0.0)
    eta_c = battery("eta_c", 1.0)
    util_cap = np.array([s.util_cap for s in sc.sites], float)
    queue = queue_arrays(sc, gpu_s, opt_site, eligible & ~late, eligible & interactive[:, None],
                         deadline, v, tau[home], util_cap, home)
    return Compiled(
        sites=tuple(s.name for s in sc.sites), classes=tuple(c.name for c in cls),
        models=tuple(s.model for s in sc.sites), steps=steps, clocks=clocks, T=h.slots,
        slot_minutes=h.slot_minutes, dt_h=h.slot_minutes / 60.0, dt_s=60.0 * h.slot_minutes,
        carbon_price=h.carbon_price,
        opt_site=opt_site, opt_steps=opt_steps, opt_clock=opt_clock, quality=quality,
        gpu_s=gpu_s, energy_j=energy_j, busy_kwh=busy, site_of=site_of,
        home=home, interactive=interactive, revenue_per_job=rho, min_quality=qmin,
        deadline_s=deadline,
        drop_penalty=np.array([c.drop_penalty for c in cls], float), late_penalty=v,
        wait_cost=w, max_wait=max_wait, latency_s=latency, late=late, eligible=eligible,
        revenue=revenue, transfer=transfer, late_cost=late_cost,
        value=revenue - transfer - late_cost, arrivals=arrivals,
        backlog_cap=backlog_cap(arrivals, max_wait),
        gpus=np.array([s.gpus for s in sc.sites], float),
        util_cap=util_cap, idle_kw=idle_kw,
        import_cap=np.array([s.import_cap_kw for s in sc.sites], float),
        export_cap=np.array([s.export_cap_kw for s in sc.sites], float),
        sell_factor=np.array([s.sell_factor for s in sc.sites], float),
        demand_charge=np.array([s.demand_charge for s in sc.sites], float),
        has_battery=np.array([s.battery is not None for s in sc.sites]),
        soc0=battery("soc0_kwh"), soc_min=battery("soc_min_kwh"),
        soc_max=battery("soc_max_kwh"), ch_max=battery("ch_max_kw"),
        dis_max=battery("dis_max_kw"), eta_c=eta_c,
        eta_d=battery("eta_d", 1.0), deg_cost=battery("deg_cost"),
        price=price, renewable=site_series("renewable_kw", 0.0),
        pue=site_series("pue", 1.0), ci=site_series("carbon_intensity", 0.0),
        terminal_price=terminal_price(price, eta_c), **queue, **provisioning(sc),
    )


def provisioning(sc: Scenario) -> dict:
    """`commit` and `cold_start_s` of the opt-in [provisioning] section (off: False, 0)."""
    pv = sc.provisioning
    on = pv is not None and pv.enabled
    return {"commit": on, "cold_start_s": float(pv.cold_start_s) if on else 0.0}


def terminal_price(price: F, eta_c: F) -> F:
    """Shortfall kWh are bought back at the horizon's top price through the charger's loss.
    A negative top price would pay for emptying the battery, so it is floored at 0."""
    return np.maximum(price.max(axis=1), 0.0) / 1000.0 / eta_c


# ---------------------------------------------------------------- queueing-aware capacity
# docs/model.md, "Queueing-aware capacity": the expected late jobs of a site's interactive
# work are (n dt_s / s) h(rho) with h(rho) = rho P(wait > slack | rho) convex, so their
# perspective is jointly convex in (W, n) and its tangent cuts are linear.

QUEUE_GRID = 4001          # utilisations on which each cut is made valid (see queue_cuts)


def erlang_c(servers: int, rho: F) -> F:
    """Probability that a job waits in M/M/c at utilisation rho (Erlang B's stable
    recursion, then C = B / (1 - rho (1 - B))); c = 1 gives rho."""
    a = servers * rho
    erlang_b = np.ones_like(rho)
    for j in range(1, servers + 1):
        erlang_b = a * erlang_b / (j + a * erlang_b)
    return erlang_b / (1.0 - rho * (1.0 - erlang_b))


def late_curve(rho: F, servers: int, slack_s: float, service_s: float,
               variability: float) -> F:
    """h(rho) = rho P(wait > slack): late jobs per job-equivalent of capacity. The wait
    is 0 with probability C(c, c rho) and otherwise exponential with rate
    2 c (1 - rho) / (s (ca2 + cs2)) (Kingman for c = 1, Allen-Cunneen for G/G/c)."""
    rate = 2.0 * servers * (1.0 - rho) / (service_s * variability)
    return rho * erlang_c(servers, rho) * np.exp(-rate * slack_s)


def queue_cuts(curve, top: float, pieces: int) -> tuple[F, F]:
    """Tangent lines h(r) >= a_j r - b_j at r_j = top j / J (j = 1..J), for a convex h on
    [0, top]. The slope is a central difference; b_j is then the least intercept that
    keeps the line below h on a fine grid, so a cut is valid even where the difference
    rounds (for a convex h it is the tangent's own intercept, r_j h'(r_j) - h(r_j))."""
    points = top * np.arange(1, pieces + 1) / pieces
    step = 1e-6 * top
    slope = (curve(points + step) - curve(np.maximum(points - step, 0.0))) / (
        points + step - np.maximum(points - step, 0.0))
    grid = np.union1d(np.linspace(0.0, top, QUEUE_GRID), points)
    h = curve(grid)
    intercept = (slope[:, None] * grid[None, :] - h[None, :]).max(axis=1)
    return slope, np.maximum(intercept, 0.0)


def queue_arrays(sc: Scenario, gpu_s: F, opt_site: I_, on_time: B, serves: B, deadline: F,
                 late_penalty: F, tau_home: F, util_cap: F, home: I_) -> dict[str, F]:
    """Per site i, the cut coefficients in late jobs per GPU-second, the late penalty, the
    reference service time s and the slack, from the site's reference classes: the
    interactive classes homed at i (the demand that arrives there; a class routed in is
    served earliest deadline first, so a tighter one waits less than the home class and a
    looser one more often is on time: docs/model.md), or, at a site that is no interactive
    class's home, every interactive class `serves` [K, O] lets it serve. Of their pairs,
    those that their fixed latency leaves on time (`on_time`; all if none is) count:
    s is their mean GPU-seconds, the slack the tightest reference class's deadline less
    its transfer latency and the mean GPU-seconds of its own such pairs (at least 0), and
    the penalty the mean v_k of the reference classes (equal shares)."""
    n_i = len(sc.sites)
    qu = sc.queueing
    pieces = qu.pieces if qu is not None and qu.enabled else 0
    out = {"queue_a": np.zeros((n_i, pieces)), "queue_b": np.zeros((n_i, pieces)),
           **{k: np.zeros(n_i) for k in ("queue_penalty", "queue_service_s",
                                         "queue_slack_s")}}
    if not pieces:
        return out
    for i, site in enumerate(sc.sites):
        pairs = serves & (opt_site == i)[None, :]
        if (pairs & (home == i)[:, None]).any():
            pairs = pairs & (home == i)[:, None]
        if (pairs & on_time).any():
            pairs = pairs & on_time
        counted = pairs.any(axis=1)
        if not counted.any():
            continue
        times = np.where(pairs, gpu_s[None, :], 0.0)
        service = float(times.sum() / pairs.sum())
        own = times.sum(axis=1)[counted] / pairs.sum(axis=1)[counted]     # per class
        slack = max(float(((deadline - tau_home[:, i])[counted] - own).min()), 0.0)
        servers = max(site.gpus, 1) if qu.model == "erlang-c" else 1

        def curve(rho, servers=servers, slack=slack, service=service):
            return late_curve(rho, servers, slack, service, qu.ca2 + qu.cs2)

        a, b = queue_cuts(curve, float(util_cap[i]), pieces)
        out["queue_a"][i], out["queue_b"][i] = a / service, b / service
        out["queue_penalty"][i] = float(late_penalty[counted].mean())
        out["queue_service_s"][i], out["queue_slack_s"][i] = service, slack
    return out
