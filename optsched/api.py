"""The Python API: what the command line does, callable from a notebook.

    import optsched
    sc = optsched.load_scenario("jemas-3", day=4)
    sol = optsched.solve(sc)                       # the oracle (MILP, HiGHS)
    ev = optsched.evaluate(sc, sol.schedule)       # the one evaluator
    run = optsched.rollout(sc, "greedy")           # a policy through the environment
    table = optsched.compare("jemas-3", ["local-fixed", "greedy"], days="test:2")

Every command of the CLI is a thin layer over these functions; `compare` is the only place
the policy-versus-oracle table is built.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from optsched.errors import ScenarioError
from optsched.oracle.cache import DEFAULT_CACHE
from optsched.oracle.highs import MIP_GAP

if TYPE_CHECKING:
    import pandas as pd

    from optsched.env.gym import OptschedEnv
    from optsched.evaluator import Evaluation
    from optsched.oracle.solution import Solution
    from optsched.policies.base import Policy
    from optsched.scenario import Compiled, Scenario
    from optsched.schedule import Schedule

Progress = Callable[[str], None] | None


class Run(NamedTuple):
    """One policy on one day: the repaired schedule and its evaluation."""

    schedule: Schedule
    evaluation: Evaluation


@dataclass
class Comparison:
    """`compare`'s table plus the runs behind it, keyed (policy, day), and the days."""

    table: pd.DataFrame
    runs: dict[tuple[str, Any], Run] = field(default_factory=dict)
    days: dict[Any, Compiled] = field(default_factory=dict)


def load_scenario(source: str | Path, day: int | None = None, *,
                  allow_outside: bool = False) -> Scenario:
    """A scenario: an embedded family's day (`"jemas-3"`, first held-out day by default) or
    a TOML file, whose CSV files must lie in its folder unless `allow_outside`
    (docs/security.md). Bad input raises ScenarioError naming the key and the value."""
    from optsched.scenario import get_scenario

    return get_scenario(source, day, allow_outside=allow_outside)


def compiled(scenario: Any, day: int | None = None) -> Compiled:
    """The compiled arrays of a source, a Scenario or a Compiled (returned as it is)."""
    from optsched.days import one_horizon
    from optsched.scenario import Compiled, Scenario, compile_scenario

    if day is not None and isinstance(scenario, (Compiled, Scenario)):
        raise one_horizon("day", day)
    if isinstance(scenario, Compiled):
        return scenario
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, day)
    return compile_scenario(scenario)


def solve(scenario_or_compiled: Any, backend: str = "highs", relax: bool = False,
          mip_gap: float = MIP_GAP, time_limit: float | None = None,
          max_vars: float | None = None) -> Solution:
    """The offline oracle (perfect foresight): the MILP, or its LP relaxation with
    `relax`. The solution's schedule is scored by the evaluator, which must agree with
    the solver's objective; no schedule raises InfeasibleError with a diagnosis. Bad
    arguments and models above `max_vars` variables are refused before any build."""
    from optsched.oracle import solve as oracle_solve

    return oracle_solve(compiled(scenario_or_compiled), backend, relax, time_limit, mip_gap,
                        raise_infeasible=True, max_vars=max_vars)


class DaySolution(NamedTuple):
    """One day of `solve_days`: its label, scenario name, compiled arrays and solution."""

    day: int | None
    name: str
    compiled: Compiled
    solution: Solution


