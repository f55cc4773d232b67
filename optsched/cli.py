"""The `optsched` command line: thin commands over the library (no logic of its own).

Exit codes: 0 success, 2 bad input or arguments (one line on stderr), 1 internal failure.
`--json` prints one JSON object on stdout; progress and tables go to stderr.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from optsched.errors import OptschedError, ScenarioError

# Oracle solutions by scenario contents, shared by evaluate, report and sweep.
ORACLE_CACHE = Path(".optsched-cache")

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="Energy-aware scheduling of diffusion-model jobs across data centres.")
scenario_app = typer.Typer(no_args_is_help=True, help="Show, validate, build scenarios.")
app.add_typer(scenario_app, name="scenario")
err = Console(stderr=True)


def _out() -> Console:
    return Console(width=None if sys.stdout.isatty() else 150)

ScenarioArg = Annotated[str, typer.Argument(help="TOML file or embedded name (jemas-3).")]
DayOpt = Annotated[int | None, typer.Option("--day", help="Day of an embedded family.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
DaysOpt = Annotated[str, typer.Option("--days", help="test:N, A..B, A,B")]
PoliciesOpt = Annotated[list[str] | None, typer.Option("--policy", help="Repeatable.")]
CacheOpt = Annotated[Path, typer.Option("--cache", help="Oracle cache folder.")]


_JSON_FD: int | None = None      # the real stdout while --json routes everything else away


def _emit_json(obj: dict) -> None:
    text = json.dumps(obj, default=_json_default) + "\n"
    if _JSON_FD is None:
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    os.write(_JSON_FD, text.encode())


def _route_stdout_to_stderr() -> None:
    """With --json, stdout carries one JSON object only: solver banners (HiGHS prints one
    from C++) and anything else written to fd 1 go to stderr instead."""
    global _JSON_FD
    sys.stdout.flush()
    _JSON_FD = os.dup(1)
    os.dup2(2, 1)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _table(title: str, rows: list[dict]) -> Table:
    table = Table(title=title, title_justify="left")
    for key in rows[0] if rows else []:
        table.add_column(str(key), justify="right" if isinstance(rows[0][key], (int, float))
                         else "left")
    for row in rows:
        table.add_row(*(f"{v:g}" if isinstance(v, float) else str(v) for v in row.values()))
    return table


def parse_days(spec: str | None, source: str) -> list[int | None]:
    """`A..B` (inclusive), `A,B,C`, `test`, `train`, or `test:N` (first N test days)."""
    from optsched.scenario import is_embedded

    if spec is None:
        return [None]
    if not is_embedded(source):
        raise ScenarioError("--days", "only applies to embedded scenarios", spec)
    from optsched.scenario import jemas3

    try:
        if spec.startswith(("test", "train")):
            name, _, count = spec.partition(":")
            days = jemas3.test_days() if name == "test" else jemas3.train_days()
            return list(days[: int(count)] if count else days)
        if ".." in spec:
            a, b = spec.split("..")
            return list(range(int(a), int(b) + 1))
        return [int(d) for d in spec.split(",")]
    except ValueError:
        raise ScenarioError("--days", "expected A..B, A,B,C, test[:N] or train[:N]",
                            spec) from None


@scenario_app.command("show")
def scenario_show(scenario: ScenarioArg, day: DayOpt = None, json_out: JsonOpt = False):
    """Print a scenario's summary: horizon, models, sites, classes."""
    from optsched.scenario import compile_scenario, get_scenario
    from optsched.scenario.summary import summarize

    sc = get_scenario(scenario, day)
    summary = summarize(sc, compile_scenario(sc))
    if json_out:
        _emit_json(summary)
        return
    out = _out()
    out.print(f"[bold]{summary['name']}[/bold]: {summary['description']}")
    hz, jobs = summary["horizon"], summary["jobs"]
    out.print(f"{hz['slots']} slots of {hz['slot_minutes']} min; steps {hz['steps']}; "
              f"clocks {hz['clocks']}; {hz['options_per_class']} options per class; "
              f"carbon price ${hz['carbon_price']:g}/t")
    out.print(f"jobs: {jobs['per_day']:,.0f} per horizon, peak {jobs['peak_per_slot']:,.0f} "
              f"per slot, mean {jobs['mean_per_slot']:,.0f}")
    for key in ("models", "sites", "classes"):
        out.print(_table(key, summary[key]))


