"""Policies: rule-based baselines, MPC and learned agents, all acting on the environment
(the `Actor` or `Planner` protocol) and scored only by the evaluator (`rollout`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optsched.evaluator import Evaluation
from optsched.policies.base import Actor, Planner, Policy, day_rng, rollout
from optsched.policies.rules import POLICIES, LocalFixed
from optsched.scenario.compile import Compiled
from optsched.schedule import Schedule

# The shipped learned schedulers, by family (their cards: optsched/models/*.md, package
# data, so an installed wheel has them too): jemas-3's acts
# with every slot's arrivals seen, jemas-3-genai's commits GPUs before them (provisioning).
MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED_MODEL = MODELS / "jemas3-scheduler.pt"
SHIPPED_MODELS = {"jemas-3": SHIPPED_MODEL, "jemas-3-genai": MODELS / "jemas3-genai-scheduler.pt"}


def shipped_model(c: Compiled) -> Path:
    """The shipped model for day `c`: its family's (`identify`), else the model trained in
    its mode (provisioning on: jemas-3-genai's; off: jemas-3's), e.g. for a trace replay."""
    from optsched.scenario.history import identify

    who = identify(c)
    if who is not None and who[0] in SHIPPED_MODELS:
        return SHIPPED_MODELS[who[0]]
    return SHIPPED_MODELS["jemas-3-genai" if c.commit else "jemas-3"]


class Learned:
    """`--policy learned`: plans with the shipped model of the day's family (each model
    plans through the per-slot dispatch, `LearnedPolicy`), loaded once per model."""

    name = "learned"
    provision_quantile: float | None = 0.9     # the view the models were trained on

    def __init__(self) -> None:
        self._loaded: dict[Path, object] = {}

    def _model(self, c):
        from optsched.errors import ScenarioError
        from optsched.learn.policy import LearnedPolicy

        path = shipped_model(c)
        if path not in self._loaded:
            if not path.is_file():
                raise ScenarioError("--policy", "the shipped model is missing (it is package "
                                    "data: reinstall optsched)", str(path))
            self._loaded[path] = LearnedPolicy(path, name="learned")
        return self._loaded[path]

    def check(self, c) -> None:
        """Refuse a day the family's model cannot play (`LearnedPolicy.check`)."""
        self._model(c).check(c)

    def plan(self, core) -> tuple[np.ndarray, ...]:
        return self._model(core.c).plan(core)


def known() -> str:
    """The accepted policy names, for messages."""
    return f"{', '.join(POLICIES)}, learned or PATH.pt"


def get_policy(name: str, seed: int = 0) -> Policy:
    """A baseline by name, `learned` (the shipped model), or a checkpoint path (`*.pt`).
    `seed` seeds the policy's own randomness (mpc-noisy's forecast errors)."""
    from optsched.errors import ScenarioError

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ScenarioError("--seed", "must be an integer >= 0", seed)
    if name == "learned":
        return Learned()
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


__all__ = ["POLICIES", "SHIPPED_MODELS", "Actor", "Learned", "LocalFixed", "Planner", "Policy",
           "day_rng", "get_policy", "known", "local_fixed", "rollout", "run_policy",
           "shipped_model"]