def solve_days(scenario: Any, days: Any = None, backend: str = "highs",
               relax: bool = False, mip_gap: float = MIP_GAP,
               time_limit: float | None = None, max_vars: float | None = None,
               ablations: Sequence[str] = (), workers: int | None = None,
               ray_address: str | None = None, progress: Progress = None
               ) -> list[DaySolution]:
    """`solve` on every day of `days` (a day spec or list; None: the scenario itself) with
    `ablations` removed, one task per day (optsched.parallel.fan_out: `workers` local
    CPUs or the Ray cluster at `ray_address`; serial by default), in the order of the
    days. The source and the days are checked before any solve; each task builds its own
    day, so that building the days runs in parallel too."""
    from functools import partial

    from optsched.options import check_levers
    from optsched.parallel import check_workers, fan_out
    from optsched.scenario import Scenario, family, is_embedded
    from optsched.scenario.history import remember_arrays

    removed = check_levers(ablations)
    settings = check_workers(workers, ray_address)
    options = dict(backend=backend, relax=relax, mip_gap=mip_gap, time_limit=time_limit,
                   max_vars=max_vars)
    from optsched.days import day_list as selected

    if isinstance(scenario, Scenario):
        day_list, source = selected(days, scenario), scenario
    elif isinstance(scenario, (str, Path)):
        from optsched.scenario import check_source

        check_source(scenario)
        day_list = selected(days, scenario)
        source = scenario if is_embedded(scenario) else Path(scenario).resolve()
        n_days = family(scenario).n_days() if is_embedded(scenario) else 0
        bad = [d for d in day_list if d is not None and not 0 <= d < n_days]
        load_scenario(source, bad[0] if bad else day_list[0])  # bad input fails here, first
    else:
        raise TypeError("solve_days takes a scenario source or a Scenario")
    solved = fan_out(partial(_solve_day, source, removed, options), day_list,
                     settings.workers, settings.address,
                     describe=lambda d: "oracle" if d is None else f"oracle on day {d}",
                     progress=progress)
    out = []
    for day, (name, c, sol) in zip(day_list, solved, strict=True):
        if day is not None:          # a family's day, remembered as if built here (history)
            remember_arrays(c.price, c.gpus, str(source), day)
        out.append(DaySolution(day, name, c, sol))
    return out


def _solve_day(source: Any, removed: Sequence[str], options: dict, day: int | None
               ) -> tuple[str, Compiled, Solution]:
    """One task of `solve_days`: the day built from its source (a Scenario, an embedded
    family, an absolute TOML path), levers removed, and solved."""
    from optsched.scenario import Scenario, compile_scenario
    from optsched.scenario.ablations import ablate

    sc = source if isinstance(source, Scenario) else load_scenario(source, day)
    c = ablate(compile_scenario(sc), removed)
    return sc.name, c, solve(c, **options)


def solve_decomposed(scenario_or_compiled: Any, workers: int = 1,
                     ray_address: str | None = None, tol: float = 5e-3, max_iter: int = 50,
                     progress: Any = None, cluster_size: int | None = None) -> Any:
    """The LP relaxation by price coordination over the sites (sites couple only through
    transfers), to a certified gap `tol`: `optsched.oracle.decompose.solve_decomposed`,
    the site problems fanned out on `workers` CPUs or the cluster at `ray_address`."""
    from optsched.oracle.decompose import solve_decomposed as decomposed

    return decomposed(compiled(scenario_or_compiled), workers=workers,
                      ray_address=ray_address, tol=tol, max_iter=max_iter, progress=progress,
                      cluster_size=cluster_size)


def evaluate(scenario: Any, schedule: Schedule, *, milp: bool = False,
             tol: float = 1e-6) -> Evaluation:
    """Score a schedule with the one evaluator: utility, its terms, jobs, violations."""
    from optsched.evaluator import evaluate as evaluate_schedule

    return evaluate_schedule(compiled(scenario), schedule, milp=milp, tol=tol)


def rollout(scenario: Any, policy: str | Path | Policy, day: int | None = None,
            seed: int | None = None) -> Run:
    """Play a policy (a name, `learned`, a `.pt` path, or a policy object) through one day
    and score it. The same policy, day and seed give the same result everywhere. `seed`
    (default 0) seeds a policy given by name; an object carries its own (`.seed`)."""
    from optsched.policies import get_policy
    from optsched.policies import rollout as play

    if isinstance(policy, (str, Path)):
        pol = get_policy(str(policy), 0 if seed is None else seed)
    elif not hasattr(policy, "plan") and not hasattr(policy, "act"):
        raise ScenarioError("policy", "must be a name, a .pt path or a policy object",
                            type(policy).__name__)
    elif seed is not None and getattr(policy, "seed", seed) != seed:
        raise ScenarioError("seed", "a policy object carries its own seed (set its .seed, "
                            "or give the policy by name)", seed)
    else:
        pol = policy
    schedule, ev, _ = play(pol, [compiled(scenario, day)])[0]
    return Run(schedule, ev)


