"""Learning benchmark: shaping variants x seeds at one environment-step budget.

    python benchmarks/learning.py                 # full: 6 variants x 3 seeds
    python benchmarks/learning.py --steps 9216 --seeds 0 --test-days 1 --train-days 2
    python benchmarks/learning.py --action direct  # every decision in the action
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
Reported per variant (median and interquartile range over seeds): final training episode
utility, steps to reach 90% of the final utility, held-out utility and gap to the oracle
(median over test days), deadline-violation rate (late / served) and training wall time.
Curves (utility vs env steps and vs wall time) go to `--out/curves.png`, all numbers to
`--out/results.json`.

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

from optsched.errors import OptschedError, ScenarioError
from optsched.io import atomic_write_text
from optsched.learn.loop import CHECKPOINT, METRICS, POLICY

VARIANTS = {
    "sac": ("sac", "none"),
    "sac+mlp": ("sac", "mlp"),
    "sac+diffusion": ("sac", "diffusion"),
    "sac+potential": ("sac", "potential"),
    "td3+diffusion": ("td3", "diffusion"),
    "ppo": ("ppo", "none"),
}
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

    def label(self) -> str:
        return f"{self.variant} seed {self.seed}"


def open_or_resume(cfg, fresh: bool = False):
    """The trainer of `cfg`'s run: resumed from the checkpoint in its folder, None when
    that run has already finished (its policy.pt is the result), a new run otherwise (or
    with `fresh`). A checkpoint of a run with other options is refused (use --fresh)."""
    from optsched.learn.train import open_run

    out = Path(cfg.out)
    if fresh or not (out / CHECKPOINT).is_file():
        return open_run(cfg, overwrite=True)
    try:
        return open_run(cfg, resume=True)
    except ScenarioError as exc:
        if exc.path == "--steps" and (out / POLICY).is_file():
            return None
        raise


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
           "steps_to_90": steps_to_90(metrics),
           "wall_s": float(metrics["wall_s"].iloc[-1])}
    if job.test_days:
        from optsched.api import evaluate_policy

        held, _ = evaluate_policy("jemas-3", str(out / POLICY), f"test:{job.test_days}",
                                  workers=1)
        late = [d["jobs"]["late"] / max(d["jobs"]["served"], 1) for d in held["days"]]
        row |= {"heldout_utility": held["utility"], "heldout_gap": held["gap"],
                "captured": held["captured"], "late_rate": float(np.median(late))}
    return row | {"curve": metrics[["steps", "wall_s", "episode_utility"]].to_dict("list")}


def run_jobs(jobs: list[Job], workers: int = 1, ray_address: str | None = None,
             fresh: bool = False, progress=None) -> list[dict]:
    """Every job's row, in the order of `jobs`, fanned out (optsched.parallel)."""
    from optsched.parallel import fan_out

    return fan_out(partial(train_and_score, fresh=fresh), jobs, workers, ray_address,
                   describe=Job.label, progress=progress)


def steps_to_90(frame: pd.DataFrame) -> float:
    u = frame["episode_utility"].rolling(3, min_periods=1).mean().to_numpy()
    start, final = u[0], u[-1]
    if final <= start:
        return float("nan")
    hit = np.flatnonzero(u >= start + 0.9 * (final - start))
    return float(frame["steps"].iloc[hit[0]]) if hit.size else float("nan")


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
    days = tuple(train_days(f"train:{args.train_days}"))
    jobs = []
    for base in args.variants:
        if base not in VARIANTS:
            raise ScenarioError("--variants", f"must be among {', '.join(VARIANTS)}", base)
        algo, shaping = VARIANTS[base]
        for extra in grid:
            name = base + "".join(f" {k}={v}" for k, v in extra.items())
            for seed in args.seeds:
                out = args.out / (name.replace(" ", "_").replace("=", "") + f"-s{seed}")
                cfg = TrainConfig(algo=algo, shaping=shaping, action=args.action,
                                  reward="settlement", steps=args.steps, seed=seed,
                                  num_envs=args.num_envs, days=days, out=str(out.resolve()),
                                  checkpoint_every=args.checkpoint_every,
                                  **{k.replace("-", "_"): v for k, v in extra.items()})
                jobs.append(Job(name, seed, cfg, args.test_days))
    return jobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 3 episodes of 16 copies: sac+diffusion, the slowest, takes ~5 min here with two
    # runs side by side (46,080 steps took it 16-21 min).
    ap.add_argument("--steps", type=int, default=13_824)
    ap.add_argument("--action", default="dispatch-battery",
                    choices=["dispatch-battery", "dispatch", "direct"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--train-days", type=int, default=64)
    ap.add_argument("--test-days", type=int, default=7)
    ap.add_argument("--num-envs", type=int, default=16)
    ap.add_argument("--checkpoint-every", type=int, default=4_608,
                    help="env steps between checkpoints (one episode of 16 copies)")
    ap.add_argument("--out", type=Path, default=Path("runs/learning"))
    ap.add_argument("--workers", type=int, default=2,
                    help="runs at a time (Ray tasks; 1: serially without Ray)")
    ap.add_argument("--ray-address", default=None, help="a Ray cluster instead of a local "
                    "runtime")
    ap.add_argument("--fresh", action="store_true",
                    help="start every run anew instead of resuming its checkpoint")
    ap.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                    help=f"vary a train option ({', '.join(GRID_KEYS)}) per variant")
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


def benchmark(args) -> None:
    jobs = make_jobs(args)
    rows = run_jobs(jobs, args.workers, args.ray_address, args.fresh,
                    progress=lambda msg: print(f"learning: {msg}", file=sys.stderr))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "results.json", json.dumps(rows, indent=1) + "\n")
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "curve"} for r in rows])
    summary = table.groupby("variant").agg(
        lambda s: f"{s.median():.4g} [{s.quantile(0.25):.4g}, {s.quantile(0.75):.4g}]"
        if s.dtype.kind == "f" and s.notna().any() else "")
    print(summary.drop(columns="seed").to_string())
    _plot(rows, args.out / "curves.png")


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
    base = {"algo": algo, "shaping": shaping, "action": args.action, "reward": "settlement",
            "steps": args.steps, "seed": args.seeds[0], "num_envs": args.num_envs,
            "days": tuple(train_days(f"train:{args.train_days}")),
            "checkpoint_every": args.checkpoint_every}
    TrainConfig(**base)                                   # bad options fail before Ray
    root = (args.out / "tune").resolve()
    from optsched.api import compiled

    episode = compiled("jemas-3").T * args.num_envs          # env steps of one episode
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


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for name in dict.fromkeys(r["variant"] for r in rows):
        runs = [r["curve"] for r in rows if r["variant"] == name]
        for ax, key in zip(axes, ("steps", "wall_s"), strict=True):
            grid = np.linspace(0, min(max(c[key]) for c in runs), 50)
            ys = np.array([np.interp(grid, c[key], c["episode_utility"]) for c in runs])
            med = np.median(ys, axis=0)
            ax.plot(grid, med, label=name)
            ax.fill_between(grid, np.quantile(ys, 0.25, axis=0), np.quantile(ys, 0.75, axis=0),
                            alpha=0.2)
    axes[0].set_xlabel("environment steps")
    axes[1].set_xlabel("wall seconds")
    axes[0].set_ylabel("training episode utility ($/day)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
