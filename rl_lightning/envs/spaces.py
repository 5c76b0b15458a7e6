"""Checks that an algorithm can handle an environment's spaces, with messages that say what fits."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from rl_lightning.errors import ConfigurationError


def torch_dtype(space: gym.Space) -> torch.dtype:
    """The tensor dtype that stores samples of ``space`` (float64 becomes float32)."""
    if isinstance(space, gym.spaces.Discrete):
        return torch.long
    dtype = np.dtype(space.dtype)
    if dtype == np.float64:
        return torch.float32
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


def describe(space: gym.Space) -> str:
    """A short description of a space, e.g. ``Box(-2.0, 2.0, (1,), float32)``."""
    return repr(space)


def check_observation_space(space: gym.Space, algorithm: str) -> None:
    """Observations must be a ``Box`` (vectors or images) or a ``Discrete`` (one-hot encoded)."""
    if isinstance(space, gym.spaces.Box | gym.spaces.Discrete):
        return
    raise ConfigurationError(
        f"{algorithm} cannot handle the observation space {describe(space)}: supported are Box (vectors or "
        f"images) and Discrete. Flatten it with gymnasium.wrappers.FlattenObservation (pass it in "
        f"wrappers=), or give a network that takes these observations."
    )


def check_discrete_actions(space: gym.Space, algorithm: str, suggestion: str = "SAC, TD3 or PPO") -> None:
    """``algorithm`` needs a ``Discrete`` action space."""
    if isinstance(space, gym.spaces.Discrete):
        return
    raise ConfigurationError(
        f"{algorithm} needs a Discrete action space, but the environment's is {describe(space)}. "
        f"Use an algorithm for this space ({suggestion}), or discretize the actions with a wrapper."
    )


def check_bounded_box_actions(space: gym.Space, algorithm: str) -> None:
    """``algorithm`` needs a ``Box`` action space with finite bounds (actions are scaled to them)."""
    if not isinstance(space, gym.spaces.Box):
        raise ConfigurationError(
            f"{algorithm} needs a continuous (Box) action space, but the environment's is {describe(space)}. "
            f"Use DQN or PPO for discrete actions."
        )
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise ConfigurationError(
            f"{algorithm} squashes actions into the Box bounds, but {describe(space)} is unbounded. Wrap the "
            f"env with gymnasium.wrappers.ClipAction after giving it finite bounds, or use PPO."
        )
