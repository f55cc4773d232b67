"""Environment benchmark: batched steps per second and single-env step latency.

    python benchmarks/env.py [--seconds 3]          (taskset -c 0 python ... : one core)

Runs on one thread (OMP/BLAS/numba threads pinned to 1). Random actions on training
days: the raw core (`direct`) and the dispatch action spaces training uses on jemas-3
(`dispatch-battery`, `dispatch`), and `provision-battery`, the shipped learned model's,
on jemas-3-genai. Rates are this process's CPU time, so that other work on a shared
machine does not count (it still slows the caches); the load (`uptime`) is printed
beside them. The raw core costs the same in every slot, so its figure is the median of 5
rounds; a dispatch slot costs more the more jobs are pending (a night slot ~10x less
than a busy one), so its figure covers whole days: whole episodes (each from a reset on
random training days) until `--seconds` have passed, the median of their rates where
there are several. The compiled kernels are loaded before the clock starts (their first
compile happens once per checkout).
"""

from __future__ import annotations

import argparse
import functools
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402


def steps_per_second(core, seconds: float, rounds: int = 5) -> tuple[float, float]:
    """Median over `rounds` timed rounds (this VM's speed wanders by ~20% from one
    second to the next): env steps per second and CPU seconds per batched step."""
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (64, core.B, core.action_dim))
    core.reset(seed=0)
    core.step(actions[0])          # compiled kernels load (or compile) outside the clock
    per_step, n = [], 0
    for _ in range(rounds):
        k, start = 0, time.process_time()
        while (elapsed := time.process_time() - start) < seconds / rounds:
            if core.t >= core.T:
                core.reset()
            core.step(actions[n % 64])
            n += 1
            k += 1
        per_step.append(elapsed / k)
    per = float(np.median(per_step))
    return core.B / per, per


def steps_per_second_days(core, seconds: float) -> tuple[float, float]:
    """Whole episodes (every slot of a day once) until `seconds` of CPU time have
    passed, at least one: the median of their env steps per second and CPU seconds per
    batched step."""
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (64, core.B, core.action_dim))
    core.reset(seed=0)
    core.step(actions[0])          # compiled kernels load (or compile) outside the clock
    per_step, spent = [], 0.0
    while spent < seconds or not per_step:
        core.reset()
        start = time.process_time()
        for t in range(core.T):
            core.step(actions[t % 64])
        elapsed = time.process_time() - start
        spent += elapsed
        per_step.append(elapsed / core.T)
    per = float(np.median(per_step))
    return core.B / per, per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024, 8192])
    ap.add_argument("--mpc", action="store_true", help="also time MPC and myopic-lp")
    ap.add_argument("--dispatch", type=int, nargs="*", default=[1, 64, 1024],
                    help="batch sizes for the dispatch action spaces, timed over whole "
                         "days (a price search per copy and slot makes them slower than "
                         "the direct one: 8192 takes ~1 min a day)")
    ap.add_argument("--warm", type=int, nargs="*", default=[1024],
                    help="batch sizes for dispatch-battery with warm-started prices")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    from optsched.env import DayBank, EnvConfig
    from optsched.env.dispatch import DispatchCore
    from optsched.env.gym import OptschedEnv
    from optsched.learn.train import ACTIONS
    from optsched.scenario import genai, jemas3

    bank = DayBank.from_family(jemas3.train_days()[:16])
    banks = {"jemas-3": bank,
             "jemas-3-genai": DayBank.from_family(genai.train_days()[:16],
                                                  source="jemas-3-genai")}
    table = Table(title="environment speed (one thread; CPU time of this process)")
    for col in ("action", "scenario", "B", "env steps / s", "ms per batched step",
                "us per copy-step"):
        table.add_column(col, justify="right")
    # The warm-started dispatch (DispatchCore(warm_start=True)) is timed too: faster,
    # but its plans are not the cold start's (see DispatchCore).
    warm = functools.partial(DispatchCore, waiting=False, warm_start=True)
    runs = (("direct", "jemas-3", args.batches),
            ("provision-battery", "jemas-3-genai", args.dispatch),
            ("dispatch-battery", "jemas-3", args.dispatch),
            ("dispatch", "jemas-3", args.dispatch),
            ("dispatch-battery warm", "jemas-3", args.warm))
    for action, scenario, sizes in runs:
        make = ACTIONS.get(action, warm)
        timer = steps_per_second if action == "direct" else steps_per_second_days
        for B in sizes:
            rate, per = timer(make(banks[scenario], B, EnvConfig()), args.seconds)
            table.add_row(action, scenario, f"{B:,}", f"{rate:,.0f}", f"{per * 1e3:.3f}",
                          f"{per / B * 1e6:.3f}")
    env = OptschedEnv(bank=bank)
    env.reset(seed=0)
    action = env.action_space.sample()
    env.step(action)
    singles = []
    for _ in range(5):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds / 5:
            _, _, term, _, _ = env.step(action)
            n += 1
            if term:
                env.reset()
        singles.append((time.perf_counter() - start) / n)
    single = float(np.median(singles))
    Console(width=110).print(table)
    Console().print(f"single gymnasium env step: {single * 1e6:.1f} us (wall)")
    Console().print(f"load (uptime): {_uptime()}")
    if args.mpc:
        from optsched.policies import rollout
        from optsched.policies.mpc import MPC, myopic_lp

        c = bank.day(0)
        for policy in (MPC(), myopic_lp()):
            start = time.perf_counter()
            rollout(policy, [c])
            total = time.perf_counter() - start
            Console().print(
                f"{policy.name}: {total / c.T:.3f} s per decision (slot) on one day, "
                f"{np.mean(policy.solve_seconds):.3f} s per LP solve, "
                f"{len(policy.solve_seconds)} solves")


def _uptime() -> str:
    """The load averages over 1, 5 and 15 minutes (this process's figures are CPU time,
    but a loaded machine still slows the caches)."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


if __name__ == "__main__":
    main()
