"""The policy interface and the one rollout: policies act on the environment, the evaluator
scores what they did.

Same question, same answer: `rollout` plays every day in its own environment (a bank of
that day alone), so a day's result never depends on which other days were asked for in the
same call (the environment's observation scales are taken over its bank), and a policy's
randomness comes from generators seeded by (its `seed`, that day's forecast series) (see
`day_rng`), never from a stream shared across days.

What a policy knows: with provisioning on (`Compiled.commit`) it acts on
`optsched.env.known.Known`, the environment with the arrivals not yet seen replaced by
forecasts from the past, unless it declares `foresight = True` (mpc, mpc-noisy: perfect
or noisy forecasts of the real day, upper-bound style baselines); `provision_quantile`
(a policy attribute, 0.9 for the heuristics) is the forecast quantile it provisions
GPUs for: a planner plans the slot on the point forecast and gets GPUs for the quantile
(`provision_for`); an actor sees the slot at the quantile and commits GPUs itself.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

import numpy as np

from optsched.env.bank import DayBank
from optsched.env.core import BatchedCore, EnvConfig
from optsched.env.known import knowing, provision_for, provisioning
from optsched.evaluator import Evaluation, evaluate
from optsched.scenario.compile import Compiled
from optsched.schedule import Schedule


@runtime_checkable
class Actor(Protocol):
    """Acts through the environment's action space."""

    name: str

    def act(self, core: BatchedCore, obs: np.ndarray) -> np.ndarray:
        """Actions [B, action_dim] in [-1, 1] for the core's current slot."""
        ...


@runtime_checkable
class Planner(Protocol):
    """Acts through a detailed plan, repaired by the environment (MPC, dispatch-based
    learned policies)."""

    name: str

    def plan(self, core: BatchedCore) -> tuple[np.ndarray, ...]:
        """(x [B, K, O], battery kW [B, I], drops [B, K]) for the core's current slot,
        and with provisioning optionally the GPUs to commit [B, I] (else the repair
        provisions for the plan: `BatchedCore.provision`)."""
        ...


Policy = Actor | Planner


def day_rng(seed: int, c: Compiled) -> np.random.Generator:
    """The random stream of one day: seeded by `seed` and the day's forecast series
    (arrivals, prices, renewables), so it is the same whichever days share a run."""
    h = hashlib.sha256()
    for key in ("arrivals", "price", "renewable"):
        h.update(np.ascontiguousarray(getattr(c, key), dtype=np.float64).tobytes())
    return np.random.default_rng([int(seed), int.from_bytes(h.digest()[:8], "little")])


def rollout(policy: Policy, days: list[Compiled] | DayBank, reward: str = "dense"
            ) -> list[tuple[Schedule, Evaluation, float]]:
    """One episode per day, each in its own environment; per day the repaired schedule,
    its evaluation and the sum of rewards (equal to the evaluator's utility, checked)."""
    compiled = [days.day(j) for j in range(len(days))] if isinstance(days, DayBank) \
        else list(days)
    return [_episode(policy, c, reward) for c in compiled]


def _episode(policy: Policy, c: Compiled, reward: str) -> tuple[Schedule, Evaluation, float]:
    core = BatchedCore(DayBank.from_compiled([c]), 1, EnvConfig(reward=reward, record=True))
    obs = core.reset(days=np.zeros(1, dtype=np.int64))
    total, done = 0.0, False
    planner = isinstance(policy, Planner)
    view, high = knowing(core, policy), provisioning(core, policy)
    while not done:
        if planner:
            x, battery, drop, *committed = policy.plan(view)     # (+ GPUs it commits)
            gpus = committed[0] if committed else (
                None if high is None else provision_for(core, view, high, x, battery))
            obs, r, done, _ = core.step_plan(x, battery, drop, gpus=gpus)
        else:
            obs, r, done, _ = core.step(policy.act(view, obs))
        total += float(r[0])
    sched = core.schedule(0)
    ev = evaluate(c, sched, milp=True)
    if abs(ev.utility - total) > 1e-6 * max(1.0, abs(ev.utility)):
        raise AssertionError(f"{policy.name}: rewards {total!r} != evaluator {ev.utility!r}")
    return sched, ev, total
