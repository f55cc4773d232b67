"""The `optsched` command line: each command parses, calls the API (optsched.api), prints.

Exit codes: 0 success, 2 bad input or arguments (one line on stderr), 1 internal failure.
`--json` prints one JSON object on stdout; progress and tables go to stderr.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from optsched.console import emit_json, err, json_stdout, out, status, to_json
from optsched.errors import OptschedError, ScenarioError
from optsched.oracle.cache import DEFAULT_CACHE
from optsched.oracle.highs import MIP_GAP
from optsched.scenario.load import ALLOW_OUTSIDE_ENV


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"optsched {version('optsched')}")
        except PackageNotFoundError:
            print("optsched (not installed: no version metadata)")
        raise typer.Exit()


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="Energy-aware scheduling of diffusion-model jobs across data centres.")
scenario_app = typer.Typer(no_args_is_help=True, help="Show, validate, build scenarios.")
app.add_typer(scenario_app, name="scenario")


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version.")] = False,
          allow_outside_paths: Annotated[bool, typer.Option(
              "--allow-outside-paths", help="Let scenario files read CSV files outside "
              "their own folder (refused by default: docs/security.md).")] = False):
    """Energy-aware scheduling of diffusion-model jobs across data centres."""
    if allow_outside_paths:
        os.environ[ALLOW_OUTSIDE_ENV] = "1"


ScenarioArg = Annotated[str, typer.Argument(help="TOML file or embedded name (jemas-3).")]
DayOpt = Annotated[int | None, typer.Option("--day", help="Day of an embedded family.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
DaysOpt = Annotated[str, typer.Option("--days", help="N, A..B, A,B,C, test[:N], train[:N]")]
PoliciesOpt = Annotated[list[str] | None, typer.Option("--policy", help="Repeatable.")]
CacheOpt = Annotated[Path, typer.Option("--cache", help="Oracle cache folder.")]
AblateOpt = Annotated[list[str] | None, typer.Option(
    "--ablate", help="Remove a lever: no-transfer, fixed-steps, no-dvfs, no-renewables, "
                     "no-battery (repeatable).")]
BackendOpt = Annotated[str, typer.Option("--backend",
                                         help="pyomo | cvxpy | highs | cvxpy-clarabel")]
WorkersOpt = Annotated[int, typer.Option(
    "--workers", help="Run the days (and policies) as tasks on a local Ray runtime with N "
    "CPUs; 1: serially, without Ray (docs: README, Scale-out).")]
RayAddressOpt = Annotated[str | None, typer.Option(
    "--ray-address", help="Run the tasks on this Ray cluster (e.g. auto, ray://HOST:10001) "
    "instead of a local runtime.")]


@scenario_app.command("show")
def scenario_show(scenario: ScenarioArg, day: DayOpt = None, json_out: JsonOpt = False):
    """Print a scenario's summary: horizon, models, sites, classes."""
    from optsched.api import compiled, load_scenario
    from optsched.reporting import terminal
    from optsched.scenario.summary import summarize

    sc = load_scenario(scenario, day)
    summary = summarize(sc, compiled(sc))
    emit_json(summary) if json_out else terminal.scenario(summary)


@scenario_app.command("validate")
def scenario_validate(scenario: ScenarioArg, day: DayOpt = None, json_out: JsonOpt = False):
    """Load and check a scenario; exit 2 with the first problem, naming key and value."""
    from optsched.api import load_scenario

    sc = load_scenario(scenario, day)
    info = {"valid": True, "name": sc.name, "sites": len(sc.sites),
            "classes": len(sc.classes), "slots": sc.horizon.slots}
    if json_out:
        emit_json(info)
    else:
        out().print(f"ok: {sc.name} ({info['sites']} sites, {info['classes']} classes, "
                    f"{info['slots']} slots)")


@scenario_app.command("export")
def scenario_export(scenario: ScenarioArg,
                    out_path: Annotated[Path, typer.Option("--out", help="TOML file to write.")],
                    day: DayOpt = None):
    """Write a scenario (e.g. one day of an embedded family) as a self-contained TOML."""
    from optsched.api import load_scenario
    from optsched.options import check_out
    from optsched.scenario import save_scenario

    check_out(out_path, folder=False)
    save_scenario(load_scenario(scenario, day), out_path)
    err.print(f"wrote {out_path}")


