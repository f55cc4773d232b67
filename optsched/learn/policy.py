"""A trained actor as a policy object for the environment and `optsched evaluate`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from optsched.env.core import BatchedCore
from optsched.learn.sac import Actor, RunningNorm


class LearnedPolicy:
    def __init__(self, path: str | Path):
        blob = torch.load(path, weights_only=False)
        self.actor = Actor(blob["obs_dim"], blob["act_dim"], blob["hidden"])
        self.actor.load_state_dict(blob["actor"])
        self.actor.eval()
        self.norm = RunningNorm(blob["obs_dim"])
        self.norm.load(blob["norm"])
        self.name = Path(path).name
        self.obs_dim = blob["obs_dim"]

    @torch.no_grad()
    def act(self, core: BatchedCore, obs: np.ndarray) -> np.ndarray:
        if obs.shape[1] != self.obs_dim:
            raise ValueError(f"{self.name} expects {self.obs_dim} observations, the "
                             f"environment gives {obs.shape[1]}")
        x = torch.as_tensor(self.norm(obs), dtype=torch.float32)
        return self.actor(x, deterministic=True)[0].numpy()
