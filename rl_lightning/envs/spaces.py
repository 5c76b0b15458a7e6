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


ACTION_SPACES: dict[str, tuple[str, ...]] = {
    "DQN": ("Discrete",),
    "PPO": ("Discrete", "MultiDiscrete", "Box"),
    "A2C": ("Discrete", "MultiDiscrete", "Box"),
    "SAC": ("bounded Box",),
    "TD3": ("bounded Box",),
    "DDPG": ("bounded Box",),
}
"""The kinds of action space each algorithm takes (:func:`action_space_kinds` says which kinds a space is of):
the one table that refusals name alternatives from, and that the README's table of algorithms shows."""


def action_space_kinds(space: gym.Space) -> frozenset[str]:
    """The kinds of :data:`ACTION_SPACES` that ``space`` is of: ``Discrete``; ``MultiDiscrete`` (a one-dimensional
    ``nvec``); ``Box`` (float), and also ``bounded Box`` where every bound is finite; none for any other space."""
    if isinstance(space, gym.spaces.Discrete):
        return frozenset({"Discrete"})
    if isinstance(space, gym.spaces.MultiDiscrete) and len(space.nvec.shape) == 1:
        return frozenset({"MultiDiscrete"})
    if isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating):
        bounded = bool(np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)))
        return frozenset({"Box", "bounded Box"} if bounded else {"Box"})
    return frozenset()


def algorithms_for(space: gym.Space) -> list[str]:
    """The algorithms of :data:`ACTION_SPACES` that take ``space`` as their action space."""
    kinds = action_space_kinds(space)
    return [name for name, accepted in ACTION_SPACES.items() if kinds.intersection(accepted)]


def check_action_space(space: gym.Space, algorithm: str, accepted: tuple[str, ...]) -> None:
    """Refuse an action space of none of the ``accepted`` kinds (a row of :data:`ACTION_SPACES`), naming the
    algorithms that do take it (only those), or saying that none does.

    Args:
        space: the environment's action space.
        algorithm: the name the message gives the refusing algorithm (a subclass's own name, say).
        accepted: the kinds of action space it takes.
    """
    kinds = action_space_kinds(space)
    if kinds.intersection(accepted):
        return
    problem = f"{algorithm} takes {' or '.join(accepted)} action spaces, but the environment's is {describe(space)}"
    if "Box" in kinds and "bounded Box" in accepted:
        problem += " (unbounded: its actions are squashed into the bounds)"
    others = [name for name in algorithms_for(space) if name != algorithm]
    if others:
        fix = f"Use {', '.join(others)}, which take it, or convert the actions with a wrapper (passed in wrappers=)."
    else:
        fix = "No algorithm here takes it: convert the actions with a wrapper (passed in wrappers=)."
    raise ConfigurationError(f"{problem}. {fix}")
