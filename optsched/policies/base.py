"""Policies act on the batched environment; `rollout` scores them with the evaluator."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from optsched.env.bank import DayBank
from optsched.env.core import BatchedCore, EnvConfig
from optsched.evaluate import Evaluation, evaluate
from optsched.scenario.compile import Compiled
from optsched.schedule import Schedule


class Policy(Protocol):
    """Acts through the action space (`act`) or, for planners such as MPC, through a
    detailed plan (`plan(core) -> (x [B, K, O], battery kW [B, I], drops [B, K])`)."""

    name: str

    def act(self, core: BatchedCore, obs: np.ndarray) -> np.ndarray:
        """Actions [B, action_dim] in [-1, 1] for the core's current slot."""
        ...


def rollout(policy: Policy, days: list[Compiled] | DayBank, reward: str = "dense"
            ) -> list[tuple[Schedule, Evaluation, float]]:
    """Run one episode per day in one batch; per day the repaired schedule, its evaluation
    and the sum of rewards (equal to the evaluator's utility, checked here)."""
    bank = days if isinstance(days, DayBank) else DayBank.from_compiled(list(days))
    core = BatchedCore(bank, len(bank), EnvConfig(reward=reward, record=True))
    obs = core.reset(days=np.arange(len(bank)))
    total = np.zeros(len(bank))
    done = False
    planner = getattr(policy, "plan", None)
    while not done:
        if planner is not None:
            obs, r, done, _ = core.step_plan(*planner(core))
        else:
            obs, r, done, _ = core.step(policy.act(core, obs))
        total += r
    out = []
    for j in range(len(bank)):
        sched = core.schedule(j)
        ev = evaluate(bank.day(j), sched, milp=True)
        if abs(ev.utility - total[j]) > 1e-6 * max(1.0, abs(ev.utility)):
            raise AssertionError(f"{policy.name}: rewards {total[j]!r} != evaluator "
                                 f"{ev.utility!r}")
        out.append((sched, ev, float(total[j])))
    return out
