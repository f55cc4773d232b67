"""The typed scenario: field-level rules in pydantic, cross-field rules in `check_semantics`.

Names follow the model (docs/model.md) and the file format (docs/scenario.md). Time series
are already resolved
to one float per slot here (the loader turns CSV references and hourly lists into
lists), so everything downstream sees plain numbers.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from optsched.errors import ScenarioError
from optsched.physics import quality as quality_fn


def _range(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False):
    """A float constrained to an interval, with the interval in its error message."""
    text = f"must be in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"

    def check(v: float) -> float:
        if (v <= lo if lo_open else v < lo) or (v >= hi if hi_open else v > hi):
            raise ValueError(text)
        return v

    return Annotated[float, AfterValidator(check)]


def _int_range(lo: int, hi: int):
    def check(v: int) -> int:
        if not lo <= v <= hi:
            raise ValueError(f"must be an integer in [{lo}, {hi}]")
        return v

    return Annotated[int, AfterValidator(check)]


def _nonempty(v: list) -> list:
    """must list at least one value

    (An empty steps or clocks list leaves no option to serve a job with.)"""
    if not v:
        raise ValueError("must list at least one value")
    return v


def _name(v: str) -> str:
    """must be a non-empty name, printable on one line

    (Names key options, tables and error messages.)"""
    if not v.strip():
        raise ValueError("must be a non-empty name")
    if not v.isprintable():
        raise ValueError("must be printable on one line (no control characters)")
    return v


Name = Annotated[str, AfterValidator(_name)]
Fraction = _range(0.0, 1.0, lo_open=True)              # (0, 1]: efficiencies, util_cap
Unit = _range(0.0, 1.0)                                # [0, 1]
Money = _range(0.0, 1e4)                               # $ per job / per kW / per kWh
Power = _range(0.0, 1e7)                               # kW (a 10 GW ceiling catches unit slips)
PosPower = _range(0.0, 1e7, lo_open=True)
Energy = _range(0.0, 1e8)                              # kWh
Price = _range(-1000.0, 10000.0)                       # $/MWh; ERCOT's 2023 cap was 5,000
Pue = _range(1.0, 3.0)
CarbonIntensity = _range(0.0, 3000.0)                  # gCO2/kWh; coal is about 1,000
Arrivals = _range(0.0, 1e9)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=False)


class Quality(Strict):
    a: _range(0.0, 1.0)
    b: _range(-100.0, 100.0)
    c: _range(-100.0, 100.0)
    d: _range(-1.0, 1.0) = 0.0
    log_steps: bool = False


class ModelProfile(Strict):
    name: Name
    step_time_s: _range(0.0, 60.0, lo_open=True)
    fixed_time_s: _range(0.0, 600.0) = 0.0
    step_energy_j: _range(0.0, 1e5, lo_open=True)
    fixed_energy_j: _range(0.0, 1e6) = 0.0
    static_power_fraction: Unit = 0.3
    gpu_idle_kw: _range(0.0, 10.0)
    quality: Quality


class Battery(Strict):
    capacity_kwh: _range(0.0, 1e8, lo_open=True)
    soc_min_kwh: Energy
    soc_max_kwh: Energy
    soc0_kwh: Energy
    ch_max_kw: Power
    dis_max_kw: Power
    eta_c: Fraction
    eta_d: Fraction
    deg_cost: _range(0.0, 10.0) = 0.0


class Site(Strict):
    name: Name
    model: Name
    gpus: _int_range(0, 10_000_000)
    util_cap: Fraction = 1.0
    pue: list[Pue]
    import_cap_kw: PosPower
    export_cap_kw: Power = 0.0
    sell_factor: Unit = 0.8
    demand_charge: Money = 0.0
    price: list[Price]
    renewable_kw: list[Power] | None = None
    carbon_intensity: list[CarbonIntensity] | None = None
    battery: Battery | None = None


class Network(Strict):
    transfer_latency_s: list[list[_range(0.0, 3600.0)]] | None = None
    transfer_cost: list[list[Money]] | None = None


class JobClass(Strict):
    name: Name
    home: Name
    kind: Literal["interactive", "deferrable"]
    deadline_s: _range(0.0, 86400.0, lo_open=True) | None = None
    late_penalty: Money | None = None
    max_wait_slots: _int_range(1, 100_000) | None = None
    wait_cost: Money | None = None
    revenue_per_job: Money
    min_quality: Unit = 0.0
    drop_penalty: Money = 0.0
    arrivals: list[Arrivals]


class Horizon(Strict):
    slot_minutes: _int_range(1, 1440) = 5
    slots: _int_range(1, 1_000_000) = 288
    steps: Annotated[list[_int_range(1, 10_000)], AfterValidator(_nonempty)] = [
        6, 10, 14, 18, 22, 26, 30, 34, 38, 42]
    clocks: Annotated[list[_range(0.0, 2.0, lo_open=True)], AfterValidator(_nonempty)] = [
        0.7, 0.85, 1.0]
    carbon_price: Money = 0.0


# Erlang-C's recursion runs over the servers: beyond this many GPUs a site takes seconds.
ERLANG_C_MAX_GPUS = 100_000


class Queueing(Strict):
    """Opt-in: interactive jobs wait in a queue whose delay grows with utilisation, and a
    wait beyond a job's slack makes it late (docs/model.md, "Queueing-aware capacity")."""

    enabled: bool = Field(True, description="Switches the queueing-aware capacity model "
                          "on; `false` keeps the section but scores as without it.")
    model: Literal["erlang-c", "kingman"] = Field(
        "erlang-c", description="Tail bound of the wait: `erlang-c` (one queue pooled over "
        "all the site's `gpus`, Allen-Cunneen for G/G/c: optimistic when fewer are on) or "
        "`kingman` (each powered-on GPU its own G/G/1 queue: conservative).")
    pieces: _int_range(1, 64) = Field(8, description="J: tangent cuts of the late-jobs "
                                      "curve per site, at utilisations util_cap j / J.")
    # Defaults measured on the jobs the per-job simulator replays (docs/model.md): arrivals
    # at uniform times within a slot given its count (a Poisson process: ca2 = 1; GenTD26's
    # one-minute counts within hours have an index of dispersion of 1.18, data card
    # optsched/workload/genai.md), and a job's service time is its option's gpu_s (work = 1:
    # cs2 = 0; the per-slot option mix adds 0.00 to 0.04 on jemas-3 day 4, benchmarks/
    # fidelity.py). Jobs with lognormal service noise of log-sd s have cs2 = exp(s^2) - 1
    # (GenTD26's fitted request-level residual, s = 0.481: 0.26).
    ca2: _range(0.0, 100.0) = Field(1.0, description="Squared coefficient of variation "
                                    "of inter-arrival times (1: Poisson arrivals).")
    cs2: _range(0.0, 100.0) = Field(0.0, description="Squared coefficient of variation "
                                    "of service times around the option's `gpu_s` (0: "
                                    "constant, as the simulator serves; 1: exponential).")


