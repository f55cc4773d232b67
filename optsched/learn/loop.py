"""The run lifecycle every trainer shares: its output folder, the loop (advance, log,
checkpoint, report progress), checkpoints that resume exactly and metrics that match them.

A run folder holds config.json, checkpoint.pt (the whole state, every `checkpoint_every`
steps and at the end), metrics.csv (one row per finished episode), policy.pt and
curves.png. The metrics rows are part of the checkpoint and metrics.csv is rewritten from
them (atomically) whenever a row arrives, so after a resume it holds exactly the rows of
the state it continues from: rows logged after the last checkpoint by a killed run are
dropped and made again, never duplicated.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from optsched.errors import ScenarioError
from optsched.io import atomic_path, atomic_write_text
from optsched.learn.checkpoint import load_checkpoint, save_checkpoint
from optsched.learn.nets import Actor, ReturnNorm, RunningNorm

CHECKPOINT, METRICS, POLICY, CONFIG, CURVES = (
    "checkpoint.pt", "metrics.csv", "policy.pt", "config.json", "curves.png")
RUN_FILES = (CHECKPOINT, METRICS, POLICY, CONFIG, CURVES)
# Options that may change when a run is resumed; any other difference is refused.
RESUMABLE = ("steps", "out", "checkpoint_every", "threads")


def prepare_out(out: Path, resume: bool = False, overwrite: bool = False) -> None:
    """Refuse what would lose or mix up a run: --resume without a checkpoint, or a fresh
    run into a folder that holds one (unless `overwrite`). Nothing is written here."""
    if resume and overwrite:
        raise ScenarioError("--resume", "cannot be combined with --overwrite")
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise ScenarioError("--resume", "no checkpoint in the output folder to resume",
                                str(out / CHECKPOINT))
        return
    if out.exists() and not out.is_dir():
        raise ScenarioError("--out", "is a file, not a folder", str(out))
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found and not overwrite:
        raise ScenarioError("--out", f"already holds a run ({', '.join(found)}): continue it "
                            "with --resume, replace it with --overwrite, or choose another "
                            "folder", str(out))


def clear_out(out: Path) -> None:
    """Remove an old run's files (a fresh run with `overwrite`)."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)


def write_metrics(path: Path, rows: list[dict]) -> None:
    """All rows as CSV, atomically; columns: steps, wall_s, episode_utility, then every
    other key in the order first seen."""
    fields = list(dict.fromkeys(["steps", "wall_s", "episode_utility",
                                 *(k for row in rows for k in row)]))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def write_curves(out: Path) -> None:
    import matplotlib.pyplot as plt

    from optsched.reporting.plots import learning_figure

    fig = learning_figure([out / METRICS])
    with atomic_path(out / CURVES) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


class RunTrainer:
    """What every trainer has and does apart from its agent: seeds, observation (and
    optional return) normalisation, the environment, counters, metrics rows, the loop,
    checkpoints. A subclass builds `agent`, and defines `advance` (one batched step or
    rollout; returns the rows of finished episodes), `policy_actor`, `agent_state` and
    `load_agent_state`."""

    agent: torch.nn.Module

    def __init__(self, cfg, core):
        self.cfg, self.core = cfg, core
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.norm = RunningNorm(core.obs_dim)
        self.rnorm = ReturnNorm(core.B, cfg.gamma) if cfg.reward_norm else None
        self.steps, self.wall = 0, 0.0
        self.rows: list[dict] = []
        self.obs = core.reset(seed=cfg.seed).copy()

    # ------------------------------------------------------------ for subclasses
    def advance(self) -> list[dict]:
        raise NotImplementedError

    def policy_actor(self) -> Actor:
        raise NotImplementedError

    def agent_state(self) -> dict:
        raise NotImplementedError

    def load_agent_state(self, s: dict) -> None:
        raise NotImplementedError

    def episode_row(self) -> dict:
        """The metrics row of the episodes that just ended (mean over copies)."""
        return {"steps": self.steps,
                "episode_utility": float(self.core.episode_utility.mean())}

    # ------------------------------------------------------------ the loop
    def run(self, until: int | None = None, out: Path | None = None,
            progress: Callable[[int], object] | None = None) -> None:
        """Advance until `steps` reaches `until` (default: the config's); with `out`,
        metrics.csv follows every row and a checkpoint is written every
        `checkpoint_every` steps. Wall time is kept across resumes."""
        cfg = self.cfg
        until = cfg.steps if until is None else until
        next_ckpt = (self.steps // cfg.checkpoint_every + 1) * cfg.checkpoint_every
        start = time.perf_counter()
        while self.steps < until:
            rows = self.advance()
            for row in rows:
                self.rows.append(row | {"wall_s": self.wall + time.perf_counter() - start})
            if out is not None and rows:
                write_metrics(out / METRICS, self.rows)
            if out is not None and self.steps >= next_ckpt:
                self.wall += time.perf_counter() - start
                start = time.perf_counter()
                self.save(out / CHECKPOINT)
                next_ckpt += cfg.checkpoint_every
            if progress is not None:
                progress(self.steps)
        self.wall += time.perf_counter() - start

    # ------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        return {"config": dataclasses.asdict(self.cfg), "steps": self.steps,
                "wall": self.wall, "rows": self.rows, "obs": self.obs,
                "rng": self.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "core": self.core.snapshot(), "norm": self.norm.state(),
                "rnorm": None if self.rnorm is None else self.rnorm.state(),
                "agent": self.agent_state()}

    def save(self, path: Path) -> None:
        save_checkpoint(path, "training", self.state())

    def load(self, path: Path) -> None:
        load_checkpoint(path, "training", self.restore)

    def restore(self, s: dict) -> None:
        mine = dataclasses.asdict(self.cfg)
        theirs = s["config"]
        changed = [k for k in mine if k not in RESUMABLE and theirs.get(k) != mine[k]]
        if changed:
            said = ", ".join(f"{k}={theirs.get(k)!r}" for k in changed[:4])
            raise ScenarioError("--resume", f"the checkpoint's run has {said}; resume with "
                                "the same options (only --steps may grow)",
                                ", ".join(f"{k}={mine[k]!r}" for k in changed[:4]))
        if s["steps"] >= self.cfg.steps:
            raise ScenarioError("--steps", f"the checkpoint is already at {s['steps']} steps; "
                                "ask for more to continue", self.cfg.steps)
        self.load_agent_state(s["agent"])
        self.norm.load(s["norm"])
        if self.rnorm is not None:
            self.rnorm.load(s["rnorm"])
        self.steps, self.wall, self.rows = int(s["steps"]), float(s["wall"]), list(s["rows"])
        self.obs = np.asarray(s["obs"])
        self.rng.bit_generator.state = s["rng"]
        torch.set_rng_state(s["torch_rng"])
        self.core.restore(s["core"])


def optimizer_states(opts: list[torch.optim.Optimizer]) -> list[dict]:
    return [o.state_dict() for o in opts]


def load_optimizer_states(opts: list[torch.optim.Optimizer], states: list[dict]) -> None:
    if len(opts) != len(states):
        raise ValueError(f"{len(states)} optimiser states for {len(opts)} optimisers")
    for o, st in zip(opts, states, strict=True):
        o.load_state_dict(st)
