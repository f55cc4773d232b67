"""Building blocks shared by the agents (SAC, TD3, PPO, behaviour cloning) and the reward
models: networks, the tanh-Gaussian actor every policy file holds, observation and return
normalisers, the replay buffer."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def mlp(sizes: list[int], act: type[nn.Module] = nn.Mish) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(a, b), act()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def tanh_gaussian(mean: torch.Tensor, log_std: torch.Tensor, deterministic: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """A sample squashed to (-1, 1) and its log-density, elementwise (sum it over action
    dimensions where there are several)."""
    std = log_std.exp()
    u = mean if deterministic else mean + std * torch.randn_like(mean)
    out = torch.tanh(u)
    logp = (-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
            - torch.log(1.0 - out.pow(2) + 1e-6))
    return out, logp


@torch.no_grad()
def soft_update(src: nn.Module, dst: nn.Module, tau: float) -> None:
    """Polyak averaging of target parameters: dst <- (1 - tau) dst + tau src."""
    for p, q in zip(src.parameters(), dst.parameters(), strict=True):
        q.mul_(1.0 - tau).add_(tau * p)


def fit_twin_critics(q1: nn.Module, q2: nn.Module, opt: torch.optim.Optimizer,
                     x: torch.Tensor, target: torch.Tensor) -> float:
    """One step of both critics towards the same target; returns the summed MSE."""
    import torch.nn.functional as nnf

    loss = nnf.mse_loss(q1(x).squeeze(-1), target) + nnf.mse_loss(q2(x).squeeze(-1), target)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def tune_temperature(log_alpha: torch.Tensor, opt: torch.optim.Optimizer,
                     logp: torch.Tensor, target_entropy: float) -> None:
    """One step of SAC's automatic entropy tuning: alpha rises while the policy's entropy
    is below the target."""
    loss = -(log_alpha * (logp.detach() + target_entropy)).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class Actor(nn.Module):
    """The tanh-Gaussian actor of every agent (TD3 uses its mean), so that any agent's
    policy file loads and acts the same way."""

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
    """A ring buffer of transitions in numpy arrays (the off-policy agents')."""

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
