"""Learning benchmark: the paper's comparison, variants x seeds at one environment-step
budget on the sparse settlement reward of a family (default the hard one, jemas-3-genai).

    python benchmarks/learning.py                 # 5 variants x 5 seeds on jemas-3-genai
    python benchmarks/learning.py --steps 18432 --seeds 0 --test-days 1 --train-days 2
    python benchmarks/learning.py --scenario jemas-3 --action direct
                                                   # every decision in the action
    python benchmarks/learning.py --variants sac+diffusion --grid eta=0.2,0.4,0.8
                                                   # the paper's shaping-weight study
    python benchmarks/learning.py --workers 4      # runs as Ray tasks, 4 at a time
    python benchmarks/learning.py --tune --tune-samples 8 --workers 2
                                                   # Ray Tune + ASHA over the shaping settings

Every (variant, seed) run trains in its own folder under --out, one task of
optsched.parallel.fan_out each (--workers N: a local Ray runtime with N CPUs,
--ray-address: a cluster; 1: one after another in this process, no Ray), on the
settlement reward. A run checkpoints every --checkpoint-every steps; run the benchmark
again after it was killed (or after a worker died: Ray retries the task) and every run
resumes from its checkpoint, a finished one is read back as it is (--fresh: start all
anew). A run that fails on every retry fails the benchmark: no results.json is written.
Reported per variant, as the mean over seeds with a 95% t interval: final training
episode utility, held-out gap to the oracle (each run: its mean over the test days, the
same days for every run), violation rates (dropped / arrived, late / served), steps to
reach a utility level that every variant's mean curve crosses (the lowest of the
variants' best mean-curve values; per seed, NaN when that seed's curve never gets there,
with the count of seeds that do) and training wall time; plus every variant's held-out
gap minus the first variant's, paired by seed. Curves (mean and 95% band over seeds, vs
env steps and vs wall time) go to `--out/curves.png`, all numbers to `--out/results.json`
and the table to `--out/summary.md`.

`--tune`: a Ray Tune search of the shaping settings (eta, shaping warm-up, and for
diffusion shaping its steps) of the first variant, its trials stopped early by an ASHA
scheduler on the training episode utility (time axis: environment steps). Each trial
trains in a folder named by its trial id and settings, so a killed search, started again
with the same --out, is restored by Tune and its trials resume from their own
checkpoints. Best settings and every trial's last result go to `--out/tune/results.json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:               # `python benchmarks/learning.py` from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.stats import t_interval  # noqa: E402
from optsched.errors import OptschedError, ScenarioError  # noqa: E402
from optsched.io import atomic_write_text  # noqa: E402
from optsched.learn.loop import CHECKPOINT, METRICS, POLICY  # noqa: E402

VARIANTS = {
    "sac": ("sac", "none"),
    "sac+diffusion": ("sac", "diffusion"),
    "sac+mlp": ("sac", "mlp"),
    "sac+potential": ("sac", "potential"),
    "ppo": ("ppo", "none"),
    "td3+diffusion": ("td3", "diffusion"),
}
PAPER = ["sac", "sac+diffusion", "sac+mlp", "sac+potential", "ppo"]   # issue 13's five
# --grid keys: train options of TrainConfig (the CLI's flag spelling) and their types.
GRID_KEYS = {"eta": float, "diffusion-steps": int, "latent": int, "shaping-warmup": int,
             "shaping-anneal": int}


@dataclasses.dataclass(frozen=True)
class Job:
    """One training run of the benchmark: its variant label, seed and TrainConfig."""

    variant: str
    seed: int
    cfg: object                      # optsched.learn.train.TrainConfig
    test_days: int = 0               # held-out days scored after training (0: none)
    cache: str | None = None         # oracle cache folder (absolute: Ray workers' cwd)

    def label(self) -> str:
        return f"{self.variant} seed {self.seed}"


def finished(cfg) -> bool:
    """Whether `cfg`'s folder holds the finished result of exactly this run: a policy.pt
    saved with this configuration (a policy of an earlier, shorter run or of other
    options is not this run's result)."""
    from optsched.learn.checkpoint import load_checkpoint

    path = Path(cfg.out) / POLICY
    if not path.is_file():
        return False
    saved = load_checkpoint(path, "policy").get("config", {})
    same = json.loads(json.dumps(dataclasses.asdict(cfg)))
    return json.loads(json.dumps(saved)) == same


def open_or_resume(cfg, fresh: bool = False):
    """The trainer of `cfg`'s run: None when that run has already finished (its policy.pt
    is the result), resumed from the checkpoint in its folder, a new run otherwise (or
    with `fresh`). A checkpoint of a run with other options, or one already at or past
    the asked steps without this run's policy, is refused (use --fresh)."""
    from optsched.learn.train import open_run

    out = Path(cfg.out)
    if not fresh and finished(cfg):
        return None
    if fresh or not (out / CHECKPOINT).is_file():
        return open_run(cfg, overwrite=True)
    return open_run(cfg, resume=True)


def train_and_score(job: Job, fresh: bool = False) -> dict:
    """Train (or resume, or read back) one run, then score its policy on the held-out
    days (serially: this is already one task of the fan-out)."""
    from optsched.learn.train import run_training

    trainer = open_or_resume(job.cfg, fresh)
    if trainer is not None:
        run_training(trainer)
    out = Path(job.cfg.out)
    metrics = pd.read_csv(out / METRICS)
    row = {"variant": job.variant, "seed": job.seed,
           "final_utility": float(metrics["episode_utility"].tail(3).mean()),
           "wall_s": float(metrics["wall_s"].iloc[-1])}
    if job.test_days:
        from optsched.api import evaluate_policy

        held, _ = evaluate_policy(job.cfg.scenario, str(out / POLICY),
                                  f"test:{job.test_days}", workers=1,
                                  cache=None if job.cache is None else Path(job.cache))
        days = held["days"]
        row |= {"heldout_utility": held["utility"],
                "heldout_gap_pct": 100 * float(np.mean(
                    [d["gap"] for d in days if d["gap"] is not None] or [np.nan])),
                "captured": held["captured"],
                "dropped_rate": float(np.mean([d["jobs"]["dropped"] / max(
                    d["jobs"]["arrived"], 1) for d in days])),
                "late_rate": float(np.mean([d["jobs"].get("late", 0.0) / max(
                    d["jobs"]["served"], 1) for d in days]))}
    return row | {"curve": metrics[["steps", "wall_s", "episode_utility"]].to_dict("list")}


def run_jobs(jobs: list[Job], workers: int = 1, ray_address: str | None = None,
             fresh: bool = False, progress=None) -> list[dict]:
    """Every job's row, in the order of `jobs`, fanned out (optsched.parallel), the
    costliest runs started first."""
    from optsched.learn.train import estimated_cost
    from optsched.parallel import fan_out

    return fan_out(partial(train_and_score, fresh=fresh), jobs, workers, ray_address,
                   describe=Job.label, progress=progress,
                   cost=lambda job: estimated_cost(job.cfg))


def make_jobs(args) -> list[Job]:
    """(variant, grid point, seed) runs, each with its own folder under --out."""
    from optsched.learn.train import TrainConfig
    from optsched.options import train_days

    grid = [{}]
    for spec in args.grid:
        key, _, vals = spec.partition("=")
        if key not in GRID_KEYS:
            raise ScenarioError("--grid", f"key must be one of {', '.join(GRID_KEYS)}", key)
        grid = [g | {key: GRID_KEYS[key](v)} for g in grid for v in vals.split(",")]
    from optsched.api import compiled

    days = tuple(train_days(f"train:{args.train_days}", args.scenario))
    action = args.action or _default_action(args.scenario)
    episode = compiled(args.scenario).T * args.num_envs
    if args.steps < episode:
        raise ScenarioError("--steps", f"fewer than one episode of {args.scenario} "
                            f"({episode:,} = slots x --num-envs)", args.steps)
    for base in args.variants:
        if base not in VARIANTS:
            raise ScenarioError("--variants", f"must be among {', '.join(VARIANTS)}", base)
    jobs = []
    # Seed-major, so that runs done early cover every variant: a run cut short still
    # leaves whole seeds to look at.
    for seed in args.seeds:
        for base in args.variants:
            algo, shaping = VARIANTS[base]
            for extra in grid:
                name = base + "".join(f" {k}={v}" for k, v in extra.items())
                out = args.out / (name.replace(" ", "_").replace("=", "") + f"-s{seed}")
                cfg = TrainConfig(algo=algo, shaping=shaping, action=action,
                                  scenario=args.scenario, reward="settlement",
                                  steps=args.steps, seed=seed, num_envs=args.num_envs,
                                  updates_per_step=args.updates_per_step, gamma=args.gamma,
                                  days=days, out=str(out.resolve()),
                                  checkpoint_every=args.checkpoint_every,
                                  **{k.replace("-", "_"): v for k, v in extra.items()})
                jobs.append(Job(name, seed, cfg, args.test_days,
                                str(args.cache.resolve())))
    return jobs


def _default_action(scenario: str) -> str:
    """provision-battery where GPUs are committed before arrivals (the shipped model's
    action there), dispatch-battery otherwise."""
    from optsched.api import compiled

    return "provision-battery" if compiled(scenario).commit else "dispatch-battery"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="jemas-3-genai", help="embedded family")
    ap.add_argument("--steps", type=int, default=147_456,
                    help="env steps per run, the same for every variant (default: 8 "
                    "episodes of 64 copies)")
    ap.add_argument("--action", default=None,
                    choices=["provision-battery", "dispatch-battery", "dispatch", "direct"],
                    help="default: provision-battery where the family commits GPUs before "
                    "arrivals, else dispatch-battery")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--variants", nargs="+", default=PAPER)
    ap.add_argument("--train-days", type=int, default=64)
    ap.add_argument("--test-days", type=int, default=10)
    ap.add_argument("--num-envs", type=int, default=64)
    ap.add_argument("--updates-per-step", type=int, default=1,
                    help="off-policy gradient updates per batched env step (of --num-envs "
                    "copies)")
    ap.add_argument("--gamma", type=float, default=0.999,
                    help="discount, every variant (0.99 sees about 8 h of a day)")
    ap.add_argument("--checkpoint-every", type=int, default=18_432,
                    help="env steps between checkpoints (one episode of 64 copies)")
    ap.add_argument("--out", type=Path, default=Path("runs/learning"))
    ap.add_argument("--cache", type=Path, default=Path(".optsched-cache"),
                    help="oracle cache folder")
    ap.add_argument("--workers", type=int, default=2,
                    help="runs at a time (Ray tasks; 1: serially without Ray)")
    ap.add_argument("--ray-address", default=None, help="a Ray cluster instead of a local "
                    "runtime")
    ap.add_argument("--fresh", action="store_true",
                    help="start every run anew instead of resuming its checkpoint")
    ap.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                    help=f"vary a train option ({', '.join(GRID_KEYS)}) per variant")
    ap.add_argument("--from-results", action="store_true",
                    help="summarise and plot --out/results.json of a finished benchmark "
                    "again, without running anything")
    ap.add_argument("--tune", action="store_true",
                    help="a Ray Tune + ASHA search of the shaping settings instead")
    ap.add_argument("--tune-samples", type=int, default=8, help="--tune: trials")
    args = ap.parse_args()
    try:
        if args.tune:
            tune_shaping(args)
        else:
            benchmark(args)
    except OptschedError as exc:                # bad options, Ray missing: one line
        sys.exit(f"learning: {exc}")


