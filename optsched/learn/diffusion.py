"""A conditional denoising diffusion model that generates a scalar (a shaped reward, or a
potential) through W reverse steps, as in DRESS (NOTES.md section 2).

A latent x_W ~ N(0, I) is denoised in W steps by an MLP (Mish) that sees the noisy latent,
a sinusoidal embedding of the step and an embedding of the condition (state, or state and
action); a tanh-Gaussian head turns the clean latent into a scalar in [-1, 1]. The VP
noise schedule follows DRESS: beta_i = 1 - exp(-beta_min/W - (beta_max - beta_min)(2i - 1)
/ (2 W^2)). Gradients flow through the whole reverse chain, so the generator is trained end
to end by whatever loss is put on its output.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from optsched.learn.nets import mlp, tanh_gaussian


def vp_betas(steps: int, beta_min: float = 0.1, beta_max: float = 10.0) -> torch.Tensor:
    i = torch.arange(1, steps + 1, dtype=torch.float64)
    b = 1.0 - torch.exp(-beta_min / steps - 0.5 * (beta_max - beta_min) * (2 * i - 1)
                        / steps**2)
    return b.float()


class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim: int = 16):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / (half - 1))
        arg = t.float()[:, None] * freq[None, :]
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


class DiffusionGenerator(nn.Module):
    """cond [N, cond_dim] -> (scalar in [-1, 1] [N], log-prob of the pre-tanh sample [N])."""

    def __init__(self, cond_dim: int, latent: int = 128, steps: int = 5, hidden: int = 256,
                 t_dim: int = 16, beta_min: float = 0.1, beta_max: float = 10.0):
        super().__init__()
        self.latent, self.steps = latent, steps
        betas = vp_betas(steps, beta_min, beta_max)
        alphas = 1.0 - betas
        self.register_buffer("betas", betas)
        self.register_buffer("alphas", alphas)
        self.register_buffer("alpha_bar", torch.cumprod(alphas, 0))
        self.t_embed = SinusoidalEmbedding(t_dim)
        self.cond = mlp([cond_dim, hidden, hidden])
        self.denoise = mlp([latent + t_dim + hidden, hidden, hidden, latent])
        self.mean = nn.Linear(latent, 1)
        self.log_std = nn.Linear(latent, 1)

    def reverse(self, cond: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Run the W reverse steps from noise; returns the clean latent [N, latent].
        `deterministic` starts from the noise's mean (0) and adds no noise on the way, so
        the output is a function of the condition (what a potential needs)."""
        n = cond.shape[0]
        c = self.cond(cond)
        x = (torch.zeros if deterministic else torch.randn)(n, self.latent, device=cond.device)
        for i in reversed(range(self.steps)):
            t = torch.full((n,), i, device=cond.device)
            eps = self.denoise(torch.cat([x, self.t_embed(t), c], dim=-1))
            a, ab, b = self.alphas[i], self.alpha_bar[i], self.betas[i]
            x = (x - b / torch.sqrt(1.0 - ab) * eps) / torch.sqrt(a)
            if i > 0 and not deterministic:
                x = x + torch.sqrt(b) * torch.randn_like(x)
            x = x.clamp(-5.0, 5.0)
        return x

    def forward(self, cond: torch.Tensor, deterministic: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.reverse(cond, deterministic)
        log_std = self.log_std(z).squeeze(-1).clamp(-5.0, 2.0)
        return tanh_gaussian(self.mean(z).squeeze(-1), log_std, deterministic)


class MLPGenerator(nn.Module):
    """The "DNN shaping" ablation: the same interface, one MLP and a tanh-Gaussian head."""

    def __init__(self, cond_dim: int, hidden: int = 256, **_: object):
        super().__init__()
        self.body = mlp([cond_dim, hidden, hidden, 2])

    def forward(self, cond: torch.Tensor, deterministic: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.body(cond).unbind(-1)
        return tanh_gaussian(mean, log_std.clamp(-5.0, 2.0), deterministic)
