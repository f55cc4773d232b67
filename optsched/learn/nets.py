"""Small building blocks shared by the agents and the reward models."""

from __future__ import annotations

import math

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