def t95(values) -> tuple[float, float, float]:
    """(mean, low, high): the mean with its 95% t interval (NaN values left out)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (float("nan"),) * 3
    m, _, lo, hi = t_interval(v)
    return float(m), float(lo), float(hi)


def smoothed(curve: dict) -> np.ndarray:
    """A run's episode utilities, rolling mean of 3 (the curves' and crossings' smoothing)."""
    return pd.Series(curve["episode_utility"]).rolling(3, min_periods=1).mean().to_numpy()


def mean_curve(runs: list[dict], key: str = "steps", points: int = 60
               ) -> tuple[np.ndarray, np.ndarray]:
    """(grid, utilities [runs, points]): every run's episode utility (rolling mean of 3)
    on a common grid of `key` up to the shortest run."""
    end = min(max(c[key]) for c in runs)
    grid = np.linspace(min(c[key][0] for c in runs), end, points)
    ys = np.array([np.interp(grid, c[key], smoothed(c)) for c in runs])
    return grid, ys


def crossing_level(rows: list[dict]) -> float:
    """The utility level every variant's mean curve reaches: the lowest of their best
    mean-curve values."""
    names = dict.fromkeys(r["variant"] for r in rows)
    return float(min(mean_curve([r["curve"] for r in rows if r["variant"] == n])[1]
                     .mean(axis=0).max() for n in names))


