"""Behaviour cloning from the oracle: the actor regresses the oracle's decisions,
projected onto the action space (`learn.demos`), on training days. A warm start for the
RL agents, and on its own a learned scheduler that needs no reward at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from optsched.learn.nets import Actor, RunningNorm


def behaviour_clone(obs: np.ndarray, act: np.ndarray, hidden: int = 256, updates: int = 3000,
                    batch: int = 512, lr: float = 1e-3, seed: int = 0
                    ) -> tuple[Actor, RunningNorm, list[float]]:
    """Fit tanh(mean) of a fresh actor to the demonstrated actions (mean squared error)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    norm = RunningNorm(obs.shape[1])
    norm.update(obs)
    actor = Actor(obs.shape[1], act.shape[1], hidden)
    opt = torch.optim.Adam(actor.parameters(), lr=lr)
    x = torch.as_tensor(norm(obs), dtype=torch.float32)
    y = torch.as_tensor(act, dtype=torch.float32).clamp(-0.999, 0.999)
    losses = []
    for _ in range(updates):
        idx = torch.as_tensor(rng.integers(0, len(x), batch))
        mean, _ = actor.body(x[idx]).chunk(2, dim=-1)
        loss = ((torch.tanh(mean) - y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return actor, norm, losses


def train_bc(days: list[int], out: Path, seed: int = 0, hidden: int = 256,
             overwrite: bool = False) -> dict:
    """Behaviour cloning of the oracle on jemas-3 training `days`; writes out/policy.pt and
    returns {"slots": demonstrated slots, "final_loss": ...}. Like every trainer, refuses
    a folder that holds a run unless `overwrite`."""
    from optsched.learn.demos import oracle_demonstrations
    from optsched.learn.loop import POLICY, clear_out, prepare_out
    from optsched.learn.policy import save_policy
    from optsched.scenario import compile_scenario, get_scenario

    prepare_out(out, overwrite=overwrite)
    obs, act = oracle_demonstrations([compile_scenario(get_scenario("jemas-3", d))
                                      for d in days])
    actor, norm, losses = behaviour_clone(obs, act, hidden=hidden, seed=seed)
    clear_out(out)
    save_policy(out / POLICY, actor, norm, "direct",
                {"algo": "bc", "days": list(days), "seed": seed, "hidden": hidden,
                 "final_loss": losses[-1]})
    return {"slots": len(obs), "final_loss": losses[-1]}
