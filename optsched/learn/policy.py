"""A trained actor as a policy object for the environment and `optsched evaluate`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from optsched.env.core import BatchedCore
from optsched.env.dispatch import DispatchCore
from optsched.learn.sac import Actor, RunningNorm


class LearnedPolicy:
    """Acts through the direct action space, or (action "dispatch") plans through the
    per-slot dispatch with its learned look-ahead and battery."""

    def __init__(self, path: str | Path, name: str | None = None):
        blob = torch.load(path, weights_only=False)
        self.actor = Actor(blob["obs_dim"], blob["act_dim"], blob["hidden"])
        self.actor.load_state_dict(blob["actor"])
        self.actor.eval()
        self.norm = RunningNorm(blob["obs_dim"])
        self.norm.load(blob["norm"])
        self.name = name or Path(path).name
        self.obs_dim = blob["obs_dim"]
        self.action = blob.get("action", "direct")
        if self.action.startswith("dispatch"):
            self.plan = self._plan
        self._dispatch: tuple | None = None

    @torch.no_grad()
    def act(self, core: BatchedCore, obs: np.ndarray) -> np.ndarray:
        if obs.shape[1] != self.obs_dim:
            raise ValueError(f"{self.name} expects {self.obs_dim} observations, the "
                             f"environment gives {obs.shape[1]}")
        x = torch.as_tensor(self.norm(obs), dtype=torch.float32)
        return self.actor(x, deterministic=True)[0].numpy()

    def _plan(self, core: BatchedCore) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._dispatch is None or self._dispatch[0] is not core.c:
            self._dispatch = (core.c, DispatchCore(core.bank, 1,
                                                   waiting=self.action == "dispatch"))
        a = self.act(core, core.observe())
        return self._dispatch[1].plan_from_action(core, a)
