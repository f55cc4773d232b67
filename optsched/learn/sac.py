"""Soft actor-critic (Haarnoja et al. 2018) in the CleanRL style: a tanh-Gaussian actor,
twin Q critics with Polyak targets, automatic entropy tuning, a numpy replay buffer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from optsched.learn import nets
from optsched.learn.nets import fit_twin_critics, mlp, soft_update, tanh_gaussian

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class Actor(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256):
        super().__init__()
        self.body = mlp([obs_dim, hidden, hidden, 2 * act_dim], act=nn.ReLU)

    def gaussian(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-std of the pre-tanh Gaussian (log-std squashed into its range)."""
        mean, log_std = self.body(obs).chunk(2, dim=-1)
        return mean, LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)

    def forward(self, obs: torch.Tensor, deterministic: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.gaussian(obs)
        a, logp = tanh_gaussian(mean, log_std, deterministic)
        return a, logp.sum(-1)


class RunningNorm:
    """Running mean and variance of observations (parallel Welford)."""

    def __init__(self, dim: int):
        self.mean, self.var, self.count = np.zeros(dim), np.ones(dim), 1e-4

    def update(self, x: np.ndarray) -> None:
        m, v, n = x.mean(0), x.var(0), x.shape[0]
        delta, total = m - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + v * n + delta**2 * self.count * n / total) / total
        self.count = total

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -10.0, 10.0)

    def state(self) -> dict:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load(self, s: dict) -> None:
        self.mean, self.var, self.count = np.asarray(s["mean"]), np.asarray(s["var"]), \
            float(s["count"])


class ReturnNorm:
    """Rewards divided by the running standard deviation of the discounted return (the
    reward normalisation of CleanRL/Gymnasium's NormalizeReward), per copy of a batch."""

    def __init__(self, batch: int, gamma: float):
        self.gamma, self.ret, self.stats = gamma, np.zeros(batch), RunningNorm(1)

    def __call__(self, rew: np.ndarray, done: bool) -> np.ndarray:
        self.ret = self.ret * self.gamma + rew
        self.stats.update(self.ret[:, None])
        out = rew / np.sqrt(self.stats.var[0] + 1e-8)
        if done:
            self.ret = np.zeros_like(self.ret)
        return out

    def state(self) -> dict:
        return {"ret": self.ret, **self.stats.state()}

    def load(self, s: dict) -> None:
        self.ret = np.asarray(s["ret"])
        self.stats.load(s)


class Replay:
    def __init__(self, capacity: int, obs_dim: int, act_dim: int):
        self.cap, self.n, self.i = capacity, 0, 0
        self.data = {"obs": np.zeros((capacity, obs_dim), np.float32),
                     "act": np.zeros((capacity, act_dim), np.float32),
                     "rew": np.zeros(capacity, np.float32),
                     "next_obs": np.zeros((capacity, obs_dim), np.float32),
                     "done": np.zeros(capacity, np.float32),
                     "r_emitted": np.zeros(capacity, np.float32)}

    def add(self, **batch: np.ndarray) -> None:
        m = len(batch["rew"])
        idx = (self.i + np.arange(m)) % self.cap
        for k, v in batch.items():
            self.data[k][idx] = v
        self.i = (self.i + m) % self.cap
        self.n = min(self.n + m, self.cap)

    def sample(self, rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
        idx = rng.integers(0, self.n, size)
        return {k: v[idx] for k, v in self.data.items()}


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
        nets.tune_temperature(self.log_alpha, self.opt_alpha, logp, self.target_entropy)
        soft_update(self.q1, self.q1_t, cfg.tau)
        soft_update(self.q2, self.q2_t, cfg.tau)
        return {"q_loss": q_loss, "pi_loss": pi_loss.item(),
                "alpha": self.log_alpha.exp().item()}
