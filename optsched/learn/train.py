"""Training a learned scheduler on the batched environment (SAC, optional reward shaping).

One run = one `TrainConfig`, saved beside its results. Every `checkpoint_every` env steps
the whole state (networks, optimisers, replay buffer, normaliser, RNG states, counters)
goes to `out/checkpoint.pt` atomically, so `resume=True` continues exactly where the last
checkpoint left off. Metrics go to `out/metrics.csv` (steps, wall time, episode utility,
shaped-reward stats, losses).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from optsched.env.bank import DayBank
from optsched.env.core import BatchedCore, EnvConfig
from optsched.env.dispatch import DispatchCore
from optsched.learn.loop import run_loop
from optsched.learn.sac import SAC, Replay, ReturnNorm, RunningNorm, SACConfig
from optsched.learn.shaping import AdditiveShaper, PotentialShaper
from optsched.learn.td3 import TD3, TD3Config

SHAPING = ("none", "mlp", "diffusion", "potential")
ACTIONS = {"dispatch": DispatchCore,
           "dispatch-battery": functools.partial(DispatchCore, waiting=False),
           "direct": BatchedCore}


@dataclass
class TrainConfig:
    algo: str = "sac"
    action: str = "dispatch-battery"  # dispatch: waiting values + battery over the per-slot
                                      # dispatch; dispatch-battery: battery only;
                                      # direct: every routing/step/clock/battery choice
    shaping: str = "none"
    reward: str = "settlement"
    steps: int = 200_000              # environment steps (copies x slots)
    seed: int = 0
    num_envs: int = 16
    batch_size: int = 256
    learning_starts: int = 5_000
    updates_per_step: int = 4         # gradient updates per batched env step
    buffer: int = 200_000
    gamma: float = 0.99
    lr: float = 3e-4
    hidden: int = 256
    reward_scale: float = 100.0       # $ per unit of reward
    reward_norm: bool = False         # also divide by the running std of the return
    eta: float = 0.4                  # shaping weight (paper's best)
    shaping_warmup: int = 5_000
    shaping_anneal: int = 0
    diffusion_steps: int = 5
    latent: int = 128
    checkpoint_every: int = 20_000
    out: str = "runs/sac"
    days: tuple[int, ...] = ()        # training days (bank); empty = jemas-3 training days
    ppo_rollout: int = 96             # PPO: slots per rollout from every copy
    threads: int = 1                  # torch threads: small MLPs gain nothing from more,
                                      # and runs side by side would oversubscribe the cores

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=1) + "\n")


class Trainer:
    def __init__(self, cfg: TrainConfig, bank: DayBank):
        if cfg.algo not in ("sac", "td3"):
            raise ValueError(f"algo {cfg.algo!r} is not an off-policy agent (sac, td3)")
        if cfg.action not in ACTIONS:
            raise ValueError(f"action must be one of {tuple(ACTIONS)}, got {cfg.action!r}")
        if cfg.shaping not in SHAPING:
            raise ValueError(f"shaping must be one of {SHAPING}, got {cfg.shaping!r}")
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.core = ACTIONS[cfg.action](bank, cfg.num_envs, EnvConfig(
            reward=cfg.reward, reward_scale=cfg.reward_scale))
        od, ad = self.core.obs_dim, self.core.action_dim
        if cfg.algo == "sac":
            self.agent = SAC(od, ad, SACConfig(gamma=cfg.gamma, lr=cfg.lr, hidden=cfg.hidden,
                                               batch_size=cfg.batch_size))
        else:
            self.agent = TD3(od, ad, TD3Config(gamma=cfg.gamma, lr=cfg.lr, hidden=cfg.hidden,
                                               batch_size=cfg.batch_size))
        self.shaper = None
        if cfg.shaping in ("mlp", "diffusion"):
            self.shaper = AdditiveShaper(od, ad, kind=cfg.shaping, eta=cfg.eta,
                                         warmup_steps=cfg.shaping_warmup,
                                         anneal_steps=cfg.shaping_anneal, gamma=cfg.gamma,
                                         lr=cfg.lr, latent=cfg.latent,
                                         steps=cfg.diffusion_steps, hidden=cfg.hidden)
        elif cfg.shaping == "potential":
            self.shaper = PotentialShaper(od, eta=1.0, warmup_steps=cfg.shaping_warmup,
                                          gamma=cfg.gamma, lr=cfg.lr, latent=cfg.latent,
                                          steps=cfg.diffusion_steps, hidden=cfg.hidden)
        self.norm = RunningNorm(od)
        self.rnorm = ReturnNorm(cfg.num_envs, cfg.gamma) if cfg.reward_norm else None
        self.buffer = Replay(cfg.buffer, od, ad)
        self.steps = 0
        self.wall = 0.0
        self.obs = self.core.reset(seed=cfg.seed).copy()

    # ------------------------------------------------------------------ loop
    def run(self, until: int | None = None, out: Path | None = None, progress=None,
            log=None) -> None:
        def advance() -> list[dict]:
            row = self.step()
            return [] if row is None else [row]

        run_loop(self, advance, until, out, progress, log)

    def step(self) -> dict | None:
        """One batched env step (num_envs transitions) and its gradient updates; returns a
        metrics row when episodes end."""
        cfg, core = self.cfg, self.core
        self.norm.update(self.obs)
        o = self.norm(self.obs).astype(np.float32)
        if self.steps < cfg.learning_starts:
            act = self.rng.uniform(-1, 1, (core.B, core.action_dim)).astype(np.float32)
        else:
            act = self.agent.act(o)
        next_obs, rew, done, info = core.step(act)
        if self.rnorm is not None:
            rew = self.rnorm(rew, done)
        next_obs = next_obs.copy()
        o2 = self.norm(next_obs).astype(np.float32)
        emitted = np.zeros(core.B, np.float32)
        if self.shaper is not None:
            emitted = self.shaper.emit(torch.as_tensor(o), torch.as_tensor(act)).numpy()
        self.buffer.add(obs=o, act=act, rew=rew.astype(np.float32), next_obs=o2,
                        done=np.full(core.B, float(done), np.float32), r_emitted=emitted)
        self.steps += core.B
        losses: dict[str, float] = {}
        if self.steps >= cfg.learning_starts:
            for _ in range(cfg.updates_per_step):
                losses = self.update()
        row = None
        if done:
            util = core.episode_terms[:, 0] - core.episode_terms[:, 1:].sum(axis=1)
            row = {"steps": self.steps, "episode_utility": float(util.mean()), **losses}
            next_obs = core.reset().copy()
        self.obs = next_obs
        return row

    def update(self) -> dict[str, float]:
        b = {k: torch.as_tensor(v) for k, v in
             self.buffer.sample(self.rng, self.cfg.batch_size).items()}
        rew = b["rew"]
        out: dict[str, float] = {}
        if self.shaper is not None:
            with torch.no_grad():
                next_act, _ = self.agent.actor(b["next_obs"])
            out |= self.shaper.update(b["obs"], b["act"], b["rew"], b["next_obs"], next_act,
                                      b["done"], b["r_emitted"])
            extra = self.shaper.shaped(b["obs"], b["act"], b["next_obs"], next_act, b["done"],
                                       self.steps)
            rew = rew + extra
            out["shaped_abs_mean"] = float(extra.abs().mean())
        out |= self.agent.update(b["obs"], b["act"], rew, b["next_obs"], b["done"])
        return out

    # ------------------------------------------------------------------ state
    def state(self) -> dict:
        return {
            "agent": self.agent.state_dict(),
            "opt": [o.state_dict() for o in self.agent.optimizers()],
            "agent_extra": self.agent.extra_state(),
            "shaper": None if self.shaper is None else self.shaper.state_dict(),
            "shaper_opt": None if self.shaper is None else [
                o.state_dict() for o in _shaper_opts(self.shaper)],
            "norm": self.norm.state(), "buffer": self.buffer.data,
            "rnorm": None if self.rnorm is None else self.rnorm.state(),
            "buffer_pos": (self.buffer.n, self.buffer.i), "steps": self.steps,
            "wall": self.wall, "obs": self.obs, "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(), "core": self.core.snapshot(),
            "config": dataclasses.asdict(self.cfg),
        }

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save(self.state(), tmp)
        tmp.replace(path)

    def load(self, path: Path) -> None:
        s = torch.load(path, weights_only=False)
        self.agent.load_state_dict(s["agent"])
        for o, st in zip(self.agent.optimizers(), s["opt"], strict=True):
            o.load_state_dict(st)
        self.agent.load_extra_state(s["agent_extra"])
        if self.shaper is not None:
            self.shaper.load_state_dict(s["shaper"])
            for o, st in zip(_shaper_opts(self.shaper), s["shaper_opt"], strict=True):
                o.load_state_dict(st)
        self.norm.load(s["norm"])
        if self.rnorm is not None:
            self.rnorm.load(s["rnorm"])
        self.buffer.data = s["buffer"]
        self.buffer.n, self.buffer.i = s["buffer_pos"]
        self.steps, self.wall, self.obs = s["steps"], s["wall"], s["obs"]
        self.rng.bit_generator.state = s["rng"]
        torch.set_rng_state(s["torch_rng"])
        self.core.restore(s["core"])

def _shaper_opts(shaper) -> list:
    if isinstance(shaper, AdditiveShaper):
        return [shaper.opt_q, shaper.opt_g, shaper.opt_a]
    return [shaper.opt]


def log_metrics(out: Path, row: dict) -> None:
    path = out / "metrics.csv"
    fields = ["steps", "wall_s", "episode_utility", "q_loss", "pi_loss", "alpha",
              "clip_frac", "shaped_abs_mean", "shaper_q_loss", "shaper_gen_loss",
              "shaped_mean", "shaper_td_loss"]
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)


def make_trainer(cfg: TrainConfig, bank: DayBank):
    torch.set_num_threads(cfg.threads)
    if cfg.algo == "ppo":
        from optsched.learn.ppo import PPOTrainer

        if cfg.action not in ACTIONS:
            raise ValueError(f"action must be one of {tuple(ACTIONS)}, got {cfg.action!r}")
        core = ACTIONS[cfg.action](bank, cfg.num_envs, EnvConfig(
            reward=cfg.reward, reward_scale=cfg.reward_scale))
        return PPOTrainer(cfg, core)
    return Trainer(cfg, bank)


def train(cfg: TrainConfig, bank: DayBank | None = None, resume: bool = False,
          progress=None) -> Trainer:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if bank is None:
        from optsched.scenario import jemas3
        bank = DayBank.from_family(list(cfg.days) or jemas3.train_days())
    trainer = make_trainer(cfg, bank)
    ckpt = out / "checkpoint.pt"
    if resume and ckpt.exists():
        trainer.load(ckpt)
    elif (out / "metrics.csv").exists():
        (out / "metrics.csv").unlink()
    cfg.save(out / "config.json")
    trainer.run(out=out, progress=progress, log=lambda row: log_metrics(out, row))
    trainer.save(ckpt)
    actor = trainer.agent.net if cfg.algo == "td3" else trainer.agent.actor
    torch.save({"actor": actor.state_dict(), "norm": trainer.norm.state(),
                "obs_dim": trainer.core.obs_dim, "act_dim": trainer.core.action_dim,
                "action": cfg.action,
                "hidden": cfg.hidden, "config": dataclasses.asdict(cfg)}, out / "policy.pt")
    if (out / "metrics.csv").exists():
        import matplotlib.pyplot as plt

        from optsched.report.plots import learning_figure

        fig = learning_figure([out / "metrics.csv"])
        fig.savefig(out / "curves.png", dpi=100)
        plt.close(fig)
    return trainer