def _date(value: str | None, key: str):
    import datetime as dt

    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ScenarioError(key, "expected a date YYYY-MM-DD", value) from None


def _pairs(values: list[str] | None, key: str, cast=Path) -> dict:
    """`SITE=VALUE` options as a dict."""
    result = {}
    for item in values or []:
        site, sep, value = item.partition("=")
        if not sep or not site or not value:
            raise ScenarioError(key, "expected SITE=VALUE", item)
        try:
            result[site] = cast(value)
        except ValueError:
            raise ScenarioError(key, "bad value", item) from None
    return result


@scenario_app.command("build")
def scenario_build(
    day: Annotated[str, typer.Option("--day", help="Calendar day, YYYY-MM-DD.")],
    out_path: Annotated[Path, typer.Option("--out", help="TOML file to write.")],
    base: Annotated[str, typer.Option("--base", help="Embedded family or TOML.")] = "jemas-3",
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Folder with prices/, weather/, carbon/ holding files named by "
        "--pattern for the day's year (docs/data.md).")] = None,
    pattern: Annotated[str, typer.Option(
        "--pattern", help="File names under --data-dir.")] = "{region}_{year}.csv",
    prices: Annotated[list[str] | None, typer.Option("--prices", help="SITE=CSV")] = None,
    weather: Annotated[list[str] | None, typer.Option("--weather", help="SITE=CSV")] = None,
    carbon: Annotated[list[str] | None, typer.Option("--carbon", help="SITE=CSV")] = None,
    pv_kwp: Annotated[list[str] | None, typer.Option("--pv-kwp", help="SITE=kWp")] = None,
    trace: Annotated[Path | None, typer.Option(
        "--trace", help="Request trace CSV: Azure (TIMESTAMP) or GenTD26 (gmt_create, ...).")
                     ] = None,
    trace_day: Annotated[str | None, typer.Option(
        "--trace-day", help="GenTD26: the trace's day to replay (YYYY-MM-DD); default the "
        "same day, else a same-weekday day.")] = None,
    price_clock: Annotated[list[str] | None, typer.Option(
        "--price-clock", help="MODE or SITE=MODE, repeatable; MODE: auto (detected per file) "
        "| utc | local-is-utc (docs/data.md).")] = None,
):
    """Build a scenario for a real calendar day from CSV files (written as TOML)."""
    from optsched.api import build_scenario
    from optsched.data.build import parse_price_clock
    from optsched.options import check_out
    from optsched.scenario import save_scenario

    check_out(out_path, folder=False)
    sc = build_scenario(day, base, data_dir=data_dir, prices=_pairs(prices, "--prices"),
                        weather=_pairs(weather, "--weather"),
                        carbon=_pairs(carbon, "--carbon"),
                        pv_kwp=_pairs(pv_kwp, "--pv-kwp", float), trace=trace,
                        price_clock=parse_price_clock(price_clock or ["auto"]),
                        pattern=pattern, trace_day=_date(trace_day, "--trace-day"))
    save_scenario(sc, out_path)
    err.print(f"wrote {out_path}: {sc.name}")


