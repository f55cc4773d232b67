"""Scale-out benchmark, part 1: the speed-up of the fan-out (optsched.parallel) with 1 vs
N workers on this machine.

    python benchmarks/scale.py                       # 30 days of LP oracles, 8 training runs
    python benchmarks/scale.py --milp --days 0..9    # the MILP instead, on 10 days
    python benchmarks/scale.py --skip-learning --workers 1 2

(a) `optsched.solve_days` on `--days` of jemas-3 (default 30 days, 0..29, each the oracle's
LP relaxation with HiGHS; --milp: the MILP to its 0.1% gap), one task per day;
(b) a learning sweep of `--runs` training runs (sac and sac+mlp over seeds, a small budget
with `--steps` env steps of `--num-envs` copies, no held-out scoring), one task per run,
through benchmarks/learning.py's run_jobs (fresh folders each time).

For every worker count two wall times are given: end to end (what a command takes,
starting and stopping the local Ray runtime included) and the fan-out alone (the runtime
already up, as for a cluster at --ray-address); the speed-up is over 1 worker (serial, no
Ray). The results of every worker count are checked equal to the serial ones (objectives
bit for bit; training episode utilities): the benchmark stops if they differ. This VM's
speed wanders by 10-20% from one minute to the next: `--repeat R` runs every count R
times, round after round, and reports the medians. With each figure the 1-minute load
average is kept: on a shared machine other processes take the cores the workers would
use. Each task's own seconds are summed too, to say where a speed-up short of N went:
tasks that run slower beside each other (`slowdown`, and the `ceiling` N / slowdown it
sets), or time outside the tasks (`overhead_s`: Ray's start and stop, idle workers, and
set-up a task does not count as its own: a task's seconds are the solver's build and
solve, a training run's loop). All numbers go to `--out/scale.json`. The decomposed
oracle's part is benchmarks/scale_oracle.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.learning import Job, run_jobs  # noqa: E402
from optsched.io import atomic_write_text  # noqa: E402


def timed(fn, workers: int, warm: bool):
    """(result, seconds) of fn(workers); `warm`: the Ray runtime is started first and not
    counted (serial runs have none)."""
    from optsched.parallel import runtime

    if warm and workers > 1:
        with runtime(workers):
            t0 = time.perf_counter()
            result = fn(workers)
            return result, time.perf_counter() - t0
    t0 = time.perf_counter()
    result = fn(workers)
    return result, time.perf_counter() - t0


def oracle_days(days: str, milp: bool):
    """fn(workers) -> the objectives of one solve per day."""
    from optsched.api import solve_days

    def fn(workers: int) -> tuple[list[float], float]:
        out = solve_days("jemas-3", days, relax=not milp, workers=workers)
        return ([s.solution.objective for s in out],
                sum(s.solution.build_s + s.solution.solve_s for s in out))
    return fn


def learning_runs(args):
    """fn(workers) -> (the episode utilities of `--runs` fresh training runs, the sum of
    their own wall times)."""
    from optsched.learn.train import TrainConfig
    from optsched.options import train_days

    days = tuple(train_days(f"train:{args.train_days}"))
    variants = [("sac", "sac", "none"), ("sac+mlp", "sac", "mlp")]
    specs = [(variants[i % 2], i // 2) for i in range(args.runs)]

    def fn(workers: int) -> tuple[list[list[float]], float]:
        folder = (args.out / f"learning-w{workers}").resolve()
        shutil.rmtree(folder, ignore_errors=True)
        jobs = [Job(name, seed, TrainConfig(
            algo=algo, shaping=shaping, steps=args.steps, seed=seed, num_envs=args.num_envs,
            learning_starts=args.steps // 2, shaping_warmup=args.steps // 2, days=days,
            checkpoint_every=args.steps, out=str(folder / f"{name}-s{seed}")))
            for (name, algo, shaping), seed in specs]
        rows = run_jobs(jobs, workers)
        return ([r["curve"]["episode_utility"] for r in rows],
                sum(r["wall_s"] for r in rows))
    return fn


def measure(name: str, fn, workers: list[int], repeat: int = 1) -> dict:
    """Every worker count (and, above 1, with the runtime already up) `repeat` times, one
    round after another so that a slow spell of the machine hits all alike; the median
    seconds of each count give its speed-up over the serial median.

    fn(n) returns (results, task seconds): the tasks' own seconds, summed (each measured
    inside its task). Where the speed-up goes is then split in two: `slowdown`, how much
    longer the same tasks took beside each other than one after another (shared caches
    and memory bandwidth, other processes), which caps the speed-up at n / slowdown
    (`ceiling`) whatever the fan-out does; and `overhead_s`, the wall time not spent in
    tasks on n workers (Ray's start and stop, workers importing, idle at the end)."""
    keys = [(n, warm) for n in workers for warm in ([False, True] if n > 1 else [False])]
    times: dict[str, list[float]] = {}
    tasks: dict[str, list[float]] = {}
    loads: dict[str, list[float]] = {}
    base = None
    for r in range(repeat):
        for n, warm in keys:
            (result, task_s), secs = timed(fn, n, warm)
            if base is None:
                base = result
            key = f"{n}" + (" (runtime up)" if warm else "")
            if result != base:
                raise SystemExit(f"scale: {name}, {key} worker(s) differ from the serial "
                                 "run's results")
            times.setdefault(key, []).append(secs)
            tasks.setdefault(key, []).append(task_s)
            loads.setdefault(key, []).append(os.getloadavg()[0])   # a shared machine
            print(f"scale: {name}, round {r + 1}/{repeat}, {key} worker(s): {secs:.1f} s "
                  f"(load average {loads[key][-1]:.1f} on {os.cpu_count()} CPUs)",
                  file=sys.stderr)
    serial = statistics.median(times["1"])
    serial_tasks = statistics.median(tasks["1"])
    out: dict = {"case": name, "repeat": repeat, "workers": {}}
    for key, secs in times.items():
        med, task_s = statistics.median(secs), statistics.median(tasks[key])
        n = int(key.split()[0])
        slowdown = task_s / serial_tasks
        out["workers"][key] = {"seconds": round(med, 2),
                               "rounds_s": [round(t, 2) for t in secs],
                               "speedup": round(serial / med, 2), "equal_to_serial": True,
                               "task_s": round(task_s, 2),
                               "task_rounds_s": [round(t, 2) for t in tasks[key]],
                               "slowdown": round(slowdown, 3),
                               "ceiling": round(n / slowdown, 2),
                               "overhead_s": round(med - task_s / n, 2),
                               "load_average_1min": [round(v, 2) for v in loads[key]]}
        print(f"scale: {name}, {key} worker(s): median {med:.1f} s of {len(secs)}, "
              f"speed-up {serial / med:.2f}x (tasks {slowdown:.3f}x as long as serially: "
              f"ceiling {n / slowdown:.2f}x; {med - task_s / n:.1f} s outside tasks), "
              "equal to serial: True", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", default="0..29", help="day spec of jemas-3 (optsched.days)")
    ap.add_argument("--milp", action="store_true", help="solve the MILP, not the LP")
    ap.add_argument("--runs", type=int, default=8, help="training runs of the sweep")
    ap.add_argument("--steps", type=int, default=2_304, help="env steps per run")
    ap.add_argument("--num-envs", type=int, default=4)
    ap.add_argument("--train-days", type=int, default=2)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds of every worker count; the median is reported")
    ap.add_argument("--skip-oracle", action="store_true")
    ap.add_argument("--skip-learning", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("runs/scale"))
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error(f"--repeat: must be an integer >= 1, got {args.repeat}")
    workers = sorted(set(args.workers))
    if workers[0] != 1:
        workers = [1, *workers]                        # the serial run is the baseline
    cases = []
    if not args.skip_oracle:
        kind = "MILP" if args.milp else "LP relaxation"
        cases.append(measure(f"oracle {kind} on jemas-3 days {args.days}",
                             oracle_days(args.days, args.milp), workers,
                             args.repeat))
    if not args.skip_learning:
        cases.append(measure(f"{args.runs} training runs of {args.steps} steps",
                             learning_runs(args), workers, args.repeat))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "scale.json", json.dumps(cases, indent=1) + "\n")
    print(json.dumps(cases, indent=1))


if __name__ == "__main__":
    main()
