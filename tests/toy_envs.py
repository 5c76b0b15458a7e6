"""A tiny deterministic environment whose every transition is known, for hand-computed expectations.

``CountingEnv`` counts the steps of its episode: after ``t`` steps the observation is ``[t]`` and the
``t``-th step's reward is ``t``, whatever the action. With ``terminate_at=k`` the ``k``-th step terminates
the episode; :func:`counting_env` adds a gymnasium ``TimeLimit`` so that an episode is truncated instead.
``TorchCountingEnv`` is the same env as a torch vector env.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from rl_lightning.envs import TORCH_ENVS, TorchVectorEnv, register_torch_env

COUNTING_ID = "RLLightningCounting-v0"
"""``CountingEnv`` with a time limit of 3 steps, registered under this id when this module is imported."""

TORCH_COUNTING_ID = "RLLightningTorchCounting-v0"
"""``TorchCountingEnv``, registered for ``vectorization="torch"`` under this id when this module is imported."""


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


class TorchCountingEnv(TorchVectorEnv):
    """``CountingEnv`` as a torch vector env: env ``i`` terminates at its ``terminate_at[i]``-th step.

    Args:
        num_envs: number of envs.
        device: where the tensors live.
        terminate_at: per env, the step that terminates its episodes (``None``: never); by default none terminates.
        max_episode_steps: the time limit of all envs (``None``: none).
        autoreset_mode: ``AutoresetMode.SAME_STEP`` or ``AutoresetMode.NEXT_STEP``.
    """

    def __init__(
        self,
        num_envs: int = 2,
        *,
        device: torch.device | str | None = None,
        terminate_at: Sequence[int | None] | None = None,
        max_episode_steps: int | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
    ) -> None:
        super().__init__(
            num_envs,
            single_observation_space=CountingEnv.observation_space,
            single_action_space=CountingEnv.action_space,
            max_episode_steps=max_episode_steps,
            device=device,
            autoreset_mode=autoreset_mode,
        )
        limits = [None] * num_envs if terminate_at is None else list(terminate_at)
        # Step 0 never ends a step, so 0 stands for "never".
        self.terminate_at = torch.tensor([limit or 0 for limit in limits], device=self.device)

    def initial_state(self, options: dict[str, Any] | None) -> torch.Tensor:
        """Every episode starts at ``t = 0``."""
        return torch.zeros(self.num_envs, 1, dtype=self.dtype, device=self.device)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``t + 1``, reward ``t + 1``, terminated at ``terminate_at``."""
        counted = state + 1
        return counted, counted[:, 0].clone(), counted[:, 0] == self.terminate_at

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """``[t]``."""
        return state.clone()


if COUNTING_ID not in gym.registry:
    gym.register(COUNTING_ID, entry_point=CountingEnv, max_episode_steps=3)
if TORCH_COUNTING_ID not in TORCH_ENVS:
    register_torch_env(TORCH_COUNTING_ID, TorchCountingEnv)
