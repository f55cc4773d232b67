"""Proximal policy optimisation (Schulman et al. 2017) in the CleanRL style, on the batched
core: rollouts of `rollout` slots from every copy, GAE, clipped surrogate, value loss,
several epochs of minibatches. The actor is the shared tanh-Gaussian (`learn.nets`), so a
PPO policy loads and acts like any other; its log-density is evaluated at the stored
pre-tanh sample. Checkpoints fall on rollout boundaries, so a resumed run continues
exactly (the lifecycle is `learn.loop`'s)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from optsched.errors import ScenarioError
from optsched.learn.loop import RunTrainer
from optsched.learn.nets import Actor, mlp


@dataclass(frozen=True)
class PPOConfig:
    gamma: float = 0.99
    gae_lambda: float = 0.95
    lr: float = 3e-4
    hidden: int = 256
    epochs: int = 10
    minibatches: int = 8
    clip: float = 0.2
    value_coef: float = 0.5
    max_grad_norm: float = 0.5


def log_prob(actor: Actor, obs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """log pi(tanh(u) | obs) for stored pre-tanh samples u, summed over dimensions."""
    mean, log_std = actor.gaussian(obs)
    dist = torch.distributions.Normal(mean, log_std.exp())
    return (dist.log_prob(u) - torch.log(1.0 - torch.tanh(u).pow(2) + 1e-6)).sum(-1)


class PPO(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: PPOConfig = PPOConfig()):
        super().__init__()
        self.cfg = cfg
        self.actor = Actor(obs_dim, act_dim, cfg.hidden)
        self.critic = mlp([obs_dim, cfg.hidden, cfg.hidden, 1], act=nn.Tanh)
        self.opt = torch.optim.Adam(self.parameters(), lr=cfg.lr, eps=1e-5)

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt]

    @torch.no_grad()
    def sample(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(action, pre-tanh sample, log-density, value) for observations [B, obs_dim]."""
        o = torch.as_tensor(obs, dtype=torch.float32)
        mean, log_std = self.actor.gaussian(o)
        u = mean + log_std.exp() * torch.randn_like(mean)
        return (torch.tanh(u).numpy(), u.numpy(), log_prob(self.actor, o, u).numpy(),
                self.critic(o).squeeze(-1).numpy())

    @torch.no_grad()
    def value(self, obs: np.ndarray) -> np.ndarray:
        return self.critic(torch.as_tensor(obs, dtype=torch.float32)).squeeze(-1).numpy()

    def update(self, roll: dict[str, np.ndarray], rng: np.random.Generator
               ) -> dict[str, float]:
        """Epochs of minibatch updates on one rollout (arrays [N, ...], flattened)."""
        cfg = self.cfg
        t = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in roll.items()}
        n = len(t["adv"])
        size = max(1, n // cfg.minibatches)
        out: dict[str, float] = {}
        for _ in range(cfg.epochs):
            order = torch.as_tensor(rng.permutation(n))
            for start in range(0, n, size):
                idx = order[start:start + size]
                adv = t["adv"][idx]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                ratio = (log_prob(self.actor, t["obs"][idx], t["u"][idx])
                         - t["logp"][idx]).exp()
                pi_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip,
                                                                     1 + cfg.clip)).mean()
                v_loss = 0.5 * (self.critic(t["obs"][idx]).squeeze(-1)
                                - t["ret"][idx]).pow(2).mean()
                loss = pi_loss + cfg.value_coef * v_loss
                self.opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.parameters(), cfg.max_grad_norm)
                self.opt.step()
                out = {"pi_loss": pi_loss.item(), "v_loss": v_loss.item(),
                       "clip_frac": ((ratio - 1).abs() > cfg.clip).float().mean().item()}
        return out


def gae(rew: np.ndarray, val: np.ndarray, done: np.ndarray, last_val: np.ndarray,
        gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and returns [S, B] by generalised advantage estimation; done[s] marks
    that step s ended the episode (no bootstrap past it)."""
    adv = np.zeros_like(rew)
    running = np.zeros(rew.shape[1])
    for s in reversed(range(len(rew))):
        nxt = last_val if s == len(rew) - 1 else val[s + 1]
        live = 1.0 - done[s]
        delta = rew[s] + gamma * nxt * live - val[s]
        running = delta + gamma * lam * live * running
        adv[s] = running
    return adv, adv + val


class PPOTrainer(RunTrainer):
    """The on-policy trainer: rollouts of `ppo_rollout` slots from every copy, then PPO's
    epochs of updates."""

    def __init__(self, cfg, core):          # cfg is a TrainConfig: PPO's shaping is checked
        super().__init__(cfg, core)
        self.agent = PPO(core.obs_dim, core.action_dim,
                         PPOConfig(gamma=cfg.gamma, lr=cfg.lr, hidden=cfg.hidden))
        if cfg.init_action:                 # start the search from a known rule's action
            if len(cfg.init_action) != core.action_dim:
                raise ScenarioError("--init-action", f"needs {core.action_dim} numbers",
                                    cfg.init_action)
            with torch.no_grad():
                self.agent.actor.body[-1].bias[:core.action_dim] = torch.atanh(
                    torch.as_tensor(cfg.init_action, dtype=torch.float32))

    def advance(self) -> list[dict]:
        """One rollout and its updates; every row of an episode that ended in it carries
        the rollout's losses."""
        cfg, core = self.cfg, self.core
        S, B = cfg.ppo_rollout, core.B
        buf: dict[str, list] = {k: [] for k in ("obs", "u", "logp", "val", "rew", "done")}
        rows = []
        for _ in range(S):
            self.norm.update(self.obs)
            o = self.norm(self.obs).astype(np.float32)
            a, u, logp, v = self.agent.sample(o)
            next_obs, rew, done, _ = core.step(a)
            if self.rnorm is not None:
                rew = self.rnorm(rew, done)
            for k, x in (("obs", o), ("u", u), ("logp", logp), ("val", v), ("rew", rew),
                         ("done", np.full(B, float(done)))):
                buf[k].append(x)
            self.steps += B
            if done:
                rows.append(self.episode_row())
                next_obs = core.reset()
            self.obs = next_obs.copy()
        arr = {k: np.stack(v) for k, v in buf.items()}
        last = self.agent.value(self.norm(self.obs).astype(np.float32))
        pc = self.agent.cfg
        adv, ret = gae(arr["rew"], arr["val"], arr["done"], last, pc.gamma, pc.gae_lambda)
        flat = {"obs": arr["obs"].reshape(S * B, -1), "u": arr["u"].reshape(S * B, -1),
                "logp": arr["logp"].ravel(), "adv": adv.ravel(), "ret": ret.ravel()}
        losses = self.agent.update(flat, self.rng)
        return [row | losses for row in rows]

    def policy_actor(self) -> Actor:
        return self.agent.actor

    def agent_state(self) -> dict:
        return {"net": self.agent.state_dict(), "opt": self.agent.opt.state_dict()}

    def load_agent_state(self, s: dict) -> None:
        self.agent.load_state_dict(s["net"])
        self.agent.opt.load_state_dict(s["opt"])
