"""Policies: rule-based baselines, MPC and learned agents, all acting on the environment
(the `Actor` or `Planner` protocol) and scored only by the evaluator (`rollout`)."""

from __future__ import annotations

from pathlib import Path

from optsched.evaluator import Evaluation
from optsched.policies.base import Actor, Planner, Policy, day_rng, rollout
from optsched.policies.rules import POLICIES, LocalFixed
from optsched.scenario.compile import Compiled
from optsched.schedule import Schedule

# The shipped learned scheduler for jemas-3 (its card: models/jemas3-scheduler.md).
SHIPPED_MODEL = Path(__file__).resolve().parents[2] / "models" / "jemas3-scheduler.pt"


def known() -> str:
    """The accepted policy names, for messages."""
    return f"{', '.join(POLICIES)}, learned or PATH.pt"


def get_policy(name: str, seed: int = 0) -> Policy:
    """A baseline by name, `learned` (the shipped model), or a checkpoint path (`*.pt`).
    `seed` seeds the policy's own randomness (mpc-noisy's forecast errors)."""
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
        raise ScenarioError("--policy", f"unknown policy (known: {known()})", name)
    policy = POLICIES[name]()
    if hasattr(policy, "seed"):
        policy.seed = int(seed)
    return policy


def run_policy(name: str, c: Compiled) -> tuple[Schedule, Evaluation]:
    sched, ev, _ = rollout(get_policy(name), [c])[0]
    return sched, ev


def local_fixed(c: Compiled) -> Schedule:
    """The local-fixed baseline's schedule on one day (rolled through the environment)."""
    return run_policy("local-fixed", c)[0]


__all__ = ["POLICIES", "Actor", "LocalFixed", "Planner", "Policy", "day_rng", "get_policy",
           "known", "local_fixed", "rollout", "run_policy"]