@app.command("solve")
def solve_cmd(
    ctx: typer.Context,
    scenario: ScenarioArg,
    day: DayOpt = None,
    days: Annotated[str | None, typer.Option(
        "--days", help="Many days: N, A..B, A,B,C, test[:N], train[:N] (one solve each; "
        "--out gets a folder per day)")] = None,
    backend: BackendOpt = "pyomo",
    relax: Annotated[bool, typer.Option("--relax", help="Solve the LP relaxation.")] = False,
    time_limit: Annotated[float | None, typer.Option("--time-limit", help="Seconds.")] = None,
    mip_gap: Annotated[float, typer.Option("--mip-gap", help="Relative MIP gap.")] = MIP_GAP,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder: schedule + plots.")
                       ] = None,
    ablations: AblateOpt = None,
    max_vars: Annotated[float | None, typer.Option(
        "--max-vars", help="Refuse models with more variables (default 12e6, or "
        "OPTSCHED_MAX_VARS).")] = None,
    workers: WorkersOpt = 1,
    ray_address: RayAddressOpt = None,
    decompose: Annotated[bool, typer.Option(
        "--decompose", help="The LP relaxation by price coordination over the sites "
        "(site problems in parallel with --workers), to a certified gap.")] = False,
    gap_tol: Annotated[float, typer.Option(
        "--gap-tol", help="--decompose: stop when (bound - utility) <= this x |bound|.")
                       ] = 5e-3,
    max_rounds: Annotated[int, typer.Option("--max-rounds", help="--decompose: rounds.")
                          ] = 50,
    cluster_size: Annotated[int | None, typer.Option(
        "--cluster-size", help="--decompose: sites per balanced cluster, each solved whole "
        "before any round (0: none; default max(5, round(sqrt(sites / 2)))).")] = None,
    json_out: JsonOpt = False,
):
    """The offline oracle (perfect foresight): the model as a MILP or its LP relaxation;
    with --days, one solve per day (in parallel with --workers); with --decompose, the LP
    by price coordination over the sites, with a certified bound."""
    from optsched import api
    from optsched.options import check_levers, check_out, day_selection
    from optsched.oracle import check_inputs
    from optsched.oracle.size import vars_limit
    from optsched.parallel import check_workers
    from optsched.reporting import terminal
    from optsched.reporting.output import write_solution

    check_inputs(backend, relax, time_limit, mip_gap)
    vars_limit(max_vars)                  # before any progress line
    check_out(out_dir)
    check_workers(workers, ray_address)
    ablations = check_levers(ablations)
    day_list = day_selection(scenario, day, days)
    _refuse_unused(ctx, decompose)
    if decompose:
        return _solve_decomposed(scenario, day_list, ablations, workers, ray_address,
                                 gap_tol, max_rounds, cluster_size, time_limit, out_dir,
                                 json_out)
    with status(f"solving {len(day_list)} day(s) ({backend}, {'LP' if relax else 'MILP'})"
                ) as update:
        solved = api.solve_days(scenario, day_list, backend, relax, mip_gap, time_limit,
                                max_vars, ablations, workers, ray_address, progress=update)
    results = [{"scenario": s.name, "ablations": ablations, **s.solution.to_dict()}
               for s in solved]
    many = days is not None
    for s, result in zip(solved, results, strict=True):
        if out_dir is not None:
            folder = out_dir / f"day{s.day:03d}" if many else out_dir
            write_solution(s.compiled, s.solution, folder, s.name, to_json(result, indent=1))
        if not json_out:
            terminal.solution(s.solution, s.name, relax)
    if json_out:
        emit_json({"scenario": scenario, "ablations": ablations,
                   "days": [{"day": s.day, **r} for s, r in zip(solved, results, strict=True)]}
                  if many else results[0])


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option `name` was given (command line or environment), not defaulted;
    compared by name: typer may carry its own click."""
    source = ctx.get_parameter_source(name)
    return getattr(source, "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")


def _refuse_unused(ctx: typer.Context, decompose: bool) -> None:
    """An option the chosen solve would ignore is refused, not dropped in silence."""
    unused = {"mip_gap": "--mip-gap", "backend": "--backend", "max_vars": "--max-vars"} \
        if decompose else {"gap_tol": "--gap-tol", "max_rounds": "--max-rounds",
                           "cluster_size": "--cluster-size"}
    for name, flag in unused.items():
        if _given(ctx, name):
            raise ScenarioError(flag, "has no effect with --decompose (an LP solved with "
                                "HiGHS to a certified gap: --gap-tol, --max-rounds)"
                                if decompose else "applies only with --decompose",
                                ctx.params[name])


def _solve_decomposed(scenario, day_list, ablations, workers, ray_address, gap_tol,
                      max_rounds, cluster_size, time_limit, out_dir, json_out) -> None:
    from optsched import api
    from optsched.scenario.ablations import ablate

    if len(day_list) != 1:
        raise ScenarioError("--decompose", "solves one day (use --day)", len(day_list))
    if time_limit is not None:
        raise ScenarioError("--decompose", "stops on its gap, not a time limit "
                            "(--gap-tol, --max-rounds)", time_limit)
    c = api.compiled(scenario, day_list[0])
    c = ablate(c, ablations) if ablations else c
    with status("decomposed LP") as update:
        d = api.solve_decomposed(c, workers, ray_address, gap_tol, max_rounds,
                                 cluster_size=cluster_size, progress=lambda r, b, p: update(
                                     f"round {r}: bound {b:,.2f}, utility {p:,.2f}"))
    result = {"scenario": scenario, "day": day_list[0], "ablations": ablations,
              **d.to_dict()}
    if out_dir is not None:
        from optsched.io import atomic_write_text

        out_dir.mkdir(parents=True, exist_ok=True)
        d.schedule.save(out_dir / "schedule.npz")
        atomic_write_text(out_dir / "solution.json", to_json(result, indent=1))
    if not d.converged:
        err.print(f"warning: not converged after {d.iterations} rounds: certified gap "
                  f"{d.gap:.3%}")
    if json_out:
        emit_json(result)
    else:
        out().print(f"utility {d.utility:,.2f}  bound {d.bound:,.2f}  certified gap "
                    f"{d.gap:.4%}  clusters {d.clusters}  rounds {d.iterations}  "
                    f"{d.solve_s:.1f} s", markup=False)


@app.command("evaluate")
def evaluate_cmd(
    scenario: ScenarioArg,
    policies: Annotated[list[str] | None, typer.Option(
        "--policy", help="Policy name (one; `optsched report` compares several); "
        "default: local-fixed, the reference rule.")] = None,
    day: DayOpt = None,
    days: Annotated[str | None, typer.Option(
        "--days", help="N, A..B, A,B,C, test[:N], train[:N]")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for CSV results.")
                       ] = None,
    oracle: Annotated[bool, typer.Option("--oracle/--no-oracle",
                                         help="Solve the oracle alongside.")] = True,
    oracle_backend: Annotated[str, typer.Option("--oracle-backend")] = "highs",
    ablations: AblateOpt = None,
    workers: WorkersOpt = 1,
    ray_address: RayAddressOpt = None,
    json_out: JsonOpt = False,
):
    """Roll a policy over a scenario and score it with the evaluator (itemised), with the
    oracle's utility and the gap alongside."""
    from optsched import api
    from optsched.options import (
        check_backend,
        check_levers,
        check_out,
        check_policies,
        day_selection,
    )
    from optsched.parallel import check_workers
    from optsched.reporting import terminal
    from optsched.reporting.output import write_evaluation

    if policies is not None and len(policies) > 1:
        raise ScenarioError("--policy", "evaluate rolls one policy (compare several with "
                            "`optsched report`)", ", ".join(policies))
    policy = policies[0] if policies else "local-fixed"
    day_list = day_selection(scenario, day, days)
    check_out(out_dir)
    check_workers(workers, ray_address)
    check_backend(oracle_backend, "--oracle-backend")
    check_policies([policy])
    check_levers(ablations)
    with status(f"rolling {policy} over {len(day_list)} day(s)") as update:
        summary, evs = api.evaluate_policy(scenario, policy, day_list, oracle=oracle,
                                           backend=oracle_backend, ablations=ablations or (),
                                           progress=update, workers=workers,
                                           ray_address=ray_address)
    if out_dir is not None:
        write_evaluation(summary, evs, out_dir, to_json(summary, indent=1))
    emit_json(summary) if json_out else terminal.evaluation(summary, evs)


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    scenario: Annotated[str, typer.Argument(
        help="Embedded family trained on (jemas-3, jemas-3-genai, multisite-N).")
                        ] = "jemas-3",
    algo: Annotated[str, typer.Option("--algo", help="sac | td3 | ppo | bc")] = "sac",
    shaping: Annotated[str, typer.Option("--shaping",
                                         help="none | mlp | diffusion | potential")] = "none",
    reward: Annotated[str, typer.Option("--reward", help="settlement | dense | episode")
                      ] = "settlement",
    action: Annotated[str, typer.Option(
        "--action", help="dispatch (waiting values and battery over the per-slot "
        "dispatch) | dispatch-battery (battery only) | provision-battery (per site the "
        "demand level planned for, GPU headroom and battery; families with provisioning) "
        "| provision-dispatch (provision-battery and the waiting values) | direct (every "
        "routing, step, clock and battery choice)")] = "dispatch-battery",
    steps: Annotated[int, typer.Option("--steps", help="Environment steps.")] = 200_000,
    reward_norm: Annotated[bool, typer.Option(
        "--reward-norm", help="Divide rewards by the running std of the return.")] = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    num_envs: Annotated[int, typer.Option("--num-envs")] = 16,
    updates_per_step: Annotated[int, typer.Option(
        "--updates-per-step", help="Gradient updates per batched env step.")] = 4,
    gamma: Annotated[float, typer.Option("--gamma", help="Discount factor.")] = 0.99,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 3e-4,
    init_action: Annotated[str | None, typer.Option(
        "--init-action", help="PPO: the actor's initial mean action, comma-separated "
        "numbers in (-1, 1), one per action dimension (default 0: the baseline).")] = None,
    eta: Annotated[float, typer.Option("--eta", help="Shaping weight.")] = 0.4,
    diffusion_steps: Annotated[int, typer.Option("--diffusion-steps")] = 5,
    latent: Annotated[int, typer.Option("--latent")] = 128,
    days: Annotated[str, typer.Option(
        "--days", help="Training days of the family (train, train:N, A..B); held-out days "
        "are refused.")] = "train",
    out_dir: Annotated[Path, typer.Option("--out")] = Path("runs/sac"),
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the run in --out from its checkpoint with the run's own "
        "options (config.json) for those not given; only --steps may grow.")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a finished or started run in --out.")] = False,
    checkpoint_every: Annotated[int, typer.Option(
        "--checkpoint-every", help="Env steps between checkpoints.")] = 20_000,
):
    """Train a learned scheduler on a family's training days (progress, checkpoints,
    metrics CSV; --resume continues a killed run exactly)."""
    from optsched.learn.train import TrainConfig
    from optsched.options import check_out, train_days

    check_out(out_dir)
    opts = {"algo": algo, "action": action, "scenario": scenario, "shaping": shaping,
            "reward": reward, "steps": steps, "seed": seed, "reward_norm": reward_norm,
            "num_envs": num_envs, "updates_per_step": updates_per_step, "gamma": gamma,
            "lr": lr, "init_action": _numbers(init_action, "--init-action"), "eta": eta,
            "diffusion_steps": diffusion_steps, "latent": latent,
            "checkpoint_every": checkpoint_every}
    stored_days: tuple[int, ...] = ()
    if resume:                   # the run's own options for every one not given here
        given = {name for name in ctx.params if _given(ctx, name)}
        stored = _stored_run(out_dir)
        opts |= {k: stored[k] for k in opts if k not in given and k in stored}
        if "days" not in given:
            stored_days = stored.get("days", ())
            if not (isinstance(stored_days, tuple) and all(
                    type(d) is int for d in stored_days)):
                raise ScenarioError("--resume", f"{out_dir / 'config.json'}: days must be "
                                    "a list of day numbers", stored_days)
    algo, scenario = opts["algo"], opts["scenario"]
    cfg = TrainConfig(**opts, out=str(out_dir))
    # A stored run's days are checked as if given (a held-out day may not be trained on).
    day_list = train_days(",".join(map(str, stored_days)) if stored_days else days, scenario)
    if algo == "bc" and scenario != "jemas-3":
        raise ScenarioError("--algo", "bc clones the oracle's jemas-3 schedules only (its "
                            "direct action has no GPU commitment)", f"bc on {scenario}")
    if algo == "bc":
        from optsched.learn.bc import train_bc

        with status(f"behaviour cloning of the oracle on {len(day_list)} training days"):
            info = train_bc(day_list, out_dir, seed, overwrite=overwrite)
        err.print(f"done: {info['slots']:,} demonstrated slots, final loss "
                  f"{info['final_loss']:.4f}; policy at {out_dir / 'policy.pt'}")
        return
    trainer = _train(dataclasses.replace(cfg, days=tuple(day_list)), resume, overwrite)
    err.print(f"done: {trainer.steps:,} env steps in {trainer.wall:.0f} s; policy at "
              f"{out_dir / 'policy.pt'}, metrics at {out_dir / 'metrics.csv'}")