# Mean base-model loading time of the GenTD26 trace's fitted two-lognormal mixture
# (optsched/workload/genai_params.json, `cold_start`; data card optsched/workload/genai.md).
COLD_START_MEAN_S = 22.05


class Provisioning(Strict):
    """Opt-in: decisions before demand is seen, and GPUs that take time to start
    (docs/model.md, "Provisioning before arrivals")."""

    enabled: bool = Field(True, description="Switches the mode on: the environment commits "
                          "each slot's powered-on GPUs (and routing, steps, clocks, "
                          "releases) at the slot's start, before its arrivals are seen; "
                          "GPUs switched on pay a cold start. `false` scores as without it.")
    cold_start_s: _range(0.0, 3600.0) = Field(
        COLD_START_MEAN_S, description="Seconds a GPU switched on spends loading the base "
        "model before it serves, drawing its idle power (default: the mean of the GenTD26 "
        "trace's fitted cold-start distribution).")


class Scenario(Strict):
    name: str = "scenario"
    description: str = ""
    horizon: Horizon = Horizon()
    models: list[ModelProfile]
    sites: list[Site]
    network: Network = Network()
    classes: list[JobClass]
    queueing: Queueing | None = Field(None, description="Queueing-aware capacity "
                                      "(below); omitted means off: interactive jobs never "
                                      "wait.")
    provisioning: Provisioning | None = Field(None, description="Provisioning before "
                                              "arrivals with cold starts (below); omitted "
                                              "means off: GPUs follow the served work, "
                                              "start instantly and for free.")


def _unique(names: list[str], key: str) -> None:
    seen: set[str] = set()
    for j, name in enumerate(names):
        if name in seen:
            raise ScenarioError(f"{key}[{j}].name", "duplicate name", name)
        seen.add(name)


def _known(value: str, known: list[str], path: str, what: str) -> None:
    if value not in known:
        raise ScenarioError(path, f"unknown {what} (known: {', '.join(known)})", value)