def steps_to(curve: dict, level: float) -> float:
    """Env steps at which one run's smoothed curve first reaches `level` (NaN: never)."""
    u = smoothed(curve)
    hit = np.flatnonzero(u >= level)
    return float(curve["steps"][hit[0]]) if hit.size else float("nan")


def summarise(rows: list[dict]) -> tuple[pd.DataFrame, float]:
    """Per variant: mean [95% t interval] over seeds of each measure, and the level the
    steps-to column refers to."""
    level = crossing_level(rows)
    first = rows[0]["variant"]           # seed-major jobs: the first variant asked
    base = {r["seed"]: r.get("heldout_gap_pct") for r in rows if r["variant"] == first}
    final = {r["seed"]: r["final_utility"] for r in rows if r["variant"] == first}
    table = []
    for name in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == name]
        reach = [steps_to(r["curve"], level) for r in mine]
        line = {"variant": name, "seeds": len(mine),
                "reached": f"{int(np.isfinite(reach).sum())}/{len(mine)}"}
        measures = {"final_utility": [r["final_utility"] for r in mine],
                    "steps_to_level": reach, "wall_s": [r["wall_s"] for r in mine]}
        if name != first:                # the same seed trains on the same days: paired
            measures[f"final_minus_{first}"] = [r["final_utility"] - final[r["seed"]]
                                                for r in mine if r["seed"] in final]
        if "heldout_gap_pct" in mine[0]:
            measures |= {k: [r[k] for r in mine] for k in
                         ("heldout_gap_pct", "dropped_rate", "late_rate")}
            if name != first:
                measures[f"gap_minus_{first}"] = [r["heldout_gap_pct"] - base[r["seed"]]
                                                  for r in mine if r["seed"] in base]
        for key, vals in measures.items():
            if not np.isfinite(np.asarray(vals, float)).all():
                # a mean over the seeds that got there would flatter the variant
                line[key] = "not every seed"
                continue
            m, lo, hi = t95(vals)
            line[key] = f"{m:.4g} [{lo:.4g}, {hi:.4g}]"
        table.append(line)
    return pd.DataFrame(table).set_index("variant"), level