def days_of(scenario: Any, days: str | Sequence[int | None] | None
            ) -> list[tuple[Any, Compiled]]:
    """(label, compiled day) pairs: `days` is a day spec (optsched.days), a list of day
    numbers, or None for the scenario itself; a list of Compiled is taken as it is."""
    from optsched.days import day_list
    from optsched.scenario import Compiled

    if isinstance(scenario, (list, tuple)) and all(isinstance(c, Compiled) for c in scenario):
        labels = list(range(len(scenario))) if days is None else \
            list(days) if isinstance(days, (list, tuple, range)) else None
        if labels is None or len(labels) != len(scenario) or \
                len(set(map(repr, labels))) != len(labels):
            raise ScenarioError("days", f"labels the {len(scenario)} compiled days: one "
                                "distinct label each, in a list", days)
        return list(zip(labels, scenario, strict=True))
    return [(d, compiled(scenario, d)) for d in day_list(days, scenario)]


def compare(scenario: Any, policies: Sequence[str], days: Any = None, **options
            ) -> pd.DataFrame:
    """THE policy-versus-oracle table: one row per (policy, day) with utility,
    oracle_utility, gap, captured (share of the oracle's gain over local-fixed), every
    utility term (`term_*`), jobs (`jobs_*`), violations, quality, steps, grid energy,
    emissions and seconds. Options as for `compare_runs`."""
    return compare_runs(scenario, policies, days, **options).table


def compare_runs(scenario: Any, policies: Sequence[str], days: Any = None, *,
                 oracle: bool = True, backend: str = "highs",
                 cache: Path | None = DEFAULT_CACHE, ablations: Sequence[str] = (),
                 ablated: str | None = None, levers: Sequence[str] = (), seed: int = 0,
                 progress: Progress = None, workers: int | None = None,
                 ray_address: str | None = None) -> Comparison:
    """`compare`'s table and the runs behind it. `oracle`: add the oracle's row and the
    gap (solved with `backend`, read from or written to `cache`); `ablations`: levers
    removed from the scenario every policy plays; `ablated` with `levers`: extra rows
    `ablated [lever]`, that policy on the scenario without one lever at a time (scored
    against the full oracle); `seed`: the policies' randomness (mpc-noisy). `workers` /
    `ray_address`: every (policy, day) and every day's oracle is one task of
    optsched.parallel.fan_out (None: the enclosing parallel.runtime block's, else
    serial); the numbers are the serial run's."""
    from optsched.options import check_levers
    from optsched.parallel import check_workers, fan_out
    from optsched.policies import get_policy

    ablations, levers = check_levers(ablations), check_levers(levers)
    settings = check_workers(workers, ray_address)
    if isinstance(policies, (str, Path)):       # one name, not its letters ("g", "r", ...)
        policies = [policies]
    if not all(isinstance(p, (str, Path)) for p in policies):
        raise ScenarioError("policies", "must be policy names or .pt paths", list(policies))
    names = list(dict.fromkeys(str(p) for p in policies))
    plays = {n: (get_policy(n, seed), list(ablations)) for n in names}  # bad names fail first
    if ablated is not None:
        plays |= {f"{ablated} [{lv}]": (get_policy(ablated, seed), [lv]) for lv in levers}
    if cache is not None:
        cache = Path(cache).resolve()                   # the same folder from any worker
    pairs = days_of(scenario, days)
    for pol, _ in plays.values():          # a day a policy cannot play fails before any work
        for _, c in pairs if hasattr(pol, "check") else ():
            pol.check(c)
    # local-fixed on the full scenario is the baseline of `captured`: its own task only
    # when no play gives it already.
    baseline = oracle and (bool(ablations) or "local-fixed" not in plays)
    from optsched.scenario.history import identify

    tasks = []
    for day, c in pairs:
        who = identify(c)
        if oracle:
            tasks.append(_Task("oracle", day, c, backend=backend, cache=cache))
        tasks += [_Task(name, day, c, pol, tuple(removed), who=who)
                  for name, (pol, removed) in plays.items()]
        if baseline:
            tasks.append(_Task(_BASELINE, day, c, get_policy("local-fixed"), who=who))
    results = fan_out(_run_task, tasks, settings.workers, settings.address,
                      describe=_Task.label, progress=progress)
    done = {(t.name, t.day): r for t, r in zip(tasks, results, strict=True)}
    rows, runs = [], {}
    for day, c in pairs:
        day_rows = []
        for name in (["oracle"] if oracle else []) + list(plays):
            run, seconds, objective = done[name, day]
            runs[name, day] = run
            day_rows.append(_row(name, day, run.evaluation, seconds, c.T))
            if name == "oracle":     # the solver's objective (checked against the evaluator
                day_rows[-1]["utility"] = objective      # by the cache): gap 0, captured 1
        if oracle:
            base = done[_BASELINE if baseline else "local-fixed", day][0]
            for row in day_rows:
                _score(row, done["oracle", day][2], base.evaluation.utility)
        rows += day_rows
    return Comparison(_frame(rows), runs, dict(pairs))


