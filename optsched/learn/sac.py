"""Soft actor-critic (Haarnoja et al. 2018) in the CleanRL style: a tanh-Gaussian actor,
twin Q critics with Polyak targets, automatic entropy tuning (the actor and the replay
buffer live in `learn.nets`, shared with the other agents)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from optsched.learn.nets import Actor, fit_twin_critics, mlp, soft_update, tune_temperature


@dataclass(frozen=True)
class SACConfig:
    gamma: float = 0.99
    tau: float = 0.005
    lr: float = 3e-4
    hidden: int = 256
    batch_size: int = 256


class SAC(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: SACConfig = SACConfig()):
        super().__init__()
        self.cfg = cfg
        self.actor = Actor(obs_dim, act_dim, cfg.hidden)
        self.q1 = mlp([obs_dim + act_dim, cfg.hidden, cfg.hidden, 1], act=nn.ReLU)
        self.q2 = mlp([obs_dim + act_dim, cfg.hidden, cfg.hidden, 1], act=nn.ReLU)
        self.q1_t = mlp([obs_dim + act_dim, cfg.hidden, cfg.hidden, 1], act=nn.ReLU)
        self.q2_t = mlp([obs_dim + act_dim, cfg.hidden, cfg.hidden, 1], act=nn.ReLU)
        self.q1_t.load_state_dict(self.q1.state_dict())
        self.q2_t.load_state_dict(self.q2.state_dict())
        self.log_alpha = nn.Parameter(torch.zeros(()))
        self.target_entropy = -float(act_dim)
        self.opt_q = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()],
                                      lr=cfg.lr)
        self.opt_pi = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.opt_alpha = torch.optim.Adam([self.log_alpha], lr=cfg.lr)

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt_q, self.opt_pi, self.opt_alpha]

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        a, _ = self.actor(torch.as_tensor(obs, dtype=torch.float32), deterministic)
        return a.numpy()

    def update(self, obs, act, rew, next_obs, done) -> dict[str, float]:
        cfg = self.cfg
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            a2, logp2 = self.actor(next_obs)
            x2 = torch.cat([next_obs, a2], -1)
            q_t = torch.min(self.q1_t(x2), self.q2_t(x2)).squeeze(-1) - alpha * logp2
            target = rew + cfg.gamma * (1.0 - done) * q_t
        q_loss = fit_twin_critics(self.q1, self.q2, self.opt_q, torch.cat([obs, act], -1), target)
        a, logp = self.actor(obs)
        xa = torch.cat([obs, a], -1)
        pi_loss = (alpha * logp - torch.min(self.q1(xa), self.q2(xa)).squeeze(-1)).mean()
        self.opt_pi.zero_grad()
        pi_loss.backward()
        self.opt_pi.step()
        tune_temperature(self.log_alpha, self.opt_alpha, logp, self.target_entropy)
        soft_update(self.q1, self.q1_t, cfg.tau)
        soft_update(self.q2, self.q2_t, cfg.tau)
        return {"q_loss": q_loss, "pi_loss": pi_loss.item(),
                "alpha": self.log_alpha.exp().item()}
