"""Per-job simulator benchmark: seconds to replay one default day, and the engine choice.

    python benchmarks/sim.py [--day 4] [--policy local-fixed] [--rounds 3]
    python benchmarks/sim.py --engine numba        # a bare 12-GPU FCFS queue, 750k jobs
    /tmp/simpy-venv/bin/python benchmarks/sim.py --engine simpy   # the same in simpy

Runs on one core (threads pinned to 1). The day's schedule comes from the policy's rollout
outside the clock; the clock covers `simulate` (jobs drawn, admission, service, realised
utility through the evaluator), median of the rounds, after one warm-up call that loads
(or compiles) the numba kernels. `--engine` times only a single multi-server FCFS queue
(the Kiefer-Wolfowitz recursion) in numba or simpy, the measurement behind the choice of
a compiled loop; it needs only numpy (and simpy or numba).
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

QUEUE_JOBS, QUEUE_GPUS, QUEUE_LOAD = 750_000, 12, 0.9


def queue_jobs() -> tuple[np.ndarray, np.ndarray]:
    """Poisson arrivals at 90% load, exponential service of mean 1 s."""
    rng = np.random.default_rng(0)
    service = rng.exponential(1.0, QUEUE_JOBS)
    arrival = np.cumsum(rng.exponential(1.0 / (QUEUE_LOAD * QUEUE_GPUS), QUEUE_JOBS))
    return arrival, service


def queue_simpy(arrival: np.ndarray, service: np.ndarray) -> np.ndarray:
    import simpy

    env = simpy.Environment()
    gpus = simpy.Resource(env, capacity=QUEUE_GPUS)
    start = np.empty(arrival.size)

    def job(j: int):
        with gpus.request() as req:
            yield req
            start[j] = env.now
            yield env.timeout(service[j])

    def source():
        now = 0.0
        for j in range(arrival.size):
            yield env.timeout(arrival[j] - now)
            now = arrival[j]
            env.process(job(j))

    env.process(source())
    env.run()
    return start


@functools.cache
def _kiefer_wolfowitz():
    from numba import njit

    @njit
    def kiefer_wolfowitz(arrival, service, c):
        free = np.zeros(c)
        start = np.empty(arrival.size)
        for j in range(arrival.size):
            g = np.argmin(free)
            start[j] = max(arrival[j], free[g])
            free[g] = start[j] + service[j]
        return start

    return kiefer_wolfowitz


def queue_numba(arrival: np.ndarray, service: np.ndarray) -> np.ndarray:
    return _kiefer_wolfowitz()(arrival, service, QUEUE_GPUS)


def engine(name: str) -> None:
    arrival, service = queue_jobs()
    run = queue_simpy if name == "simpy" else queue_numba
    if name == "numba":
        run(arrival[:100], service[:100])                        # compile off the clock
    t0 = time.perf_counter()
    start = run(arrival, service)
    took = time.perf_counter() - t0
    wait = start - arrival
    print(f"{name}: {arrival.size:,} jobs, {QUEUE_GPUS} servers, {took:.3f} s; "
          f"mean wait {wait.mean():.4f} s, p99 {np.percentile(wait, 99):.4f} s")


def day(args: argparse.Namespace) -> None:
    from optsched.policies import get_policy, rollout
    from optsched.scenario import compile_scenario, get_scenario
    from optsched.sim import ColdStart, simulate

    sc = get_scenario("jemas-3", args.day)
    c = compile_scenario(sc)
    sched = rollout(get_policy(args.policy), [c])[0][0]
    simulate(c, sched, seed=0)                      # kernels load
    took = []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        res = simulate(c, sched, seed=r, cold_start=ColdStart.default())
        took.append(time.perf_counter() - t0)
    n = int(res.arrived.sum())
    print(f"jemas-3 day {args.day}, {args.policy}: {n:,} jobs, simulate "
          f"{np.median(took):.2f} s (median of {args.rounds}; "
          f"{n / np.median(took) / 1e3:,.0f}k jobs/s); late {int(res.late.sum()):,}, "
          f"utility {res.utility:.2f} (fluid {res.fluid['utility']:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--day", type=int, default=4)
    ap.add_argument("--policy", default="local-fixed")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--engine", choices=("numba", "simpy"),
                    help="time only a bare FCFS queue of 750k jobs in this engine")
    args = ap.parse_args()
    if args.engine == "simpy":
        try:
            import simpy  # noqa: F401 - not a dependency of optsched: the comparison only
        except ImportError:
            ap.exit(2, "sim.py: --engine simpy needs simpy (pip install simpy)\n")
    if args.engine:
        engine(args.engine)
    else:
        day(args)


if __name__ == "__main__":
    main()