_BASELINE = "local-fixed (baseline)"


@dataclass(frozen=True)
class _Task:
    """One unit of `compare_runs`: the oracle of a day, or a policy played on a day (with
    levers removed). Pickled to a Ray worker when fanned out."""

    name: str
    day: Any
    c: Compiled
    policy: Policy | None = None
    removed: tuple[str, ...] = ()
    backend: str = "highs"
    cache: Path | None = None
    # (family, day) of c as the driver knows it: a worker process must know it too, or
    # the day's forecasts from earlier days (optsched/scenario/history.py) are lost
    who: tuple[str, int] | None = None

    def label(self) -> str:
        return self.name + ("" if self.day is None else f", day {self.day}")


def _run_task(task: _Task) -> tuple[Run, float, float]:
    """(run, seconds, utility) of a task; the oracle's utility is its solver objective."""
    if task.policy is None:
        from optsched.oracle.cache import cached_oracle

        hit = cached_oracle(task.c, task.cache, task.backend)
        return Run(hit.schedule, hit.evaluation), hit.seconds, hit.objective
    from optsched.scenario import history
    from optsched.scenario.ablations import ablate

    if task.who is not None:
        history.remember_arrays(task.c.price, task.c.gpus, *task.who)
    t0 = time.perf_counter()
    run = rollout(ablate(task.c, list(task.removed)) if task.removed else task.c, task.policy)
    return run, time.perf_counter() - t0, run.evaluation.utility


def evaluate_policy(scenario: Any, policy: str, days: Any = None, *, oracle: bool = True,
                    backend: str = "highs", cache: Path | None = DEFAULT_CACHE,
                    ablations: Sequence[str] = (), seed: int = 0, progress: Progress = None,
                    workers: int | None = None, ray_address: str | None = None
                    ) -> tuple[dict, list[Evaluation]]:
    """One policy over days, as `optsched evaluate` reports it: (summary, evaluations).
    The summary holds mean utility, terms and jobs, the mean oracle utility, the median
    gap (with its interquartile range) and captured share, and one entry per day.
    `workers` / `ray_address` as for `compare_runs`."""
    import numpy as np

    if not isinstance(policy, (str, Path)):
        raise ScenarioError("policy", "must be one policy name or .pt path (compare takes "
                            "several)", policy)
    policy = str(policy)
    comp = compare_runs(scenario, [policy], days, oracle=oracle, backend=backend,
                        cache=cache, ablations=ablations, seed=seed, progress=progress,
                        workers=workers, ray_address=ray_address)
    rows = comp.table[comp.table.policy == policy].to_dict("records")
    evs = [comp.runs[policy, r["day"]].evaluation for r in rows]
    keep = ("utility", "terms", "jobs", "mean_quality", "mean_steps", "feasible",
            "violation_counts")
    per_day = [{"day": r["day"], **{k: ev.to_dict()[k] for k in keep},
                **{k: _none(r[k]) for k in ("oracle_utility", "gap", "captured")}}
               for r, ev in zip(rows, evs, strict=True)]
    summary = {
        "scenario": str(scenario) if isinstance(scenario, (str, Path)) else None,
        "policy": policy, "ablations": list(ablations),
        "utility": float(np.mean([e.utility for e in evs])),
        "terms": {k: float(np.mean([e.terms[k] for e in evs])) for k in evs[0].terms},
        "jobs": {k: float(np.mean([e.jobs[k] for e in evs])) for k in evs[0].jobs},
        "feasible": all(e.feasible for e in evs),
        **_oracle_summary(per_day, oracle), "days": per_day}
    return summary, evs


