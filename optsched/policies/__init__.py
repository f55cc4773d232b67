"""Policies: rule-based baselines (and, in later issues, MPC and learned agents), all
acting on the batched environment and scored only by the evaluator."""

from __future__ import annotations

from optsched.evaluate import Evaluation
from optsched.policies.base import Policy, rollout
from optsched.policies.rules import POLICIES, LocalFixed
from optsched.scenario.compile import Compiled
from optsched.schedule import Schedule


def get_policy(name: str) -> Policy:
    """A baseline by name, or a trained checkpoint by path (`*.pt`)."""
    from pathlib import Path

    from optsched.errors import ScenarioError

    if name.endswith(".pt"):
        if not Path(name).is_file():
            raise ScenarioError("--policy", "checkpoint not found", name)
        from optsched.learn.policy import LearnedPolicy
        return LearnedPolicy(name)
    if name not in POLICIES:
        raise ScenarioError("--policy", f"unknown policy (known: {', '.join(POLICIES)})",
                            name)
    return POLICIES[name]()


def run_policy(name: str, c: Compiled) -> tuple[Schedule, Evaluation]:
    sched, ev, _ = rollout(get_policy(name), [c])[0]
    return sched, ev


def local_fixed(c: Compiled) -> Schedule:
    """The local-fixed baseline's schedule on one day (rolled through the environment)."""
    return run_policy("local-fixed", c)[0]


__all__ = ["POLICIES", "LocalFixed", "Policy", "get_policy", "local_fixed", "rollout",
           "run_policy"]