def markdown(table: pd.DataFrame) -> str:
    cols = [table.index.name or "", *table.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(map(str, (i, *row))) + " |"
              for i, row in zip(table.index, table.itertuples(index=False), strict=True)]
    return "\n".join(lines)


def benchmark(args) -> None:
    if args.from_results:
        # What ran is read from the results, not from this command line.
        saved = json.loads((args.out / "results.json").read_text())
        meta, rows = saved["meta"], saved["rows"]
    else:
        jobs = make_jobs(args)
        rows = run_jobs(jobs, args.workers, args.ray_address, args.fresh,
                        progress=lambda msg: print(f"learning: {msg}", file=sys.stderr))
        cfg = jobs[0].cfg
        meta = {"scenario": cfg.scenario, "action": cfg.action, "steps": cfg.steps,
                "num_envs": cfg.num_envs, "updates_per_step": cfg.updates_per_step,
                "gamma": cfg.gamma, "seeds": args.seeds, "variants": args.variants,
                "train_days": list(cfg.days), "test_days": args.test_days}
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "results.json",
                          json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    table, level = summarise(rows)
    text = (f"{meta['scenario']}, {meta['action']}, {meta['steps']:,} env steps per run "
            f"({meta['num_envs']} copies, {meta['updates_per_step']} update(s) per batched "
            f"step, gamma {meta['gamma']}), {len(meta['train_days'])} training days, "
            f"first {meta['test_days']} held-out days; steps_to_level: first env step of a "
            f"seed's smoothed training curve at {level:,.1f} $/day\n\n"
            + markdown(table) + "\n")
    atomic_write_text(args.out / "summary.md", text)
    print(text)
    _plot(rows, args.out / "curves.png", level)