def _none(v):
    """NaN (no value) as None, for JSON."""
    return None if v != v else v


def _oracle_summary(per_day: list[dict], oracle: bool) -> dict:
    import numpy as np

    if not oracle:
        return {"oracle_utility": None, "gap": None, "gap_iqr": None, "captured": None}
    # A day with nothing to gain (no jobs, no revenue) has no gap (evaluator.gap: None).
    gaps = np.array([g for r in per_day if (g := r["gap"]) is not None and g == g])
    cap = [r["captured"] for r in per_day if r["captured"] is not None]
    return {"oracle_utility": float(np.mean([r["oracle_utility"] for r in per_day])),
            "gap": float(np.median(gaps)) if gaps.size else None,
            "gap_iqr": [float(np.quantile(gaps, 0.25)), float(np.quantile(gaps, 0.75))]
            if gaps.size else None,
            "captured": float(np.median(cap)) if cap else None}


def _row(policy: str, day, ev: Evaluation, seconds: float, T: int) -> dict:
    from optsched.evaluator import TERMS

    nan = float("nan")
    return {
        "policy": policy, "day": day, "utility": ev.utility, "oracle_utility": nan,
        "gap": nan, "captured": nan, **{f"term_{k}": ev.terms[k] for k in TERMS},
        **{f"jobs_{k}": v for k, v in ev.jobs.items()},
        "violations": sum(ev.violation_counts.values()), "feasible": ev.feasible,
        "mean_quality": ev.mean_quality, "mean_steps": ev.mean_steps,
        "grid_kwh": sum(s["grid_import_kwh"] for s in ev.sites.values()),
        "emissions_kg": sum(s["emissions_kg"] for s in ev.sites.values()),
        "seconds": seconds, "decision_s_per_slot": seconds / T,
    }


def _score(row: dict, u_oracle: float, u_base: float) -> None:
    from optsched.evaluator import captured, gap

    share = captured(row["utility"], u_oracle, u_base)
    row.update(oracle_utility=u_oracle, gap=gap(row["utility"], u_oracle),
               captured=float("nan") if share is None else share)


def _frame(rows: list[dict]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows)


def report(scenario: str, days: Any, policies: Sequence[str], out: Path | str,
           cache: Path | None = DEFAULT_CACHE, *, metrics: Sequence[Path] = (),
           ablations: Sequence[str] = (), ablated: str | None = None,
           progress: Progress = None, workers: int | None = None,
           ray_address: str | None = None, simulate: bool = True) -> pd.DataFrame:
    """`optsched report`: optsched.reporting.report.build_report (its table is `compare`'s),
    its (policy, day) tasks fanned out on `workers` CPUs or the cluster at `ray_address`."""
    from optsched.days import day_list as selected
    from optsched.options import check_out
    from optsched.parallel import runtime
    from optsched.reporting.report import build_report

    out = check_out(out)                       # a str or a file failed after all the work
    day_list = selected(days, scenario)
    with runtime(workers, ray_address):
        return build_report(scenario, day_list, list(policies), out, cache,
                            progress=progress, metrics=list(metrics),
                            ablations=tuple(ablations), ablated=ablated, simulate=simulate)