@scenario_app.command("validate")
def scenario_validate(scenario: ScenarioArg, day: DayOpt = None, json_out: JsonOpt = False):
    """Load and check a scenario; exit 2 with the first problem, naming key and value."""
    from optsched.scenario import get_scenario

    sc = get_scenario(scenario, day)
    info = {"valid": True, "name": sc.name, "sites": len(sc.sites),
            "classes": len(sc.classes), "slots": sc.horizon.slots}
    if json_out:
        _emit_json(info)
    else:
        _out().print(f"ok: {sc.name} ({info['sites']} sites, {info['classes']} classes, "
                        f"{info['slots']} slots)")


@scenario_app.command("export")
def scenario_export(scenario: ScenarioArg,
                    out: Annotated[Path, typer.Option("--out", help="TOML file to write.")],
                    day: DayOpt = None):
    """Write a scenario (e.g. one day of an embedded family) as a self-contained TOML."""
    from optsched.scenario import get_scenario, save_scenario

    save_scenario(get_scenario(scenario, day), out)
    err.print(f"wrote {out}")


def _pairs(values: list[str] | None, key: str, cast=Path) -> dict:
    out = {}
    for item in values or []:
        site, sep, value = item.partition("=")
        if not sep or not site or not value:
            raise ScenarioError(key, "expected SITE=VALUE", item)
        try:
            out[site] = cast(value)
        except ValueError:
            raise ScenarioError(key, "bad value", item) from None
    return out


@scenario_app.command("build")
def scenario_build(
    day: Annotated[str, typer.Option("--day", help="Calendar day, YYYY-MM-DD.")],
    out: Annotated[Path, typer.Option("--out", help="TOML file to write.")],
    base: Annotated[str, typer.Option("--base", help="Embedded family or TOML.")] = "jemas-3",
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Folder with prices/, weather/, carbon/ as in shared/data.")] = None,
    prices: Annotated[list[str] | None, typer.Option("--prices", help="SITE=CSV")] = None,
    weather: Annotated[list[str] | None, typer.Option("--weather", help="SITE=CSV")] = None,
    carbon: Annotated[list[str] | None, typer.Option("--carbon", help="SITE=CSV")] = None,
    pv_kwp: Annotated[list[str] | None, typer.Option("--pv-kwp", help="SITE=kWp")] = None,
    trace: Annotated[Path | None, typer.Option("--trace", help="Request trace CSV.")] = None,
    price_clock: Annotated[str, typer.Option(
        "--price-clock", help="auto | utc | local-is-utc (see data card)")] = "auto",
):
    """Build a scenario for a real calendar day from CSV files (written as TOML)."""
    import tomllib

    from optsched.data.build import build_day
    from optsched.scenario import is_embedded, save_scenario, scenario_from_dict

    try:
        date = dt.date.fromisoformat(day)
    except ValueError:
        raise ScenarioError("--day", "expected a date YYYY-MM-DD", day) from None
    if price_clock not in ("auto", "utc", "local-is-utc"):
        raise ScenarioError("--price-clock", "must be auto, utc or local-is-utc", price_clock)
    if is_embedded(base):
        from optsched.scenario.jemas3 import base as family_base
        raw, base_dir = family_base(), Path(".")
    else:
        path = Path(base)
        if not path.is_file():
            raise ScenarioError("--base", "no such file or embedded scenario", base)
        raw, base_dir = tomllib.loads(path.read_text()), path.parent
        raw.setdefault("name", path.stem)
    built = build_day(raw, date, data_dir=data_dir, prices=_pairs(prices, "--prices"),
                      weather=_pairs(weather, "--weather"), carbon=_pairs(carbon, "--carbon"),
                      pv_kwp=_pairs(pv_kwp, "--pv-kwp", float), trace=trace,
                      price_clock=price_clock)
    sc = scenario_from_dict(built, base_dir)
    save_scenario(sc, out)
    err.print(f"wrote {out}: {sc.name}")


