"""Reward shaping for the sparse (settlement) reward.

- `AdditiveShaper` (the paper's and DRESS's form): a reward agent, itself SAC over the
  augmented MDP (observation = state and action, action = a scalar r_s in [-1, 1]),
  trained on the environment reward; the policy learns on r_env + eta * r_s(s, a). Its
  generator is the diffusion model (`diffusion`) or an MLP (`mlp`, the "DNN shaping"
  ablation). Unlike DRESS, its buffer keeps the r_s it emitted, not a random proposal.
  An additive r_s can change the optimal policy (Ng, Harada, Russell 1999), so eta can
  anneal to 0 (`anneal_steps`).
- `PotentialShaper`: the diffusion model generates a potential Phi(s), trained by TD on
  the environment reward (a value estimate); shaping F = gamma Phi'(s') - Phi'(s) with Phi'
  a slowly updated copy and Phi'(terminal) = 0. Policy-invariant.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as nnf
from torch import nn

from optsched.learn.diffusion import DiffusionGenerator, MLPGenerator
from optsched.learn.nets import fit_twin_critics, mlp, soft_update, tune_temperature


def potential_shaping(phi: torch.Tensor, phi_next: torch.Tensor, done: torch.Tensor,
                      gamma: float) -> torch.Tensor:
    """F = gamma * Phi(s') * (1 - done) - Phi(s): sums telescopically over an episode."""
    return gamma * phi_next * (1.0 - done) - phi


def make_generator(kind: str, cond_dim: int, latent: int = 128, steps: int = 5,
                   hidden: int = 256) -> nn.Module:
    if kind == "diffusion":
        return DiffusionGenerator(cond_dim, latent=latent, steps=steps, hidden=hidden)
    if kind == "mlp":
        return MLPGenerator(cond_dim, hidden=hidden)
    raise ValueError(f"generator must be diffusion or mlp, got {kind!r}")


class AdditiveShaper(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, kind: str = "diffusion", eta: float = 0.4,
                 warmup_steps: int = 5000, anneal_steps: int = 0, gamma: float = 0.99,
                 lr: float = 3e-4, tau: float = 0.005, latent: int = 128, steps: int = 5,
                 hidden: int = 256):
        super().__init__()
        cond = obs_dim + act_dim
        self.gen = make_generator(kind, cond, latent, steps, hidden)
        self.q1, self.q2 = mlp([cond + 1, hidden, hidden, 1]), mlp([cond + 1, hidden, hidden,
                                                                     1])
        self.q1_t, self.q2_t = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        self.log_alpha = nn.Parameter(torch.zeros(()))
        self.eta, self.warmup, self.anneal = eta, warmup_steps, anneal_steps
        self.gamma, self.tau = gamma, tau
        self.opt_q = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=lr)
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=lr)
        self.opt_a = torch.optim.Adam([self.log_alpha], lr=lr)

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt_q, self.opt_g, self.opt_a]

    def weight(self, step: int) -> float:
        """eta after the warm-up, linearly annealed to 0 over `anneal_steps` if set."""
        if step < self.warmup:
            return 0.0
        if self.anneal <= 0:
            return self.eta
        return self.eta * max(0.0, 1.0 - (step - self.warmup) / self.anneal)

    @torch.no_grad()
    def shaped(self, obs, act, next_obs, next_act, done, step: int) -> torch.Tensor:
        """The extra reward added to r_env for a minibatch (recomputed per minibatch)."""
        w = self.weight(step)
        if w == 0.0:
            return torch.zeros(obs.shape[0])
        r_s, _ = self.gen(torch.cat([obs, act], -1), deterministic=True)
        return w * r_s

    def update(self, obs, act, rew, next_obs, next_act, done, r_emitted) -> dict[str, float]:
        """One SAC update of the reward agent on the environment reward."""
        sa, sa2 = torch.cat([obs, act], -1), torch.cat([next_obs, next_act], -1)
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            r2, logp2 = self.gen(sa2)
            x2 = torch.cat([sa2, r2[:, None]], -1)
            q_t = torch.min(self.q1_t(x2), self.q2_t(x2)).squeeze(-1) - alpha * logp2
            target = rew + self.gamma * (1.0 - done) * q_t
        q_loss = fit_twin_critics(self.q1, self.q2, self.opt_q,
                                  torch.cat([sa, r_emitted[:, None]], -1), target)
        r, logp = self.gen(sa)
        xr = torch.cat([sa, r[:, None]], -1)
        g_loss = (alpha * logp - torch.min(self.q1(xr), self.q2(xr)).squeeze(-1)).mean()
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()
        # SAC's target entropy for a one-dimensional action: -1. (Until stop 9 this was
        # +1, above the ln 2 a squashed scalar can reach, so alpha only grew.)
        tune_temperature(self.log_alpha, self.opt_a, logp, -1.0)
        soft_update(self.q1, self.q1_t, self.tau)
        soft_update(self.q2, self.q2_t, self.tau)
        return {"shaper_q_loss": q_loss, "shaper_gen_loss": g_loss.item(),
                "shaped_mean": r.mean().item()}

    @torch.no_grad()
    def emit(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """The r_s to store with a transition (what the agent would emit for it)."""
        return self.gen(torch.cat([obs, act], -1))[0]


class PotentialShaper(nn.Module):
    def __init__(self, obs_dim: int, kind: str = "diffusion", eta: float = 1.0,
                 warmup_steps: int = 5000, gamma: float = 0.99, lr: float = 3e-4,
                 tau: float = 0.005, latent: int = 128, steps: int = 5, hidden: int = 256,
                 value_scale: float | None = None):
        super().__init__()
        self.gen = make_generator(kind, obs_dim, latent, steps, hidden)
        self.gen_t = copy.deepcopy(self.gen)
        self.eta, self.warmup, self.gamma, self.tau = eta, warmup_steps, gamma, tau
        self.scale = value_scale if value_scale is not None else 1.0 / (1.0 - gamma)
        self.opt = torch.optim.Adam(self.gen.parameters(), lr=lr)

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt]

    def phi(self, obs: torch.Tensor, target: bool = True) -> torch.Tensor:
        net = self.gen_t if target else self.gen
        return self.scale * net(obs, deterministic=True)[0]

    @torch.no_grad()
    def shaped(self, obs, act, next_obs, next_act, done, step: int) -> torch.Tensor:
        if step < self.warmup:
            return torch.zeros(obs.shape[0])
        return self.eta * potential_shaping(self.phi(obs), self.phi(next_obs), done,
                                            self.gamma)

    def update(self, obs, act, rew, next_obs, next_act, done, r_emitted=None
               ) -> dict[str, float]:
        """TD(0) on the environment reward: Phi(s) -> r + gamma Phi'(s')."""
        with torch.no_grad():
            target = rew + self.gamma * (1.0 - done) * self.phi(next_obs)
        loss = nnf.mse_loss(self.phi(obs, target=False), target)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        soft_update(self.gen, self.gen_t, self.tau)
        return {"shaper_td_loss": loss.item()}

    @torch.no_grad()
    def emit(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return torch.zeros(obs.shape[0])