def sweep(scenario: str, days: Any, param: str, values: Sequence, policies: Sequence[str],
          out: Path | str | None = None, cache: Path | None = DEFAULT_CACHE, *,
          progress: Progress = None, workers: int | None = None,
          ray_address: str | None = None) -> pd.DataFrame:
    """`optsched sweep`: optsched.reporting.sweep.sweep, every variant's (policy, day) tasks
    fanned out on `workers` CPUs or the cluster at `ray_address` (one runtime for all)."""
    from optsched.days import day_list as selected
    from optsched.options import check_out
    from optsched.parallel import runtime
    from optsched.reporting.sweep import sweep as run_sweep

    out = check_out(out)
    day_list = selected(days, scenario)
    if not len(values):
        raise ScenarioError("--values", "give at least one value", list(values))
    with runtime(workers, ray_address):
        return run_sweep(scenario, day_list, param, list(values), list(policies), out, cache,
                         progress=progress)


def simulate(scenario: str | Path, policy: str, days: Any = None, seed: int = 0, *,
             workers: int | None = None, ray_address: str | None = None,
             progress: Progress = None, **options) -> list:
    """`optsched simulate`: optsched.sim.simulate_days, one task per day (a day's result
    depends only on (seed, day), so the days may run anywhere); `options` as
    simulate_days takes them (burstiness, counts, cold_start)."""
    from functools import partial

    from optsched.days import day_list as selected
    from optsched.parallel import check_workers, fan_out
    from optsched.sim import simulate_days

    settings = check_workers(workers, ray_address)
    day_list = selected(days, scenario)
    if settings.serial:                               # one batch, as it always was
        return simulate_days(scenario, policy, day_list, seed, **options)
    return fan_out(partial(_simulate_day, scenario, policy, seed, options), day_list,
                   settings.workers, settings.address,
                   describe=lambda d: f"{policy}, day {d}", progress=progress)


def _simulate_day(scenario, policy: str, seed: int, options: dict, day):
    from optsched.sim import simulate_days

    return simulate_days(scenario, policy, [day], seed, **options)[0]


def build_scenario(day: str, base: str | Path = "jemas-3", **sources) -> Scenario:
    """A scenario for a real calendar day (YYYY-MM-DD) from CSV files: `base` (an embedded
    family or a TOML file) gives everything but the day's series; `sources` as
    optsched.data.build.build_day takes them (data_dir, prices, weather, carbon, pv_kwp,
    trace, price_clock, pattern)."""
    import datetime as dt

    from optsched.scenario import build_scenario as build

    try:
        date = dt.date.fromisoformat(day)
    except ValueError:
        raise ScenarioError("--day", "expected a date YYYY-MM-DD", day) from None
    return build(date, base, **sources)


def make_env(scenario: Any = "jemas-3", days: Any = None, **options) -> OptschedEnv:
    """A Gymnasium env (one copy, one day per episode) on a scenario's days: for the
    embedded family `days` is a day spec or list (training days by default), a TOML file
    is its one horizon. `options` go to OptschedEnv (reward, reward_scale, ...)."""
    from optsched.env.bank import DayBank
    from optsched.env.gym import OptschedEnv, default_bank
    from optsched.scenario import is_embedded

    if isinstance(scenario, (str, Path)) and is_embedded(scenario):
        if days is None:
            if str(scenario) == "jemas-3":
                return OptschedEnv(default_bank(), **options)
            days = "train:16"                    # the family's first 16 training days
        return OptschedEnv(DayBank.from_family([d for d, _ in days_of(scenario, days)],
                                               str(scenario)), **options)
    pairs = days_of(scenario, days)
    return OptschedEnv(DayBank.from_compiled([c for _, c in pairs], [d for d, _ in pairs]),
                       **options)


__all__ = ["Comparison", "DaySolution", "Run", "build_scenario", "compare", "compare_runs",
           "compiled", "days_of", "evaluate", "evaluate_policy", "load_scenario", "make_env",
           "report", "rollout", "simulate", "solve", "solve_days", "solve_decomposed",
           "sweep"]
