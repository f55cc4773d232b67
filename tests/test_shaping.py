"""The diffusion reward model and the shaping schemes."""

from __future__ import annotations

import torch

from optsched.learn.diffusion import DiffusionGenerator, MLPGenerator, vp_betas
from optsched.learn.shaping import AdditiveShaper, PotentialShaper, potential_shaping


def test_vp_schedule_is_increasing_and_in_range():
    b = vp_betas(5)
    assert b.shape == (5,) and (b > 0).all() and (b < 1).all()
    assert (b[1:] > b[:-1]).all()


def test_reverse_process_runs_w_steps_from_noise_to_a_bounded_output():
    torch.manual_seed(0)
    for steps in (3, 5, 7):
        gen = DiffusionGenerator(cond_dim=10, latent=64, steps=steps, hidden=32)
        cond = torch.randn(256, 10)
        z = gen.reverse(cond)
        assert z.shape == (256, 64) and torch.isfinite(z).all() and z.abs().max() <= 5.0
        out, logp = gen(cond)
        assert out.shape == (256,) and logp.shape == (256,)
        assert out.abs().max() <= 1.0 and torch.isfinite(logp).all()
        out.sum().backward()
        grads = [p.grad for p in gen.denoise.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_generators_fit_a_fixed_batch():
    """The loss on a fixed batch falls: the reverse chain carries useful gradients."""
    torch.manual_seed(0)
    cond = torch.randn(128, 6)
    target = torch.tanh(cond[:, 0] - 0.5 * cond[:, 1])
    for gen in (DiffusionGenerator(6, latent=32, steps=5, hidden=64), MLPGenerator(6, 64)):
        opt = torch.optim.Adam(gen.parameters(), lr=3e-3)
        losses = []
        for _ in range(150):
            out, _ = gen(cond, deterministic=True)
            loss = ((out - target) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10, type(gen).__name__


def test_potential_shaping_telescopes_over_an_episode():
    torch.manual_seed(1)
    gamma, T = 0.97, 40
    phi = torch.randn(T + 1)
    done = torch.zeros(T)
    done[-1] = 1.0
    F = potential_shaping(phi[:-1], phi[1:], done, gamma)
    discounted = (gamma ** torch.arange(T, dtype=torch.float32) * F).sum()
    # gamma^T * Phi(terminal) is zeroed: the sum is exactly -Phi(s_0).
    assert torch.isclose(discounted, -phi[0], atol=1e-5)


def test_shapers_update_and_respect_warmup():
    torch.manual_seed(2)
    n, od, ad = 64, 8, 3
    obs, act = torch.randn(n, od), torch.rand(n, ad) * 2 - 1
    nxt, nact = torch.randn(n, od), torch.rand(n, ad) * 2 - 1
    rew, done = obs[:, 0].clone(), torch.zeros(n)
    add = AdditiveShaper(od, ad, kind="diffusion", warmup_steps=10, anneal_steps=100,
                         latent=16, hidden=32)
    assert add.shaped(obs, act, nxt, nact, done, step=5).abs().sum() == 0.0
    assert add.weight(10) == 0.4 and add.weight(60) == 0.2 and add.weight(500) == 0.0
    q0 = add.update(obs, act, rew, nxt, nact, done, add.emit(obs, act))["shaper_q_loss"]
    for _ in range(60):
        q = add.update(obs, act, rew, nxt, nact, done, add.emit(obs, act))["shaper_q_loss"]
    assert q < q0
    # gamma = 0 makes the TD target fixed (Phi -> r), so the loss must fall.
    pot = PotentialShaper(od, warmup_steps=0, latent=16, hidden=32, gamma=0.0)
    losses = [pot.update(obs, act, rew.tanh(), nxt, nact, done)["shaper_td_loss"]
              for _ in range(80)]
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])
    assert pot.shaped(obs, act, nxt, nact, done, step=1).shape == (n,)


def test_reward_agent_temperature_targets_a_reachable_entropy():
    """The reward agent's alpha follows SAC's rule with target entropy -1 (one action
    dimension): while the generator's entropy is above it, alpha falls. (A target of +1,
    above what a squashed scalar can reach, made alpha only grow.)"""
    torch.manual_seed(3)
    n, od, ad = 64, 8, 3
    obs, act = torch.randn(n, od), torch.rand(n, ad) * 2 - 1
    rew, done = obs[:, 0].clone(), torch.zeros(n)
    add = AdditiveShaper(od, ad, kind="mlp", latent=16, hidden=32)
    _, logp = add.gen(torch.cat([obs, act], -1))
    assert -logp.mean().item() > -1.0               # the fresh generator is wider
    for _ in range(20):
        add.update(obs, act, rew, obs, act, done, add.emit(obs, act))
    assert add.log_alpha.item() < 0.0
