"""benchmarks/learning.py's bookkeeping: which runs count as done, and its statistics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmarks.learning import finished, steps_to, t95


def test_only_this_runs_policy_counts_as_finished(tmp_path):
    """A policy.pt counts as the result only when it was saved with exactly this run's
    configuration: an earlier, shorter run's policy in the folder is not this run's."""
    from optsched.learn.nets import Actor, RunningNorm
    from optsched.learn.policy import save_policy
    from optsched.learn.train import TrainConfig

    cfg = TrainConfig(algo="ppo", steps=18_432, out=str(tmp_path), days=(0, 1))
    assert not finished(cfg)                                   # nothing there
    save_policy(tmp_path / "policy.pt", Actor(4, 2, 8), RunningNorm(4), cfg.action,
                dataclasses.asdict(cfg))
    assert finished(cfg)
    assert not finished(dataclasses.replace(cfg, steps=36_864))    # asked for more
    assert not finished(dataclasses.replace(cfg, seed=1))


def test_statistics_against_hand_values():
    # mean 2, sd 1, n 3: half width t(0.975, 2) * 1 / sqrt(3) = 4.302653 / 1.732051
    m, lo, hi = t95([1.0, 2.0, 3.0])
    assert m == 2.0 and hi - m == pytest.approx(4.302653 / np.sqrt(3), rel=1e-6)
    assert m - lo == pytest.approx(hi - m)
    curve = {"steps": [10, 20, 30, 40], "episode_utility": [0.0, 3.0, 0.0, 9.0]}
    # rolling means of 3: 0, 1.5, 1, 4
    assert steps_to(curve, 1.2) == 20 and steps_to(curve, 3.9) == 40
    assert np.isnan(steps_to(curve, 5.0))