def check_semantics(sc: Scenario) -> None:
    """Rules that span fields: names, shapes, lengths, orderings, reachable quality."""
    h = sc.horizon
    for key, items in (("models", sc.models), ("sites", sc.sites), ("classes", sc.classes)):
        if not items:
            raise ScenarioError(key, "must list at least one entry", [])
        _unique([it.name for it in items], key)
    if sorted(set(h.steps)) != h.steps:
        raise ScenarioError("horizon.steps", "must be strictly increasing", h.steps)
    if sorted(set(h.clocks)) != h.clocks:
        raise ScenarioError("horizon.clocks", "must be strictly increasing", h.clocks)
    model_names = [m.name for m in sc.models]
    site_names = [s.name for s in sc.sites]
    T = h.slots
    for i, site in enumerate(sc.sites):
        p = f"sites[{i}]"
        _known(site.model, model_names, f"{p}.model", "model")
        for key in ("pue", "price", "renewable_kw", "carbon_intensity"):
            series = getattr(site, key)
            if series is not None and len(series) != T:
                raise ScenarioError(f"{p}.{key}", f"must have {T} values (one per slot)",
                                    series)
        bat = site.battery
        if bat is not None:
            bp = f"{p}.battery"
            if bat.soc_max_kwh > bat.capacity_kwh:
                raise ScenarioError(f"{bp}.soc_max_kwh",
                                    f"must be <= capacity_kwh ({bat.capacity_kwh:g})",
                                    bat.soc_max_kwh)
            if bat.soc_min_kwh > bat.soc_max_kwh:
                raise ScenarioError(f"{bp}.soc_min_kwh",
                                    f"must be <= soc_max_kwh ({bat.soc_max_kwh:g})",
                                    bat.soc_min_kwh)
            if not bat.soc_min_kwh <= bat.soc0_kwh <= bat.soc_max_kwh:
                raise ScenarioError(f"{bp}.soc0_kwh", f"must be in [soc_min_kwh, soc_max_kwh] "
                                    f"= [{bat.soc_min_kwh:g}, {bat.soc_max_kwh:g}]",
                                    bat.soc0_kwh)
    n_sites = len(sc.sites)
    for key in ("transfer_latency_s", "transfer_cost"):
        mat = getattr(sc.network, key)
        if mat is None:
            continue
        p = f"network.{key}"
        if len(mat) != n_sites or any(len(row) != n_sites for row in mat):
            shape = f"{len(mat)}x{max((len(r) for r in mat), default=0)}"
            raise ScenarioError(p, f"must be a {n_sites}x{n_sites} matrix in site order, "
                                f"got {shape}")
        for i in range(n_sites):
            if mat[i][i] != 0.0:
                raise ScenarioError(f"{p}[{i}][{i}]", "must be 0 on the diagonal", mat[i][i])
    _check_queueing(sc)
    best_q, best_at = _best_quality(sc)
    for k, cl in enumerate(sc.classes):
        p = f"classes[{k}]"
        _known(cl.home, site_names, f"{p}.home", "site")
        if len(cl.arrivals) != T:
            raise ScenarioError(f"{p}.arrivals", f"must have {T} values (one per slot)",
                                cl.arrivals)
        needed = ("deadline_s", "late_penalty") if cl.kind == "interactive" else (
            "max_wait_slots", "wait_cost")
        for key in needed:
            if getattr(cl, key) is None:
                raise ScenarioError(f"{p}.{key}", f"missing required key for {cl.kind} classes")
        if cl.kind == "deferrable" and cl.max_wait_slots >= T:
            raise ScenarioError(f"{p}.max_wait_slots", f"must be below the horizon ({T} slots)",
                                cl.max_wait_slots)
        if cl.min_quality > best_q + 1e-12:
            raise ScenarioError(f"{p}.min_quality",
                                f"no option reaches it (best is {best_q:.4g}, {best_at})",
                                cl.min_quality)


def _check_queueing(sc: Scenario) -> None:
    qu = sc.queueing
    if qu is None:
        return
    if qu.ca2 + qu.cs2 <= 0.0:
        raise ScenarioError("queueing.cs2", "ca2 + cs2 must be > 0 (with both 0 no job "
                            "ever waits: set enabled = false instead)", qu.cs2)
    if qu.model == "erlang-c":
        for i, site in enumerate(sc.sites):
            if site.gpus > ERLANG_C_MAX_GPUS:
                raise ScenarioError(f"sites[{i}].gpus", f"must be at most "
                                    f"{ERLANG_C_MAX_GPUS:,} with queueing.model = "
                                    "'erlang-c' (use 'kingman')", site.gpus)


def _best_quality(sc: Scenario) -> tuple[float, str]:
    """The highest quality any option offers, and where (a transfer can reach any site)."""
    models = {m.name: m for m in sc.models}
    best, where = -1.0, ""
    for site in sc.sites:
        m = models.get(site.model)
        if m is None:
            continue
        q = quality_fn(sc.horizon.steps, **m.quality.model_dump())
        j = int(q.argmax())
        if q[j] > best:
            best, where = float(q[j]), f"{m.name} at {site.name}, {sc.horizon.steps[j]} steps"
    return best, where
