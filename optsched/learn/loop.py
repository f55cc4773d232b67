"""The training loop both trainers share: advance, log, checkpoint, report progress."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def run_loop(trainer, advance: Callable[[], list[dict]], until: int | None = None,
             out: Path | None = None, progress=None, log=None) -> None:
    """Call `advance` (one batched step or rollout; returns metrics rows of finished
    episodes) until `trainer.steps` reaches `until`; checkpoints every
    `cfg.checkpoint_every` steps, wall time kept across resumes in `trainer.wall`."""
    cfg = trainer.cfg
    until = cfg.steps if until is None else until
    next_ckpt = (trainer.steps // cfg.checkpoint_every + 1) * cfg.checkpoint_every
    start = time.perf_counter()
    while trainer.steps < until:
        for row in advance():
            if log is not None:
                log(row | {"wall_s": trainer.wall + time.perf_counter() - start})
        if out is not None and trainer.steps >= next_ckpt:
            trainer.wall += time.perf_counter() - start
            start = time.perf_counter()
            trainer.save(out / "checkpoint.pt")
            next_ckpt += cfg.checkpoint_every
        if progress is not None:
            progress(trainer.steps)
    trainer.wall += time.perf_counter() - start
