"""Gymnasium faces of the batched core: one copy as `gymnasium.Env`, B copies as a
`gymnasium.vector.VectorEnv`.

Episodes are one horizon (288 five-minute slots by default) of a day drawn from the bank
(training days unless told otherwise). The vector env steps all copies in lockstep, so
every copy ends on the same step; autoreset mode is SAME_STEP: the step that ends the
episodes returns the first observation of the next ones, with the final observations in
`infos["final_obs"]`.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from optsched.env.bank import DayBank
from optsched.env.core import BatchedCore, EnvConfig
from optsched.errors import ScenarioError


def default_bank(days: list[int] | None = None, n_days: int = 16) -> DayBank:
    """jemas-3 training days (the first `n_days` unless `days` are given)."""
    from optsched.scenario import jemas3

    return DayBank.from_family(days if days is not None else jemas3.train_days()[:n_days])


# Observations are normalised (core.observe); prices / 100 span the loader's $/MWh range
# [-1000, 10000], backlogs stay below max_wait + 1 arrivals peaks.
OBS_LOW, OBS_HIGH = -10.0, 100.0


def _spaces(core: BatchedCore) -> tuple[spaces.Box, spaces.Box]:
    obs = spaces.Box(OBS_LOW, OBS_HIGH, shape=(core.obs_dim,), dtype=np.float32)
    act = spaces.Box(-1.0, 1.0, shape=(core.action_dim,), dtype=np.float32)
    return obs, act


class OptschedEnv(gym.Env):
    """One data-centre fleet, one day per episode. Reward: utility in $ / reward_scale."""

    metadata = {"render_modes": []}

    def __init__(self, bank: DayBank | None = None, reward: str = "dense",
                 settlement_slots: int = 12, reward_scale: float = 1.0,
                 record: bool = False, days: list[int] | None = None,
                 forecast_slots: tuple[int, ...] = (), forecast_error: float = 0.0):
        self.bank = bank if bank is not None else default_bank(days)
        self.core = BatchedCore(self.bank, 1, EnvConfig(
            reward, settlement_slots, reward_scale, record, tuple(forecast_slots),
            forecast_error))
        self.observation_space, self.action_space = _spaces(self.core)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        day = (options or {}).get("day")         # a day of the bank, as info["day"] says
        if day is not None and (isinstance(day, bool) or day not in self.bank.days):
            raise ScenarioError("options['day']", f"must be one of the bank's days "
                                f"{list(self.bank.days)[:8]}", day)
        j = int(self.np_random.integers(len(self.bank))) if day is None else \
            list(self.bank.days).index(day)
        # The core's own generator (forecast noise) follows the episode's seed.
        obs = self.core.reset(days=[j], seed=int(self.np_random.integers(2**63)))
        return obs[0].astype(np.float32), {"day": self.bank.days[j], "bank_index": j}

    def step(self, action):
        obs, reward, done, info = self.core.step(np.asarray(action, dtype=float)[None])
        return (obs[0].astype(np.float32), float(reward[0]), bool(done), False,
                {"utility": float(info["utility"][0])})


class OptschedVectorEnv(VectorEnv):
    """B copies stepped by the batched core in one call (no per-copy Python loop)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int, bank: DayBank | None = None, reward: str = "dense",
                 settlement_slots: int = 12, reward_scale: float = 1.0,
                 days: list[int] | None = None, forecast_slots: tuple[int, ...] = (),
                 forecast_error: float = 0.0):
        self.bank = bank if bank is not None else default_bank(days)
        self.num_envs = int(num_envs)
        self.core = BatchedCore(self.bank, self.num_envs, EnvConfig(
            reward, settlement_slots, reward_scale, False, tuple(forecast_slots),
            forecast_error))
        self.single_observation_space, self.single_action_space = _spaces(self.core)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space,
                                                         self.num_envs)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        days = (options or {}).get("days")
        obs = self.core.reset(days=days, seed=seed)
        return obs.astype(np.float32), {"day": self.core.day.copy()}

    def step(self, actions):
        obs, reward, done, info = self.core.step(np.asarray(actions, dtype=float))
        terminated = np.full(self.num_envs, done)
        truncated = np.zeros(self.num_envs, dtype=bool)
        infos: dict = {"utility": info["utility"]}
        if done:
            infos["final_obs"] = obs.astype(np.float32)
            infos["episode_utility"] = self.core.episode_utility
            obs = self.core.reset()
        return obs.astype(np.float32), reward.astype(np.float64), terminated, truncated, infos
