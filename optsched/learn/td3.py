"""TD3 (Fujimoto et al. 2018) in the CleanRL style: a deterministic tanh actor (the mean
head of the SAC actor class, so checkpoints load alike), twin critics, target policy
smoothing and delayed actor updates. With diffusion shaping it is the paper's
"diffusion-aided TD3" baseline."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from optsched.learn.nets import Actor, fit_twin_critics, mlp, soft_update
from optsched.learn.sac import SACConfig


@dataclass(frozen=True)
class TD3Config(SACConfig):
    explore_noise: float = 0.1
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    policy_delay: int = 2


class DeterministicActor(nn.Module):
    """Wraps the shared actor network: tanh of its mean, log-prob 0."""

    def __init__(self, net: Actor):
        super().__init__()
        self.net = net

    def forward(self, obs: torch.Tensor, deterministic: bool = True):
        a, _ = self.net(obs, deterministic=True)
        return a, torch.zeros(obs.shape[0])


class TD3(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: TD3Config = TD3Config()):
        super().__init__()
        self.cfg = cfg
        self.net = Actor(obs_dim, act_dim, cfg.hidden)
        self.actor = DeterministicActor(self.net)
        self.actor_t = copy.deepcopy(self.actor)
        self.q1 = mlp([obs_dim + act_dim, cfg.hidden, cfg.hidden, 1], act=nn.ReLU)
        self.q2 = mlp([obs_dim + act_dim, cfg.hidden, cfg.hidden, 1], act=nn.ReLU)
        self.q1_t, self.q2_t = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        self.opt_q = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()],
                                      lr=cfg.lr)
        self.opt_pi = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.updates = 0

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt_q, self.opt_pi]

    def extra_state(self) -> dict:
        return {"updates": self.updates}

    def load_extra_state(self, state: dict) -> None:
        self.updates = state["updates"]

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        a, _ = self.actor(torch.as_tensor(obs, dtype=torch.float32))
        if not deterministic:
            a = (a + self.cfg.explore_noise * torch.randn_like(a)).clamp(-1.0, 1.0)
        return a.numpy()

    def update(self, obs, act, rew, next_obs, done) -> dict[str, float]:
        cfg = self.cfg
        with torch.no_grad():
            a2, _ = self.actor_t(next_obs)
            noise = (cfg.policy_noise * torch.randn_like(a2)).clamp(-cfg.noise_clip,
                                                                     cfg.noise_clip)
            a2 = (a2 + noise).clamp(-1.0, 1.0)
            x2 = torch.cat([next_obs, a2], -1)
            target = rew + cfg.gamma * (1.0 - done) * torch.min(self.q1_t(x2),
                                                                 self.q2_t(x2)).squeeze(-1)
        q_loss = fit_twin_critics(self.q1, self.q2, self.opt_q, torch.cat([obs, act], -1), target)
        self.updates += 1
        out = {"q_loss": q_loss}
        if self.updates % cfg.policy_delay == 0:
            a, _ = self.actor(obs)
            pi_loss = -self.q1(torch.cat([obs, a], -1)).mean()
            self.opt_pi.zero_grad()
            pi_loss.backward()
            self.opt_pi.step()
            for src, dst in ((self.q1, self.q1_t), (self.q2, self.q2_t),
                             (self.actor, self.actor_t)):
                soft_update(src, dst, cfg.tau)
            out["pi_loss"] = pi_loss.item()
        return out