AblateOpt = Annotated[list[str] | None, typer.Option(
    "--ablate", help="Remove a lever: no-transfer, fixed-steps, no-dvfs, no-renewables, "
                     "no-battery (repeatable).")]


def _check_ablations(names: list[str] | None) -> list[str]:
    from optsched.scenario.ablations import ABLATIONS

    for name in names or []:
        if name not in ABLATIONS:
            raise ScenarioError("--ablate", f"must be one of {', '.join(ABLATIONS)}", name)
    return list(names or [])


BackendOpt = Annotated[str, typer.Option("--backend",
                                         help="pyomo | cvxpy | highs | cvxpy-clarabel")]


@app.command("solve")
def solve_cmd(
    scenario: ScenarioArg,
    day: DayOpt = None,
    backend: BackendOpt = "pyomo",
    relax: Annotated[bool, typer.Option("--relax", help="Solve the LP relaxation.")] = False,
    time_limit: Annotated[float | None, typer.Option("--time-limit", help="Seconds.")] = None,
    mip_gap: Annotated[float, typer.Option("--mip-gap", help="Relative MIP gap.")] = 0.001,
    out: Annotated[Path | None, typer.Option("--out", help="Folder: schedule + plots.")] = None,
    ablations: AblateOpt = None,
    json_out: JsonOpt = False,
):
    """The offline oracle (perfect foresight): MODEL.md as a MILP or its LP relaxation."""
    from optsched.errors import InfeasibleError
    from optsched.oracle import BACKENDS, solve
    from optsched.scenario import compile_scenario, get_scenario

    if backend not in BACKENDS:
        raise ScenarioError("--backend", f"must be one of {', '.join(BACKENDS)}", backend)
    if time_limit is not None and time_limit <= 0:
        raise ScenarioError("--time-limit", "must be > 0 seconds", time_limit)
    if backend == "cvxpy-clarabel" and not relax:
        raise ScenarioError("--backend", "cvxpy-clarabel solves the LP only: add --relax",
                            backend)
    from optsched.scenario.ablations import ablate

    ablations = _check_ablations(ablations)
    sc = get_scenario(scenario, day)
    c = ablate(compile_scenario(sc), ablations)
    with err.status(f"solving {sc.name} ({backend}, {'LP' if relax else 'MILP'})"):
        sol = solve(c, backend, relax, time_limit, mip_gap)
    if sol.schedule is None:
        raise InfeasibleError(f"oracle {sol.status}: {sol.diagnosis}")
    result = {"scenario": sc.name, "ablations": ablations, **sol.to_dict()}
    if out is not None:
        _write_schedule(c, sol, out, sc.name)
        (out / "solution.json").write_text(json.dumps(result, indent=1) + "\n")
    if json_out:
        _emit_json(result)
        return
    console = _out()
    gap = f", MIP gap {sol.mip_gap:.2e}" if sol.mip_gap is not None else ""
    console.print(f"[bold]oracle[/bold] {sol.backend} {'LP' if relax else 'MILP'} on "
                  f"{sc.name}: {sol.status}{gap}; utility [bold]${sol.objective:,.2f}[/bold] "
                  f"(evaluator ${sol.evaluation.utility:,.2f}); {sol.n_vars:,} variables, "
                  f"{sol.n_cons:,} constraints; build {sol.build_s:.2f} s, "
                  f"solve {sol.solve_s:.2f} s")
    _print_terms(console, sol.evaluation.terms)
    console.print("jobs: " + ", ".join(f"{k} {v:,.0f}" for k, v in
                                       sol.evaluation.jobs.items()))
    console.print(f"mean quality {sol.evaluation.mean_quality:.4f}, mean steps "
                  f"{sol.evaluation.mean_steps:.1f}")


