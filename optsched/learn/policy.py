"""A trained actor as a policy object for the environment and `optsched evaluate`, and the
policy file every trainer writes (`save_policy`; format in `learn.checkpoint`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from optsched.env.core import BatchedCore, obs_dim
from optsched.env.dispatch import ACTIONS
from optsched.env.known import Known
from optsched.errors import ScenarioError
from optsched.learn.checkpoint import load_checkpoint, save_checkpoint
from optsched.learn.nets import Actor, RunningNorm


def save_policy(path: str | Path, actor: Actor, norm: RunningNorm, action: str,
                config: dict) -> None:
    """The actor, its observation normaliser and the action space it acts through."""
    first, last = actor.body[0].weight, actor.body[-1].weight
    save_checkpoint(path, "policy", {
        "actor": actor.state_dict(), "norm": norm.state(), "obs_dim": first.shape[1],
        "act_dim": last.shape[0] // 2, "hidden": first.shape[0], "action": action,
        "config": config})


class LearnedPolicy:
    """Acts through the direct action space, or (actions "dispatch...", "provision...")
    plans through the per-slot dispatch with its learned look-ahead, battery and
    provisioning headroom. With provisioning it plans on the point forecast and
    provisions GPUs for the forecast's 90th percentile, as the `dispatch` baseline and
    the `DispatchCore` it was trained over."""

    provision_quantile: float | None = 0.9

    def __init__(self, path: str | Path, name: str | None = None):
        load_checkpoint(path, "policy", self._build)
        self.name = name or Path(path).name
        if self.action != "direct":
            self.plan = self._plan
        self._dispatch: tuple | None = None

    def _build(self, blob: dict) -> None:
        od, ad, hidden = int(blob["obs_dim"]), int(blob["act_dim"]), int(blob["hidden"])
        # The sizes must be those of the stored weights: a file cannot make us allocate more.
        shapes = {k: tuple(v.shape) for k, v in blob["actor"].items()}
        if (shapes.get("body.0.weight"), shapes.get("body.4.weight")) != (
                (hidden, od), (2 * ad, hidden)):
            raise ValueError(f"obs_dim {od}, act_dim {ad}, hidden {hidden} do not match "
                             f"the actor's weights")
        if blob["action"] not in ACTIONS:
            raise ValueError(f"unknown action space {blob['action']!r}")
        self.actor = Actor(od, ad, hidden)
        self.actor.load_state_dict(blob["actor"])
        self.actor.eval()
        self.norm = RunningNorm(od)
        self.norm.load(blob["norm"])
        if self.norm.mean.shape != (od,) or self.norm.var.shape != (od,):
            raise ValueError(f"the normaliser does not have {od} entries")
        # A well-formed file can still hold numbers no training writes; they would turn
        # every action into NaN, far from where the repair could catch it.
        finite = all(torch.isfinite(v).all() for v in blob["actor"].values())
        if not (finite and np.isfinite(self.norm.mean).all()
                and np.isfinite(self.norm.var).all()):
            raise ValueError("it holds NaN or infinite weights or normaliser statistics")
        if (np.asarray(self.norm.var) < 0).any():
            raise ValueError("its normaliser has a negative variance")
        self.obs_dim, self.action = od, blob["action"]

    def check(self, c) -> None:
        """Refuse compiled day c if this model cannot play it, before any day is solved
        or rolled (`compare_runs` asks every policy first)."""
        self._fits(obs_dim(c), bool(c.commit))

    def _fits(self, n_obs: int, commit: bool | None = None) -> None:
        if self.action.startswith("provision-") and commit is False:
            raise ScenarioError("--policy", "was trained to commit GPUs before arrivals "
                                f"({self.action}): it needs a scenario with "
                                "[provisioning] on", self.name)
        if n_obs != self.obs_dim:
            raise ScenarioError("--policy", f"expects {self.obs_dim} observations, this "
                                f"scenario gives {n_obs}", self.name)

    @torch.no_grad()
    def act(self, core: BatchedCore, obs: np.ndarray) -> np.ndarray:
        self._fits(obs.shape[1])
        x = torch.as_tensor(self.norm(obs), dtype=torch.float32)
        return self.actor(x, deterministic=True)[0].numpy()

    def _plan(self, core: BatchedCore) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._fits(core.obs_dim, core.commit)
        if self._dispatch is None or self._dispatch[0] is not core.c:
            self._dispatch = (core.c, ACTIONS[self.action](
                core.bank, 1, quantile=self.provision_quantile))
        a = self.act(core, core.observe())
        return self._dispatch[1].plan_from_action(core, a, high=self._high(core))

    def _high(self, view) -> Known | None:
        """The slot at the provisioning quantile (GPUs are provisioned for it; the plan
        is made on `view`, the point forecast): one `Known` per environment."""
        core = view._core if isinstance(view, Known) else view
        if not core.commit or self.provision_quantile is None:
            return None
        if getattr(self, "_high_view", None) is None or self._high_view._core is not core:
            self._high_view = Known(core, lag=1, quantile=self.provision_quantile)
        return self._high_view
