"""A tiny deterministic environment whose every transition is known, for hand-computed expectations.

``CountingEnv`` counts the steps of its episode: after ``t`` steps the observation is ``[t]`` and the
``t``-th step's reward is ``t``, whatever the action. With ``terminate_at=k`` the ``k``-th step terminates
the episode; :func:`counting_env` adds a gymnasium ``TimeLimit`` so that an episode is truncated instead.
``NonFiniteEnv`` is a ``CountingEnv`` that returns a NaN observation or reward at one step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

COUNTING_ID = "RLLightningCounting-v0"
"""``CountingEnv`` with a time limit of 3 steps, registered under this id when this module is imported."""
NON_FINITE_ID = "RLLightningNonFinite-v0"
"""``NonFiniteEnv`` with a time limit of 50 steps, registered under this id when this module is imported."""


class CountingEnv(gym.Env):
    """Observation ``[t]`` after ``t`` steps, reward ``t`` for the ``t``-th step, termination at ``terminate_at``."""

    observation_space = gym.spaces.Box(0.0, 1000.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, terminate_at: int | None = None, render_mode: str | None = None) -> None:
        self.terminate_at = terminate_at
        self.render_mode = render_mode
        self.t = 0

    def _observation(self) -> np.ndarray:
        return np.array([self.t], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._observation(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return self._observation(), float(self.t), self.t == self.terminate_at, False, {}


class NonFiniteEnv(CountingEnv):
    """A ``CountingEnv`` whose ``nan_in`` (``"observation"`` or ``"reward"``) is NaN at every episode's ``nan_at``-th
    step (never with ``nan_at=None``)."""

    def __init__(self, nan_at: int | None = None, nan_in: str = "observation", render_mode: str | None = None) -> None:
        super().__init__(render_mode=render_mode)
        self.nan_at, self.nan_in = nan_at, nan_in

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        observation, reward, terminated, truncated, info = super().step(action)
        if self.t == self.nan_at:
            if self.nan_in == "observation":
                observation[0] = np.nan
            else:
                reward = float("nan")
        return observation, reward, terminated, truncated, info


def counting_env(terminate_at: int | None = None, truncate_at: int | None = None) -> gym.Env:
    """A ``CountingEnv`` terminating at step ``terminate_at`` or truncated by a time limit at ``truncate_at``."""
    env: gym.Env = CountingEnv(terminate_at)
    if truncate_at is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=truncate_at)
    return env


def counting_vector_env(limits: Sequence[tuple[int | None, int | None]]) -> SyncVectorEnv:
    """A NEXT_STEP vector env with one ``counting_env(terminate_at, truncate_at)`` per entry of ``limits``."""
    factories: list[Callable[[], gym.Env]] = [
        lambda term=term, trunc=trunc: counting_env(term, trunc) for term, trunc in limits
    ]
    return SyncVectorEnv(factories, autoreset_mode=AutoresetMode.NEXT_STEP)


if COUNTING_ID not in gym.registry:
    gym.register(COUNTING_ID, entry_point=CountingEnv, max_episode_steps=3)
if NON_FINITE_ID not in gym.registry:
    gym.register(NON_FINITE_ID, entry_point=NonFiniteEnv, max_episode_steps=50)
