"""Policies: rule-based baselines (and, in later issues, MPC and learned agents), all
acting on the batched environment and scored only by the evaluator."""

from __future__ import annotations

from pathlib import Path

from optsched.evaluate import Evaluation
from optsched.policies.base import Policy, rollout
from optsched.policies.rules import POLICIES, LocalFixed
from optsched.scenario.compile import Compiled
from optsched.schedule import Schedule

# The shipped learned scheduler for jemas-3 (its card: models/jemas3-scheduler.md).
SHIPPED_MODEL = Path(__file__).resolve().parents[2] / "models" / "jemas3-scheduler.pt"


def get_policy(name: str) -> Policy:
    """A baseline by name, `learned` (the shipped model), or a checkpoint path (`*.pt`)."""
    from optsched.errors import ScenarioError

    if name == "learned":
        if not SHIPPED_MODEL.is_file():
            raise ScenarioError("--policy", "the shipped model is missing (models/ is part "
                                "of the repository checkout)", str(SHIPPED_MODEL))
        from optsched.learn.policy import LearnedPolicy
        return LearnedPolicy(SHIPPED_MODEL, name="learned")
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
