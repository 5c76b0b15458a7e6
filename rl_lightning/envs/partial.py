"""Partially observed tasks, where a policy needs memory: registered ids for recurrent policies' tests and benchmarks.

``rl_lightning/CartPoleNoVel-v1`` is CartPole-v1 observing only the cart position and the pole angle, as in
RL-Zoo's ``CartPoleNoVel-v1`` (used for Stable-Baselines3-contrib's recurrent PPO): the velocities, which a
feed-forward policy needs to balance the pole, must be inferred from successive observations. Importing
:mod:`rl_lightning` registers it, so configs name it as any gymnasium id (``env: rl_lightning/CartPoleNoVel-v1``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

CARTPOLE_NO_VELOCITY = "rl_lightning/CartPoleNoVel-v1"
_OBSERVED = [0, 2]  # cart position, pole angle; the velocities (1 and 3) are left out


class CartPoleNoVelocityEnv(CartPoleEnv):
    """CartPole whose observation is ``(x, theta)``: same dynamics, reward and ends as CartPole-v1 (registered with
    its 500-step time limit and 475 reward threshold). A subclass rather than a wrapper, so that it pickles as one
    env and runs saved with it resume exactly."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        space = self.observation_space
        self.observation_space = gym.spaces.Box(space.low[_OBSERVED], space.high[_OBSERVED], dtype=space.dtype)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        observation, reward, terminated, truncated, info = super().step(action)
        return observation[_OBSERVED], reward, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        observation, info = super().reset(seed=seed, options=options)
        return observation[_OBSERVED], info


def register_partial_envs() -> None:
    """Register :data:`CARTPOLE_NO_VELOCITY` (once; a re-import changes nothing)."""
    if CARTPOLE_NO_VELOCITY not in gym.registry:
        gym.register(
            CARTPOLE_NO_VELOCITY,
            entry_point=CartPoleNoVelocityEnv,
            max_episode_steps=500,
            reward_threshold=475.0,
        )