def _stored_run(out_dir: Path) -> dict:
    """The options a run in `out_dir` was started with (its config.json; JSON, never a
    pickle), {} where there is none to read: the checkpoint then decides."""
    import json

    try:
        stored = json.loads((out_dir / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(stored, dict):
        return {}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()}


def _numbers(text: str | None, key: str) -> tuple[float, ...]:
    """Comma-separated numbers (None: none)."""
    if text is None:
        return ()
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ScenarioError(key, "expected comma-separated numbers", text) from None


def _train(cfg, resume: bool, overwrite: bool):
    """Open the run (every refusal before any output), then train with a progress bar on
    a terminal, log lines every 10% otherwise."""
    from rich.progress import Progress

    from optsched.learn.train import open_run, run_training

    trainer = open_run(cfg, resume=resume, overwrite=overwrite)
    if err.is_terminal:
        with Progress(console=err) as bar:
            task = bar.add_task(f"training {cfg.algo}/{cfg.shaping}", total=cfg.steps)
            return run_training(trainer, lambda s: bar.update(task, completed=s))
    tenth = max(cfg.steps // 10, 1)
    seen = {-1}

    def log(s: int) -> None:
        if s // tenth not in seen:
            seen.add(s // tenth)
            sys.stderr.write(f"optsched: training {cfg.algo}: {s:,}/{cfg.steps:,} steps\n")
    return run_training(trainer, log)


@app.command("report")
def report_cmd(
    scenario: ScenarioArg,
    days: Annotated[str | None, typer.Option(
        "--days", help="N, A..B, A,B,C, test[:N], train[:N] (a family: default test:7; "
        "a file: its own horizon)")] = None,
    policies: PoliciesOpt = None,
    out_dir: Annotated[Path, typer.Option("--out")] = Path("runs/report"),
    cache: CacheOpt = DEFAULT_CACHE,
    metrics: Annotated[list[Path] | None, typer.Option(
        "--metrics", help="A training metrics.csv for the learning curves; repeatable.")
                       ] = None,
    ablated: Annotated[str | None, typer.Option(
        "--ablate-policy", help="The policy whose ablations (the paper's levers removed "
        "one at a time) join the report; 'none' for no ablation rows. Default: learned, "
        "when it is among the policies.")] = None,
    workers: WorkersOpt = 1,
    ray_address: RayAddressOpt = None,
    simulate: Annotated[bool, typer.Option(
        "--simulate/--no-simulate", help="Replay every schedule job by job for the "
        "per-class violation rate and p95 latency (latency.csv).")] = True,
):
    """Every policy against the oracle on held-out days: gap table, terms, per-class
    latency, plots (Markdown, self-contained HTML, CSV/Parquet)."""
    from optsched import api
    from optsched.days import parse_days
    from optsched.options import check_files, check_out, check_policies
    from optsched.parallel import check_workers
    from optsched.scenario.ablations import ABLATIONS

    check_out(out_dir)
    check_out(cache, "--cache")
    check_workers(workers, ray_address)
    names = check_policies(policies or ["greedy", "myopic-lp", "dispatch", "learned", "mpc",
                                        "mpc-noisy"])
    check_files(metrics or [], "--metrics")
    if ablated is None:                   # no rows ablating a policy the report leaves out
        ablated = "learned" if "learned" in names else "none"
    ablated_policy = (None if ablated == "none"
                      else check_policies([ablated], "--ablate-policy")[0])
    day_list = parse_days(days, scenario, default="test:7")
    with status("report") as update:
        frame = api.report(scenario, day_list, names, out_dir, cache, progress=update,
                           metrics=metrics or [], ablations=ABLATIONS,
                           ablated=ablated_policy, workers=workers, ray_address=ray_address,
                           simulate=simulate)
    err.print(f"wrote {out_dir / 'report.md'}, {out_dir / 'report.html'}, "
              f"{out_dir / 'results.csv'} ({len(frame)} rows)")
    out().print((out_dir / "report.md").read_text(), markup=False, highlight=False)


@app.command("sweep")
def sweep_cmd(
    scenario: ScenarioArg,
    param: Annotated[str, typer.Option("--param", help="price-level | price-volatility | "
                                       "load | battery | renewable | carbon-price | "
                                       "model-mix")],
    values: Annotated[str, typer.Option("--values", help="Comma-separated (model-mix: "
                                        "';' between mixes, ',' between sites).")],
    days: Annotated[str | None, typer.Option(
        "--days", help="N, A..B, A,B,C, test[:N], train[:N] (a family: default test:1; "
        "a file: its own horizon)")] = None,
    policies: PoliciesOpt = None,
    out_dir: Annotated[Path, typer.Option("--out")] = Path("runs/sweep"),
    cache: CacheOpt = DEFAULT_CACHE,
    workers: WorkersOpt = 1,
    ray_address: RayAddressOpt = None,
    json_out: JsonOpt = False,
):
    """A sensitivity study: the oracle and every policy as one parameter varies (table,
    sweep.csv, sweep.png)."""
    from optsched import api
    from optsched.days import parse_days
    from optsched.options import check_out, sweep_values
    from optsched.parallel import check_workers
    from optsched.reporting import terminal

    check_out(out_dir)
    check_out(cache, "--cache")
    check_workers(workers, ray_address)
    vals = sweep_values(param, values)
    day_list = parse_days(days, scenario, default="test:1")
    with status("sweep") as update:
        frame = api.sweep(scenario, day_list, param, vals,
                          policies or ["greedy", "myopic-lp", "dispatch"], out_dir, cache,
                          progress=update, workers=workers, ray_address=ray_address)
    med = terminal.sweep_medians(frame)
    if json_out:
        emit_json({"param": param, "days": day_list, "rows": med.to_dict("records")})
        return
    terminal.sweep(med, param, scenario, len(day_list))
    err.print(f"wrote {out_dir / 'sweep.csv'} and {out_dir / 'sweep.png'}")


@app.command("simulate")
def simulate_cmd(
    scenario: ScenarioArg,
    policy: Annotated[str, typer.Option("--policy", help="Policy name.")] = "dispatch",
    days: Annotated[str | None, typer.Option(
        "--days", help="N, A..B, A,B,C, test[:N], train[:N] (a family: default test:1; "
        "a file: its own horizon)")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Jobs, cold starts, policy noise.")] = 0,
    burstiness: Annotated[float, typer.Option(
        "--burstiness", help="Gamma-modulated arrival rate within slots (0: uniform).")] = 0.0,
    counts: Annotated[str, typer.Option(
        "--counts", help="exact (the arrivals the schedule planned for) | poisson")] = "exact",
    workers: WorkersOpt = 1,
    ray_address: RayAddressOpt = None,
    json_out: JsonOpt = False,
):
    """Replay a policy's schedule job by job (FCFS queues on the powered GPUs, cold starts,
    transfers, deadlines): latency percentiles, late, served and dropped per class."""
    from optsched import api
    from optsched.days import parse_days
    from optsched.options import check_policies, choice
    from optsched.parallel import check_workers
    from optsched.reporting import terminal

    check_workers(workers, ray_address)
    check_policies([policy])
    choice("--counts", counts, ("exact", "poisson"))
    from optsched.sim.jobs import MAX_BURSTINESS

    if not 0 <= burstiness <= MAX_BURSTINESS:
        raise ScenarioError("--burstiness", f"must be between 0 and {MAX_BURSTINESS:g}",
                            burstiness)
    if seed < 0:
        raise ScenarioError("--seed", "must be >= 0", seed)
    day_list = parse_days(days, scenario, default="test:1")
    with status(f"simulating {policy} over {len(day_list)} day(s)") as update:
        results = api.simulate(scenario, policy, day_list, seed, burstiness=burstiness,
                               counts=counts, workers=workers, ray_address=ray_address,
                               progress=update)
    rows = [{"day": d, **r.to_dict()} for d, r in zip(day_list, results, strict=True)]
    if json_out:
        emit_json({"scenario": scenario, "policy": policy, "seed": seed, "days": rows})
        return
    terminal.simulation(scenario, policy, day_list, results)


BENCHMARKS = ("oracle", "env", "levers", "learning", "reproduction", "sim", "fidelity", "scale",
              "trace_days", "scale_oracle", "forecast_ceiling")


@app.command("bench", context_settings={"allow_extra_args": True,
                                        "ignore_unknown_options": True})
def bench_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help=" | ".join(BENCHMARKS))],
):
    """Run a benchmark of the repository's benchmarks/ folder in its own process; further
    arguments go to it (e.g. `optsched bench learning --seeds 0 --steps 9216`)."""
    if name not in BENCHMARKS:
        raise ScenarioError("bench", f"must be one of {', '.join(BENCHMARKS)}", name)
    root = Path(__file__).resolve().parents[1]
    path = root / "benchmarks" / f"{name}.py"
    if not path.is_file():
        raise ScenarioError("bench", "benchmarks/ is part of the repository checkout, not "
                            "of an installed package", str(path))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH")) if p)}
    raise typer.Exit(subprocess.run([sys.executable, str(path), *ctx.args], env=env
                                    ).returncode)


@app.command("demo")
def demo(
    policies: Annotated[list[str] | None, typer.Option("--policy", help="Repeatable.")] = None,
    json_out: JsonOpt = False,
):
    """The main job on the embedded default, then on the hard family: the scenario, then
    every baseline against the oracle on jemas-3's first held-out day, then the learned
    scheduler beside the fast baselines on jemas-3-genai's (GPUs committed before each
    slot's arrivals are seen): utility, gap, share of the oracle's gain captured.
    `--policy` replaces both lists."""
    from optsched.api import compare, load_scenario
    from optsched.options import check_policies
    from optsched.reporting import terminal

    # (family, its policies): the hard day keeps to policies that take seconds there
    plan = [("jemas-3", ["local-fixed", "greedy", "myopic-lp", "dispatch", "learned", "mpc",
                         "mpc-noisy"]),
            ("jemas-3-genai", ["local-fixed", "greedy", "dispatch", "myopic-lp", "learned"])]
    plan = [(fam, check_policies(policies or names)) for fam, names in plan]
    if not json_out:
        scenario_show("jemas-3", None, False)
    tables = []
    for fam, names in plan:
        sc = load_scenario(fam)
        if not json_out and tables:
            terminal.demo_intro(sc.name, sc.description)
        with status(f"oracle and policies on {sc.name}") as update:
            rows = terminal.demo_rows(compare(fam, names, None, progress=update))
        tables.append({"scenario": sc.name, "rows": rows})
        if not json_out:
            terminal.demo(sc.name, rows)
    if json_out:      # the default's table first, as before; every table under "scenarios"
        emit_json({**tables[0], "scenarios": tables})


def main() -> None:
    """Run the app; every OptschedError is one line on stderr and exit 2."""
    import warnings

    default_show = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        """optsched's own warnings (e.g. a cache entry solved again) as one line for the
        user, not Python's two lines of file and source; other libraries' as they come."""
        if Path(filename).resolve().is_relative_to(Path(__file__).resolve().parent):
            sys.stderr.write(f"optsched: warning: {message}\n")
        else:
            default_show(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        with json_stdout("--json" in sys.argv[1:]):
            code = _run()
    finally:
        warnings.showwarning = default_show
    sys.exit(code)


def _run() -> int:
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        sys.stderr.write("optsched: aborted\n")
        code = 1
    except typer.TyperException as exc:      # usage errors: bad option, missing argument
        if message := exc.format_message():  # none after the help that a bare call shows
            sys.stderr.write(f"optsched: {message}\n")
        code = 2
    except OptschedError as exc:
        sys.stderr.write(f"optsched: {exc}\n")
        code = 2
    except BrokenPipeError:                  # e.g. `optsched ... | head -1`: not an error
        _quiet_stdout()
        code = 0
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if os.environ.get("OPTSCHED_DEBUG"):
            raise
        if isinstance(exc, OSError) and exc.filename is not None:
            # A path that cannot be read or written (permissions, a read-only or special
            # file system, a folder where a file was meant): the user's to fix.
            sys.stderr.write(f"optsched: {exc.filename}: {exc.strerror or exc}\n")
            code = 2
        else:
            sys.stderr.write(f"optsched: internal error: {type(exc).__name__}: {exc} "
                             "(set OPTSCHED_DEBUG=1 for the traceback)\n")
            code = 1
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    return code if isinstance(code, int) else 0


def _quiet_stdout() -> None:
    """The reader went away: point stdout at /dev/null so the interpreter's final flush
    does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    main()