# ----------------------------------------------------------------- Ray Tune + ASHA


def tune_space(shaping: str) -> dict:
    """The shaping settings searched (Tune's sampling primitives)."""
    from ray import tune

    space = {"eta": tune.choice([0.1, 0.2, 0.4, 0.8]),
             "shaping_warmup": tune.choice([0, 2_304, 5_000])}
    if shaping == "diffusion":
        space["diffusion_steps"] = tune.choice([3, 5, 8])
    return space


def tune_trial(config: dict, base: dict, runs: str) -> None:
    """One Tune trial: a training run in a folder of its own (resumed from its checkpoint
    when the search is restored), reporting after every finished episode."""
    from ray import tune

    from optsched.learn.train import TrainConfig, run_training

    # Named by the trial (stable when Tune restores the search; two trials may draw the
    # same settings) and its settings.
    name = "-".join([tune.get_context().get_trial_id(),
                     *(f"{k}{config[k]}" for k in sorted(config))])
    cfg = TrainConfig(**base, **config, out=str(Path(runs) / name))
    trainer = open_or_resume(cfg)
    seen = 0

    def report(_steps: int) -> None:
        nonlocal seen
        if len(trainer.rows) > seen:
            seen = len(trainer.rows)
            tune.report({"steps": trainer.steps, "episodes": seen,
                         "episode_utility": float(np.mean(
                             [r["episode_utility"] for r in trainer.rows[-3:]]))})
    if trainer is None:                        # finished before the search was killed
        frame = pd.read_csv(Path(cfg.out) / METRICS)
        tune.report({"steps": int(frame["steps"].iloc[-1]), "episodes": len(frame),
                     "episode_utility": float(frame["episode_utility"].tail(3).mean())})
        return
    run_training(trainer, report)


