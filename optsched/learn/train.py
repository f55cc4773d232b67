"""Training a learned scheduler on the batched environment (SAC, TD3 or PPO, optional
reward shaping).

One run = one `TrainConfig`, saved beside its results in its own folder; the lifecycle
(folder, loop, checkpoints, metrics, resume) is `learn.loop`'s, shared by every trainer.
Every `checkpoint_every` env steps the whole state (networks, optimisers, replay buffer,
normalisers, RNG states, counters, metrics rows) goes to `out/checkpoint.pt` atomically,
so `resume=True` continues exactly where the last checkpoint left off.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from optsched.env.bank import DayBank
from optsched.env.core import REWARD_MODES, BatchedCore, EnvConfig
from optsched.env.dispatch import ACTIONS
from optsched.errors import ScenarioError
from optsched.io import atomic_write_text
from optsched.learn import loop
from optsched.learn.loop import RunTrainer, load_optimizer_states, optimizer_states
from optsched.learn.nets import Actor, Replay
from optsched.learn.policy import save_policy
from optsched.learn.sac import SAC, SACConfig
from optsched.learn.shaping import AdditiveShaper, PotentialShaper
from optsched.learn.td3 import TD3, TD3Config

ALGOS = ("sac", "td3", "ppo", "bc")   # bc trains through learn.bc.train_bc
SHAPING = ("none", "mlp", "diffusion", "potential")


@dataclass
class TrainConfig:
    """Every option of a run; invalid values raise `ScenarioError` naming the CLI flag."""

    algo: str = "sac"                 # sac, td3 (off-policy), ppo, or bc (train_bc)
    action: str = "dispatch-battery"  # dispatch: waiting values + battery over the per-slot
                                      # dispatch; dispatch-battery: battery only;
                                      # direct: every routing/step/clock/battery choice;
                                      # provision-battery: belief level, GPU headroom and
                                      # battery per site (scenarios with provisioning);
                                      # provision-dispatch: those and the waiting values
    scenario: str = "jemas-3"         # the embedded family trained on
    shaping: str = "none"
    reward: str = "settlement"
    steps: int = 200_000              # environment steps (copies x slots)
    seed: int = 0
    num_envs: int = 16
    batch_size: int = 256             # off-policy minibatch
    learning_starts: int = 5_000      # off-policy: random actions and no update before
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
    days: tuple[int, ...] = ()        # training days (bank); empty = the family's
    ppo_rollout: int = 96             # PPO: slots per rollout from every copy
    init_action: tuple[float, ...] = ()  # PPO: the actor's initial mean action (in (-1, 1),
                                      # one per action dimension); empty: 0, the baseline
    threads: int = 1                  # torch threads: small MLPs gain nothing from more,
                                      # and runs side by side would oversubscribe the cores

    def __post_init__(self) -> None:
        for key, allowed in (("algo", ALGOS), ("action", tuple(ACTIONS)),
                             ("shaping", SHAPING), ("reward", REWARD_MODES)):
            if getattr(self, key) not in allowed:
                raise ScenarioError(_flag(key), f"must be one of {', '.join(allowed)}",
                                    getattr(self, key))
        if self.algo == "ppo" and self.shaping != "none":
            raise ScenarioError("--shaping", "PPO trains on the environment's reward only "
                                "(none)", self.shaping)
        for key in ("steps", "num_envs", "batch_size", "updates_per_step", "buffer", "hidden",
                    "diffusion_steps", "latent", "checkpoint_every", "ppo_rollout", "threads"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ScenarioError(_flag(key), "must be an integer >= 1", getattr(self, key))
        for key in ("seed", "learning_starts", "shaping_warmup", "shaping_anneal"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 0:
                raise ScenarioError(_flag(key), "must be an integer >= 0", getattr(self, key))
        if self.init_action and (self.algo != "ppo" or not all(
                isinstance(v, (int, float)) and -1 < v < 1 for v in self.init_action)):
            raise ScenarioError("--init-action", "is for PPO, numbers in (-1, 1)",
                                self.init_action)
        for key, ok, rule in (("gamma", lambda v: 0 < v <= 1, "in (0, 1]"),
                              ("lr", lambda v: v > 0, "> 0"),
                              ("reward_scale", lambda v: v > 0, "> 0"),
                              ("eta", lambda v: v >= 0, ">= 0")):
            v = getattr(self, key)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or not ok(v):
                raise ScenarioError(_flag(key), f"must be a finite number {rule}", v)
        if self.algo in ("sac", "td3") and self.steps <= self.learning_starts:
            raise ScenarioError("--steps", f"must exceed learning_starts ({self.learning_starts}"
                                f"): {self.algo} acts at random and makes no update before "
                                "it", self.steps)

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(dataclasses.asdict(self), indent=1) + "\n")


# A gradient update's wall time by shaping, relative to plain SAC's, and PPO's whole cost
# per batched env step in those units: `sac` 22.3 s, `sac+mlp` 47.2, `sac+diffusion`
# 99.6 (5 denoising steps), `sac+potential` 90.1, `ppo` 1.5 for 2,304 steps on 4 copies
# with 1,152 of them random (1,152 updates), one run at a time on this 2-core machine.
UPDATE_COST = {"none": 1.0, "mlp": 2.1, "diffusion": 4.5, "potential": 4.0}
PPO_STEP_COST = 0.13


def estimated_cost(cfg: TrainConfig) -> float:
    """A run's wall time in plain-SAC updates, roughly: what orders runs that share
    workers, longest first (optsched.parallel.fan_out's `cost`). Diffusion-generated
    rewards are taken to cost in proportion to their denoising steps."""
    batched = cfg.steps / cfg.num_envs
    if cfg.algo == "ppo":
        return PPO_STEP_COST * batched
    per_update = UPDATE_COST[cfg.shaping]
    if cfg.shaping in ("diffusion", "potential"):
        per_update = 1 + (per_update - 1) * cfg.diffusion_steps / 5
    learning = max(cfg.steps - cfg.learning_starts, 0) / cfg.num_envs
    return learning * cfg.updates_per_step * per_update


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


class Trainer(RunTrainer):
    """The off-policy trainer (SAC or TD3, with or without a reward-shaping agent)."""

    def __init__(self, cfg: TrainConfig, core: BatchedCore):
        if cfg.algo not in ("sac", "td3"):
            raise ValueError(f"algo {cfg.algo!r} is not an off-policy agent (sac, td3)")
        super().__init__(cfg, core)
        od, ad = core.obs_dim, core.action_dim
        agent_cfg = dict(gamma=cfg.gamma, lr=cfg.lr, hidden=cfg.hidden,
                         batch_size=cfg.batch_size)
        self.agent = (SAC(od, ad, SACConfig(**agent_cfg)) if cfg.algo == "sac" else
                      TD3(od, ad, TD3Config(**agent_cfg)))
        self.shaper: AdditiveShaper | PotentialShaper | None = None
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
        self.buffer = Replay(cfg.buffer, od, ad)

    def advance(self) -> list[dict]:
        """One batched env step (num_envs transitions) and its gradient updates; returns a
        metrics row when the episodes end."""
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
        rows = []
        if done:
            rows.append(self.episode_row() | losses)
            next_obs = core.reset().copy()
        self.obs = next_obs
        return rows

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

    def policy_actor(self) -> Actor:
        return self.agent.net if isinstance(self.agent, TD3) else self.agent.actor

    def agent_state(self) -> dict:
        return {"net": self.agent.state_dict(),
                "opt": optimizer_states(self.agent.optimizers()),
                "extra": self.agent.extra_state(),
                "shaper": None if self.shaper is None else self.shaper.state_dict(),
                "shaper_opt": None if self.shaper is None else optimizer_states(
                    self.shaper.optimizers()),
                "buffer": self.buffer.data, "buffer_pos": [self.buffer.n, self.buffer.i]}

    def load_agent_state(self, s: dict) -> None:
        self.agent.load_state_dict(s["net"])
        load_optimizer_states(self.agent.optimizers(), s["opt"])
        self.agent.load_extra_state(s["extra"])
        if self.shaper is not None:
            self.shaper.load_state_dict(s["shaper"])
            load_optimizer_states(self.shaper.optimizers(), s["shaper_opt"])
        shapes = {k: v.shape for k, v in self.buffer.data.items()}
        if {k: np.shape(v) for k, v in s["buffer"].items()} != shapes:
            raise ValueError("the replay buffer does not match this run's sizes")
        self.buffer.data = s["buffer"]
        self.buffer.n, self.buffer.i = (int(v) for v in s["buffer_pos"])


def make_trainer(cfg: TrainConfig, bank: DayBank) -> RunTrainer:
    if cfg.algo == "bc":
        raise ValueError("behaviour cloning has no trainer loop: use learn.bc.train_bc")
    if cfg.action.startswith("provision-") and not bank.base.commit:
        raise ScenarioError("--action", f"{cfg.action} needs a family with "
                            "[provisioning] on (jemas-3-genai)", f"{cfg.action} on "
                            f"{cfg.scenario}")
    torch.set_num_threads(cfg.threads)
    core = ACTIONS[cfg.action](bank, cfg.num_envs, EnvConfig(
        reward=cfg.reward, reward_scale=cfg.reward_scale))
    if cfg.algo == "ppo":
        from optsched.learn.ppo import PPOTrainer

        return PPOTrainer(cfg, core)
    return Trainer(cfg, core)


def open_run(cfg: TrainConfig, bank: DayBank | None = None, resume: bool = False,
             overwrite: bool = False) -> RunTrainer:
    """The trainer of a run in `cfg.out`, resumed from its checkpoint with `resume`; every
    refusal happens here, before anything is written: resuming without a checkpoint or
    with other options, starting afresh over an existing run unless `overwrite`, a run too
    short to finish one episode."""
    out = Path(cfg.out)
    loop.prepare_out(out, resume, overwrite)
    if bank is None:
        from optsched.scenario import family
        bank = DayBank.from_family(list(cfg.days) or family(cfg.scenario).train_days(),
                                   source=cfg.scenario)
    trainer = make_trainer(cfg, bank)
    episode = trainer.core.T * cfg.num_envs
    if cfg.steps < episode:
        raise ScenarioError("--steps", f"fewer than one episode ({trainer.core.T} slots x "
                            f"{cfg.num_envs} copies = {episode} steps): no episode would "
                            "finish and no metrics would be written", cfg.steps)
    if resume:
        trainer.load(out / loop.CHECKPOINT)
    return trainer


def run_training(trainer: RunTrainer, progress=None) -> RunTrainer:
    """Run an opened run to its steps; writes config.json, metrics.csv, checkpoint.pt,
    policy.pt and curves.png in its folder (a fresh run first removes an old one's)."""
    cfg = trainer.cfg
    out = Path(cfg.out)
    if trainer.steps == 0:
        loop.clear_out(out)
    cfg.save(out / loop.CONFIG)
    loop.write_metrics(out / loop.METRICS, trainer.rows)
    trainer.run(out=out, progress=progress)
    trainer.save(out / loop.CHECKPOINT)
    save_policy(out / loop.POLICY, trainer.policy_actor(), trainer.norm, cfg.action,
                dataclasses.asdict(cfg))
    loop.write_curves(out)
    return trainer


def train(cfg: TrainConfig, bank: DayBank | None = None, resume: bool = False,
          progress=None, overwrite: bool = False) -> RunTrainer:
    """`open_run` then `run_training`."""
    return run_training(open_run(cfg, bank, resume, overwrite), progress)