def _write_schedule(c, sol, out: Path, title: str) -> None:
    """Schedule as Parquet and CSV (jobs in long form, sites per slot) plus plots."""
    from optsched.report.plots import save_schedule_plots

    out.mkdir(parents=True, exist_ok=True)
    jobs, sites = sol.schedule.frames(c)
    for name, frame in (("jobs", jobs), ("sites", sites)):
        frame.to_parquet(out / f"{name}.parquet", index=False)
        frame.to_csv(out / f"{name}.csv", index=False)
    sol.evaluation.slots_frame().to_csv(out / "slots.csv")
    save_schedule_plots(c, sol.schedule, sol.evaluation, out, title)



def _evaluate_days(scenario: str, policy: str, days: list[int | None], oracle: str | None,
                   ablations: list[str] = ()) -> list[dict]:
    """Per day: the policy's evaluation (rolled through the environment, all days in one
    batch), and with `oracle` (a backend) the oracle's MILP utility, the gap to it and the
    share of the oracle's gain over local-fixed captured."""
    from optsched.evaluate import captured, gap
    from optsched.policies import get_policy, rollout
    from optsched.scenario import compile_scenario, get_scenario
    from optsched.scenario.ablations import ablate

    pol = get_policy(policy)
    days_c = [compile_scenario(get_scenario(scenario, day)) for day in days]
    with err.status(f"rolling {policy} over {len(days_c)} day(s)"):
        rolled = rollout(pol, [ablate(c, ablations) for c in days_c])
        baseline = rolled if policy == "local-fixed" and not ablations else rollout(
            get_policy("local-fixed"), days_c)
    results = []
    for day, c, (_, ev, _), (_, ev_lf, _) in zip(days, days_c, rolled, baseline,
                                                 strict=True):
        row: dict = {"day": day, "evaluation": ev, "oracle_utility": None, "gap": None,
                     "captured": None}
        if oracle is not None:
            from optsched.report.report import cached_oracle

            with err.status(f"oracle for day {day}"):
                u_o = cached_oracle(c, ORACLE_CACHE, oracle)[1]
            u_lf = ev_lf.utility
            row.update(oracle_utility=u_o, gap=gap(ev.utility, u_o),
                       captured=captured(ev.utility, u_o, u_lf))
        results.append(row)
    return results