def tune_shaping(args) -> None:
    """Ray Tune over the shaping settings of the first variant, ASHA stopping the trials
    that trail at each rung of environment steps."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from optsched.learn.train import TrainConfig
    from optsched.options import train_days
    from optsched.parallel import runtime

    variant = args.variants[0]
    algo, shaping = VARIANTS[variant]
    if shaping == "none":
        raise ScenarioError("--variants", "--tune searches shaping settings: the first "
                            "variant needs shaping (e.g. sac+mlp)", variant)
    base = {"algo": algo, "shaping": shaping, "scenario": args.scenario,
            "action": args.action or _default_action(args.scenario), "reward": "settlement",
            "steps": args.steps, "seed": args.seeds[0], "num_envs": args.num_envs,
            "updates_per_step": args.updates_per_step, "gamma": args.gamma,
            "days": tuple(train_days(f"train:{args.train_days}", args.scenario)),
            "checkpoint_every": args.checkpoint_every}
    TrainConfig(**base)                                   # bad options fail before Ray
    root = (args.out / "tune").resolve()
    from optsched.api import compiled

    episode = compiled(args.scenario).T * args.num_envs      # env steps of one episode
    trainable = tune.with_resources(
        partial(tune_trial, base=base, runs=str(root / "runs")), {"cpu": 1})
    with runtime(args.workers, args.ray_address):
        path = str(root / "search")
        if tune.Tuner.can_restore(path):
            print(f"learning: restoring the search in {path}", file=sys.stderr)
            tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True,
                                       resume_errored=True)
        else:
            scheduler = ASHAScheduler(time_attr="steps", max_t=args.steps,
                                      grace_period=min(2 * episode, args.steps),
                                      reduction_factor=2)
            tuner = tune.Tuner(
                trainable, param_space=tune_space(shaping),
                tune_config=tune.TuneConfig(metric="episode_utility", mode="max",
                                            scheduler=scheduler,
                                            num_samples=args.tune_samples,
                                            max_concurrent_trials=args.workers),
                run_config=tune.RunConfig(name="search", storage_path=str(root),
                                          verbose=0))
        grid = tuner.fit()
    errors = [r for r in grid if r.error]
    if errors:
        raise SystemExit(f"learning: {len(errors)} of {len(grid)} trials failed; run again "
                         f"with the same --out to resume them ({errors[0].error!r:.200})")
    rows = [{**r.config, **{k: r.metrics.get(k) for k in ("steps", "episodes",
                                                            "episode_utility")}}
            for r in grid]
    best = grid.get_best_result(metric="episode_utility", mode="max", scope="last")
    result = {"variant": variant, "best": best.config, "trials": rows}
    atomic_write_text(root / "results.json", json.dumps(result, indent=1) + "\n")
    print(pd.DataFrame(rows).sort_values("episode_utility", ascending=False).to_string())
    print(f"best: {best.config}")


def _plot(rows: list[dict], path: Path, level: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def band(ax, grid, ys, label, color):
        mean, _, low, high = t_interval(ys)
        ax.plot(grid, mean, label=label, color=color)
        if len(ys) > 1:
            ax.fill_between(grid, low, high, alpha=0.2, color=color)

    fig, axes = plt.subplots(1, 3, figsize=(18, 4.5))
    names = list(dict.fromkeys(r["variant"] for r in rows))
    first = {r["seed"]: r["curve"] for r in rows if r["variant"] == names[0]}
    for name, color in zip(names, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 9,
                           strict=False):
        mine = [r for r in rows if r["variant"] == name]
        runs = [r["curve"] for r in mine]
        for ax, key in zip(axes[:2], ("steps", "wall_s"), strict=True):
            band(ax, *mean_curve(runs, key), f"{name} ({len(runs)} seeds)", color)
        paired = [r for r in mine if r["seed"] in first]
        if name != names[0] and paired:
            grid, ys = mean_curve([r["curve"] for r in paired]
                                  + [first[r["seed"]] for r in paired])
            band(axes[2], grid, ys[:len(paired)] - ys[len(paired):], name, color)
    if level is not None:
        for ax in axes[:2]:
            ax.axhline(level, color="grey", lw=0.8, ls="--")
    axes[2].axhline(0.0, color="grey", lw=0.8)
    axes[0].set_xlabel("environment steps")
    axes[1].set_xlabel("wall time (s)")
    axes[2].set_xlabel("environment steps")
    axes[0].set_ylabel("training episode utility ($/day), mean and 95% band")
    axes[2].set_ylabel(f"minus {names[0]} on the same seed and days ($/day)")
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
