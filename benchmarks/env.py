"""Environment benchmark: batched steps per second and single-env step latency.

    python benchmarks/env.py [--seconds 3]

Runs on one core (threads pinned to 1). Random actions on jemas-3 training days, for the
raw core (`direct`) and the dispatch action spaces training uses (`dispatch-battery`,
`dispatch`). Each figure is the median of 5 rounds of this process's CPU time, so that
other work on a shared machine does not count (it still slows the caches); the compiled
kernels are loaded before the clock starts (their first compile happens once per
checkout).
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024, 8192])
    ap.add_argument("--mpc", action="store_true", help="also time MPC and myopic-lp")
    ap.add_argument("--dispatch", type=int, nargs="*", default=[1, 64, 1024, 8192],
                    help="batch sizes for the dispatch action spaces (a Newton solve per "
                         "copy and slot makes them slower than the direct one)")
    ap.add_argument("--warm", type=int, nargs="*", default=[1024],
                    help="batch sizes for dispatch-battery with warm-started prices")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    from optsched.env import DayBank, EnvConfig
    from optsched.env.gym import OptschedEnv
    from optsched.scenario import jemas3

    bank = DayBank.from_family(jemas3.train_days()[:16])
    table = Table(title="environment speed (jemas-3, one core)")
    for col in ("action", "B", "env steps / s", "ms per batched step", "us per copy-step"):
        table.add_column(col, justify="right")
    from optsched.env.dispatch import DispatchCore
    from optsched.learn.train import ACTIONS

    # The warm-started dispatch (DispatchCore(warm_start=True)) is timed too: faster,
    # but its plans are not the cold start's (see DispatchCore).
    warm = functools.partial(DispatchCore, waiting=False, warm_start=True)
    for action, sizes in (("direct", args.batches), ("dispatch-battery", args.dispatch),
                          ("dispatch", args.dispatch), ("dispatch-battery warm", args.warm)):
        make = ACTIONS.get(action, warm)
        for B in sizes:
            rate, per = steps_per_second(make(bank, B, EnvConfig()), args.seconds)
            table.add_row(action, f"{B:,}", f"{rate:,.0f}", f"{per * 1e3:.3f}",
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
    Console(width=100).print(table)
    Console().print(f"single gymnasium env step: {single * 1e6:.1f} us (wall)")
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


if __name__ == "__main__":
    main()