@app.command("evaluate")
def evaluate_cmd(
    scenario: ScenarioArg,
    policy: Annotated[str, typer.Option("--policy", help="Policy name.")] = "local-fixed",
    day: DayOpt = None,
    days: Annotated[str | None, typer.Option("--days", help="A..B, A,B, test[:N]")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for CSV results.")] = None,
    oracle: Annotated[bool, typer.Option("--oracle/--no-oracle",
                                         help="Solve the oracle alongside.")] = True,
    oracle_backend: Annotated[str, typer.Option("--oracle-backend")] = "highs",
    ablations: AblateOpt = None,
    json_out: JsonOpt = False,
):
    """Roll a policy over a scenario and score it with the evaluator (itemised), with the
    oracle's utility and the gap alongside."""
    if day is not None and days is not None:
        raise ScenarioError("--days", "give --day or --days, not both", days)
    day_list = [day] if day is not None else parse_days(days, scenario)
    if day is not None:
        from optsched.scenario import get_scenario
        get_scenario(scenario, day)          # validates --day before any work
    from optsched.oracle import BACKENDS

    if oracle_backend not in BACKENDS:
        raise ScenarioError("--oracle-backend", f"must be one of {', '.join(BACKENDS)}",
                            oracle_backend)
    ablations = _check_ablations(ablations)
    results = _evaluate_days(scenario, policy, day_list, oracle_backend if oracle else None,
                             ablations)
    per_day = [{"day": r["day"], **_eval_json(r["evaluation"]),
                **{k: r[k] for k in ("oracle_utility", "gap", "captured")}} for r in results]
    evs = [r["evaluation"] for r in results]
    summary = {
        "scenario": scenario, "policy": policy, "ablations": ablations,
        "utility": float(np.mean([e.utility for e in evs])),
        "terms": {k: float(np.mean([e.terms[k] for e in evs])) for k in evs[0].terms},
        "jobs": {k: float(np.mean([e.jobs[k] for e in evs])) for k in evs[0].jobs},
        "feasible": all(e.feasible for e in evs),
        **_oracle_summary(results),
        "days": per_day,
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for r in results:
            tag = "" if r["day"] is None else f"_day{r['day']:03d}"
            r["evaluation"].slots_frame().to_csv(out / f"slots{tag}.csv")
            r["evaluation"].sites_frame().to_csv(out / f"sites{tag}.csv")
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if json_out:
        _emit_json(summary)
        return
    _print_evaluation(summary, evs)


def _oracle_summary(results: list[dict]) -> dict:
    """Mean oracle utility; median (and IQR) gap and captured share over days."""
    if any(r["oracle_utility"] is None for r in results):
        return {"oracle_utility": None, "gap": None, "captured": None}
    gaps = np.array([r["gap"] for r in results])
    cap = [r["captured"] for r in results if r["captured"] is not None]
    return {"oracle_utility": float(np.mean([r["oracle_utility"] for r in results])),
            "gap": float(np.median(gaps)),
            "gap_iqr": [float(np.quantile(gaps, 0.25)), float(np.quantile(gaps, 0.75))],
            "captured": float(np.median(cap)) if cap else None}


def _eval_json(ev) -> dict:
    d = ev.to_dict()
    return {k: d[k] for k in ("utility", "terms", "jobs", "mean_quality", "mean_steps",
                              "feasible", "violation_counts")}


def _print_terms(console: Console, terms: dict[str, float]) -> None:
    table = Table(title="utility terms ($; utility = revenue - the rest)", title_justify="left")
    table.add_column("term")
    table.add_column("$", justify="right")
    table.add_column("% of revenue", justify="right")
    rev = terms["revenue"] or 1.0
    for k, v in terms.items():
        table.add_row(k, f"{v:,.4f}", f"{100 * v / rev:.3f}")
    console.print(table)


def _print_evaluation(summary: dict, evs: list) -> None:
    out = _out()
    n = len(evs)
    out.print(f"[bold]{summary['policy']}[/bold] on {summary['scenario']}"
              f"{f' ({n} days, means)' if n > 1 else ''}: utility "
              f"[bold]${summary['utility']:,.2f}[/bold]"
              f"{'' if summary['feasible'] else '  [red]INFEASIBLE[/red]'}")
    _print_terms(out, summary["terms"])
    jobs = summary["jobs"]
    out.print("jobs: " + ", ".join(f"{k} {v:,.0f}" for k, v in jobs.items()))
    if n == 1:
        ev = evs[0]
        out.print(f"mean quality {ev.mean_quality:.4f}, mean steps {ev.mean_steps:.1f}")
        metrics = next(iter(ev.sites.values()))
        out.print(_table("per site", [{"": m, **{s: round(d[m], 3) for s, d in ev.sites.items()}}
                                      for m in metrics]))
        for v in ev.violations[:10]:
            out.print(f"[red]violation[/red] {v}")
    if summary["oracle_utility"] is None:
        out.print("oracle: not solved (--no-oracle)")
    else:
        out.print(f"oracle (MILP, perfect foresight): ${summary['oracle_utility']:,.2f}; "
                  f"gap to it [bold]{100 * summary['gap']:.2f}%[/bold]"
                  f"{' (median over days)' if n > 1 else ''}; share of the oracle's gain "
                  f"over local-fixed captured: "
                  f"{100 * summary['captured']:.1f}%" if summary["captured"] is not None
                  else "")


@app.command("train")
def train_cmd(
    algo: Annotated[str, typer.Option("--algo", help="sac | td3 | ppo | bc")
                    ] = "sac",
    shaping: Annotated[str, typer.Option("--shaping",
                                         help="none | mlp | diffusion | potential")] = "none",
    reward: Annotated[str, typer.Option("--reward", help="settlement | dense | episode")
                      ] = "settlement",
    action: Annotated[str, typer.Option(
        "--action", help="dispatch (waiting values and battery over the per-slot "
        "dispatch) | dispatch-battery (battery only) | direct (every routing, step, clock "
        "and battery choice)")] = "dispatch-battery",
    steps: Annotated[int, typer.Option("--steps", help="Environment steps.")] = 200_000,
    reward_norm: Annotated[bool, typer.Option(
        "--reward-norm", help="Divide rewards by the running std of the return.")] = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    num_envs: Annotated[int, typer.Option("--num-envs")] = 16,
    updates_per_step: Annotated[int, typer.Option(
        "--updates-per-step", help="Gradient updates per batched env step.")] = 4,
    eta: Annotated[float, typer.Option("--eta", help="Shaping weight.")] = 0.4,
    diffusion_steps: Annotated[int, typer.Option("--diffusion-steps")] = 5,
    latent: Annotated[int, typer.Option("--latent")] = 128,
    days: Annotated[str, typer.Option("--days", help="Training days (train, train:N, A..B)")
                    ] = "train",
    out: Annotated[Path, typer.Option("--out")] = Path("runs/sac"),
    resume: Annotated[bool, typer.Option("--resume")] = False,
):
    """Train a learned scheduler on jemas-3 training days (checkpoints, metrics CSV)."""
    from rich.progress import Progress

    from optsched.env.core import REWARD_MODES
    from optsched.learn.train import ACTIONS, SHAPING, TrainConfig, train

    if algo not in ("sac", "td3", "ppo", "bc"):
        raise ScenarioError("--algo", "must be sac, td3, ppo or bc", algo)
    if algo == "ppo" and shaping != "none":
        raise ScenarioError("--shaping", "PPO trains on the environment's reward only "
                            "(none)", shaping)
    if shaping not in SHAPING:
        raise ScenarioError("--shaping", f"must be one of {', '.join(SHAPING)}", shaping)
    if reward not in REWARD_MODES:
        raise ScenarioError("--reward", f"must be one of {', '.join(REWARD_MODES)}", reward)
    if action not in ACTIONS:
        raise ScenarioError("--action", f"must be one of {', '.join(ACTIONS)}", action)
    for key, value in (("--steps", steps), ("--num-envs", num_envs),
                       ("--updates-per-step", updates_per_step),
                       ("--diffusion-steps", diffusion_steps), ("--latent", latent)):
        if value < 1:
            raise ScenarioError(key, "must be >= 1", value)
    from optsched.scenario import jemas3

    day_list = parse_days(days, "jemas-3")
    held_out = [d for d in day_list if jemas3.is_test_day(d)]
    if held_out:
        raise ScenarioError("--days", "held-out test days may not be trained on", held_out)
    if algo == "bc":
        from optsched.learn.bc import train_bc

        with err.status(f"behaviour cloning of the oracle on {len(day_list)} training days"):
            info = train_bc(day_list, out, seed)
        err.print(f"done: {info['slots']:,} demonstrated slots, final loss "
                  f"{info['final_loss']:.4f}; policy at {out / 'policy.pt'}")
        return
    cfg = TrainConfig(algo=algo, action=action, shaping=shaping, reward=reward, steps=steps,
                      seed=seed, reward_norm=reward_norm,
                      num_envs=num_envs, updates_per_step=updates_per_step, eta=eta,
                      diffusion_steps=diffusion_steps, latent=latent, out=str(out),
                      days=tuple(day_list))
    with Progress(console=err) as bar:
        task = bar.add_task(f"training {algo}/{shaping}", total=steps)
        trainer = train(cfg, resume=resume, progress=lambda s: bar.update(task, completed=s))
    err.print(f"done: {trainer.steps:,} env steps in {trainer.wall:.0f} s; policy at "
              f"{out / 'policy.pt'}, metrics at {out / 'metrics.csv'}")


@app.command("report")
def report_cmd(
    scenario: ScenarioArg,
    days: DaysOpt = "test:7",
    policies: PoliciesOpt = None,
    out: Annotated[Path, typer.Option("--out")] = Path("runs/report"),
    cache: CacheOpt = ORACLE_CACHE,
    metrics: Annotated[list[Path] | None, typer.Option(
        "--metrics", help="A training metrics.csv for the learning curves; repeatable.")
                       ] = None,
    ablated: Annotated[str, typer.Option(
        "--ablate-policy", help="The policy whose ablations (the paper's levers removed "
        "one at a time) join the report; 'none' for no ablation rows.")] = "learned",
):
    """Every policy against the oracle on held-out days: gap table, terms, plots (Markdown,
    self-contained HTML, CSV/Parquet)."""
    from optsched.policies import get_policy
    from optsched.report.report import build_report

    names = policies or ["greedy", "myopic-lp", "dispatch", "learned", "mpc", "mpc-noisy"]
    for name in names:
        get_policy(name)
    for path in metrics or []:
        if not path.is_file():
            raise ScenarioError("--metrics", "file not found", str(path))
    if ablated != "none":
        get_policy(ablated)
    from optsched.scenario.ablations import ABLATIONS
    day_list = parse_days(days, scenario)
    with err.status("report") as status:
        frame = build_report(scenario, day_list, names, out, cache,
                             progress=lambda msg: status.update(f"report: {msg}"),
                             metrics=metrics or [], ablations=ABLATIONS,
                             ablated=None if ablated == "none" else ablated)
    err.print(f"wrote {out / 'report.md'}, {out / 'report.html'}, {out / 'results.csv'} "
              f"({len(frame)} rows)")
    _out().print((out / "report.md").read_text())


@app.command("sweep")
def sweep_cmd(
    scenario: ScenarioArg,
    param: Annotated[str, typer.Option("--param", help="price-level | price-volatility | "
                                       "load | battery | renewable | carbon-price | "
                                       "model-mix")],
    values: Annotated[str, typer.Option("--values", help="Comma-separated (model-mix: "
                                        "';' between mixes, ',' between sites).")],
    days: DaysOpt = "test:1",
    policies: PoliciesOpt = None,
    out: Annotated[Path, typer.Option("--out")] = Path("runs/sweep"),
    cache: CacheOpt = ORACLE_CACHE,
    json_out: JsonOpt = False,
):
    """A sensitivity study: the oracle and every policy as one parameter varies (table,
    sweep.csv, sweep.png)."""
    from optsched.report.sweep import sweep
    from optsched.scenario.sensitivity import PARAMS

    if param not in PARAMS:
        raise ScenarioError("--param", f"must be one of {', '.join(PARAMS)}", param)
    sep = ";" if param == "model-mix" else ","
    vals = [v.strip() for v in values.split(sep) if v.strip()]
    if not vals:
        raise ScenarioError("--values", "give at least one value", values)
    names = policies or ["greedy", "myopic-lp", "dispatch"]
    day_list = parse_days(days, scenario)
    with err.status("sweep") as status:
        frame = sweep(scenario, day_list, param, vals, names, out, cache,
                      progress=lambda msg: status.update(f"sweep: {msg}"))
    med = frame.groupby(["value", "policy"], sort=False)[["utility", "gap", "captured"]
                                                          ].median().reset_index()
    if json_out:
        _emit_json({"param": param, "days": day_list, "rows": med.to_dict("records")})
        return
    table = Table(title=f"{param} sweep on {scenario} (median over {len(day_list)} day(s))",
                  title_justify="left")
    for col in ("value", "policy", "utility $", "gap", "captured"):
        table.add_column(col, justify="left" if col in ("value", "policy") else "right")
    for r in med.itertuples():
        table.add_row(str(r.value), r.policy, f"{r.utility:,.2f}", f"{100 * r.gap:.2f}%",
                      "" if r.captured != r.captured else f"{100 * r.captured:.1f}%")
    _out().print(table)
    err.print(f"wrote {out / 'sweep.csv'} and {out / 'sweep.png'}")


BENCHMARKS = ("oracle", "env", "levers", "learning", "reproduction")


@app.command("bench", context_settings={"allow_extra_args": True,
                                        "ignore_unknown_options": True})
def bench_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help=" | ".join(BENCHMARKS))],
):
    """Run a benchmark of the repository's benchmarks/ folder; further arguments go to it
    (e.g. `optsched bench learning --seeds 0 --steps 9216`)."""
    import runpy

    if name not in BENCHMARKS:
        raise ScenarioError("bench", f"must be one of {', '.join(BENCHMARKS)}", name)
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    if not path.is_file():
        raise ScenarioError("bench", "benchmarks/ is part of the repository checkout, not "
                            "of an installed package", str(path))
    sys.argv = [str(path), *ctx.args]
    runpy.run_path(str(path), run_name="__main__")


