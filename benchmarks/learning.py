"""Learning benchmark: shaping variants x seeds at one environment-step budget.

    python benchmarks/learning.py                 # full: 6 variants x 3 seeds
    python benchmarks/learning.py --steps 9216 --seeds 0 --test-days 1 --train-days 2
    python benchmarks/learning.py --action direct  # every decision in the action
    python benchmarks/learning.py --variants sac+diffusion --grid eta=0.2,0.4,0.8
                                                   # the paper's shaping-weight study

Each run is `optsched train` in its own process (two at a time on the two cores), on the
settlement reward. Reported per variant (median and interquartile range over seeds):
final training episode utility, steps to reach 90% of the final utility, held-out utility
and gap to the oracle (median over test days), deadline-violation rate (late / served)
and training wall time. Curves (utility vs env steps and vs wall time) go to
`--out/curves.png`, all numbers to `--out/results.json`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from optsched.learn.loop import RUN_FILES

VARIANTS = {
    "sac": ("sac", "none"),
    "sac+mlp": ("sac", "mlp"),
    "sac+diffusion": ("sac", "diffusion"),
    "sac+potential": ("sac", "potential"),
    "td3+diffusion": ("td3", "diffusion"),
    "ppo": ("ppo", "none"),
}


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def steps_to_90(frame: pd.DataFrame) -> float:
    u = frame["episode_utility"].rolling(3, min_periods=1).mean().to_numpy()
    start, final = u[0], u[-1]
    if final <= start:
        return float("nan")
    hit = np.flatnonzero(u >= start + 0.9 * (final - start))
    return float(frame["steps"].iloc[hit[0]]) if hit.size else float("nan")


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
    ap.add_argument("--out", type=Path, default=Path("runs/learning"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                    help="vary a train option (eta, diffusion-steps, latent) per variant")
    args = ap.parse_args()
    grid = [{}]
    for spec in args.grid:
        key, _, vals = spec.partition("=")
        grid = [g | {key: v} for g in grid for v in vals.split(",")]
    cli = [sys.executable, "-m", "optsched.cli"]
    jobs = []
    for base in args.variants:
        algo, shaping = VARIANTS[base]
        for extra in grid:
            name = base + "".join(f" {k}={v}" for k, v in extra.items())
            flags = [x for k, v in extra.items() for x in (f"--{k}", v)]
            for seed in args.seeds:
                out = args.out / (name.replace(" ", "_").replace("=", "") + f"-s{seed}")
                jobs.append((name, seed, out, [
                    *cli, "train", "--algo", algo, "--shaping", shaping, "--action",
                    args.action, "--reward", "settlement", "--steps", str(args.steps),
                    "--seed", str(seed), "--days", f"train:{args.train_days}", "--out",
                    str(out), *flags]))
    for _, _, out, _ in jobs:          # the benchmark's own run folders are made anew (a
        for name in RUN_FILES:         # training run refuses a folder holding one)
            (out / name).unlink(missing_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda j: run(j[3]), jobs))
    rows = []
    for (name, seed, out, _), proc in zip(jobs, done, strict=True):
        if proc.returncode:
            print(f"{name} seed {seed} failed: {proc.stderr.strip()[-300:]}", file=sys.stderr)
            continue
        metrics = pd.read_csv(out / "metrics.csv")
        ev = run([*cli, "evaluate", "jemas-3", "--policy", str(out / "policy.pt"),
                  "--days", f"test:{args.test_days}", "--json"])
        held = json.loads(ev.stdout) if ev.returncode == 0 else {}
        late = [d["jobs"]["late"] / max(d["jobs"]["served"], 1) for d in held.get("days", [])]
        rows.append({"variant": name, "seed": seed,
                     "final_utility": float(metrics["episode_utility"].tail(3).mean()),
                     "steps_to_90": steps_to_90(metrics),
                     "wall_s": float(metrics["wall_s"].iloc[-1]),
                     "heldout_utility": held.get("utility"), "heldout_gap": held.get("gap"),
                     "captured": held.get("captured"),
                     "late_rate": float(np.median(late)) if late else None,
                     "curve": metrics[["steps", "wall_s", "episode_utility"]].to_dict("list")})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "curve"} for r in rows])
    if not table.empty:
        summary = table.groupby("variant").agg(
            lambda s: f"{s.median():.4g} [{s.quantile(0.25):.4g}, {s.quantile(0.75):.4g}]"
            if s.dtype.kind == "f" and s.notna().any() else "")
        print(summary.drop(columns="seed").to_string())
        _plot(rows, args.out / "curves.png")


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