@app.command("demo")
def demo(
    policies: Annotated[list[str] | None, typer.Option("--policy", help="Repeatable.")] = None,
    json_out: JsonOpt = False,
):
    """The main job on the embedded default: the scenario, then every baseline against the
    oracle on its first held-out day (utility, gap, share of the oracle's gain captured)."""
    from optsched.report.compare import compare
    from optsched.scenario import compile_scenario, get_scenario

    names = policies or ["local-fixed", "greedy", "myopic-lp", "dispatch", "learned", "mpc",
                         "mpc-noisy"]
    for name in names:
        from optsched.policies import get_policy
        get_policy(name)                                   # validates before any work
    if not json_out:
        scenario_show("jemas-3", None, False)
    sc = get_scenario("jemas-3")
    with err.status("oracle and policies on the default day"):
        rows = compare(compile_scenario(sc), names)
    if json_out:
        _emit_json({"scenario": sc.name, "rows": rows})
        return
    table = Table(title=f"policies on {sc.name} (utility $ per day; gap to the oracle; "
                        "share of the oracle's gain over local-fixed captured)",
                  title_justify="left")
    for col in ("policy", "utility $", "gap", "captured", "served", "dropped",
                "transferred", "mean Q", "mean steps", "energy $", "demand $", "seconds"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for r in rows:
        cap = "" if r["captured"] is None else f"{100 * r['captured']:.1f}%"
        table.add_row(r["policy"], f"{r['utility']:,.2f}", f"{100 * r['gap']:.2f}%", cap,
                      f"{r['served']:,.0f}", f"{r['dropped']:,.0f}",
                      f"{r['transferred']:,.0f}", f"{r['mean_quality']:.3f}",
                      f"{r['mean_steps']:.1f}", f"{r['energy_cost']:.2f}",
                      f"{r['demand_cost']:.2f}", f"{r['seconds']:.1f}")
    _out().print(table)


def main() -> None:
    if "--json" in sys.argv[1:]:
        _route_stdout_to_stderr()
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        sys.stderr.write("optsched: aborted\n")
        code = 1
    except typer.TyperException as exc:      # usage errors: bad option, missing argument
        sys.stderr.write(f"optsched: {exc.format_message()}\n")
        code = 2
    except OptschedError as exc:
        sys.stderr.write(f"optsched: {exc}\n")
        code = 2
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if os.environ.get("OPTSCHED_DEBUG"):
            raise
        sys.stderr.write(f"optsched: internal error: {type(exc).__name__}: {exc} "
                         "(set OPTSCHED_DEBUG=1 for the traceback)\n")
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
