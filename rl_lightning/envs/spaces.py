"""Checks that an algorithm can handle an environment's spaces, with messages that say what fits."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from rl_lightning.errors import ConfigurationError


def torch_dtype(space: gym.Space) -> torch.dtype | dict[str, torch.dtype] | tuple[torch.dtype, ...]:
    """The tensor dtype that stores samples of ``space`` (float64 becomes float32); for a ``Dict`` or ``Tuple``
    observation space, the dict or tuple of its keys' dtypes."""
    if isinstance(space, gym.spaces.Dict):
        return {key: torch_dtype(subspace) for key, subspace in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(torch_dtype(subspace) for subspace in space.spaces)
    if isinstance(space, gym.spaces.Discrete):
        return torch.long
    dtype = np.dtype(space.dtype)
    if dtype == np.float64:
        return torch.float32
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


def observation_shape(space: gym.Space) -> tuple[int, ...] | dict[str, tuple[int, ...]] | tuple[tuple[int, ...], ...]:
    """The shape of one observation of ``space``; for a ``Dict`` or ``Tuple`` space, the dict or tuple of its keys'
    shapes (what the buffers take beside :func:`torch_dtype`)."""
    if isinstance(space, gym.spaces.Dict):
        return {key: observation_shape(subspace) for key, subspace in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(observation_shape(subspace) for subspace in space.spaces)
    return tuple(space.shape)


def is_structured(space: gym.Space) -> bool:
    """Whether observations of ``space`` are a dict (``Dict``) or tuple (``Tuple``) of tensors, one per key."""
    return isinstance(space, gym.spaces.Dict | gym.spaces.Tuple)


def describe(space: gym.Space) -> str:
    """A short description of a space, e.g. ``Box(-2.0, 2.0, (1,), float32)``."""
    return repr(space)


KEY_SPACES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)
"""The spaces a key of a ``Dict`` or ``Tuple`` observation space may have (no nesting)."""


def check_observation_space(space: gym.Space, algorithm: str) -> None:
    """Observations must be a ``Box`` (vectors or images), a ``Discrete`` or ``MultiDiscrete`` (one-hot encoded), a
    ``MultiBinary``, or a ``Dict`` or ``Tuple`` of those, one level deep."""
    if isinstance(space, KEY_SPACES):
        return
    if is_structured(space):
        items = space.spaces.items() if isinstance(space, gym.spaces.Dict) else enumerate(space.spaces)
        for key, subspace in items:
            if isinstance(subspace, KEY_SPACES):
                continue
            nested = is_structured(subspace)
            raise ConfigurationError(
                f"{algorithm} cannot handle the observation key {key!r} of {describe(space)}: "
                + (
                    f"it is a nested {type(subspace).__name__} space, and Dict and Tuple observations are taken one "
                    f"level deep. Flatten that key into its parent with an ObservationWrapper (passed in wrappers=)."
                    if nested
                    else f"its space {describe(subspace)} is none of Box, Discrete, MultiDiscrete and MultiBinary. "
                    f"Convert that key with an ObservationWrapper (passed in wrappers=), or drop it."
                )
            )
        return
    raise ConfigurationError(
        f"{algorithm} cannot handle the observation space {describe(space)}: supported are Box (vectors or "
        f"images), Discrete, MultiDiscrete, MultiBinary, and Dict or Tuple spaces of those. Convert "
        f"it with an ObservationWrapper (pass it in wrappers=), or give a network that takes these observations."
    )


ACTION_SPACES: dict[str, tuple[str, ...]] = {
    "DQN": ("Discrete",),
    "PPO": ("Discrete", "MultiDiscrete", "MultiBinary", "Box"),
    "A2C": ("Discrete", "MultiDiscrete", "MultiBinary", "Box"),
    "SAC": ("bounded Box",),
    "TD3": ("bounded Box",),
    "DDPG": ("bounded Box",),
}
"""The kinds of action space each algorithm takes (:func:`action_space_kinds` says which kinds a space is of):
the one table that refusals name alternatives from, and that the README's table of algorithms shows."""


def action_space_kinds(space: gym.Space) -> frozenset[str]:
    """The kinds of :data:`ACTION_SPACES` that ``space`` is of: ``Discrete``; ``MultiDiscrete`` (a one-dimensional
    ``nvec``); ``MultiBinary``; ``Box`` (float), and also ``bounded Box`` where every bound is finite; none for any
    other space."""
    if isinstance(space, gym.spaces.Discrete):
        return frozenset({"Discrete"})
    if isinstance(space, gym.spaces.MultiDiscrete) and len(space.nvec.shape) == 1:
        return frozenset({"MultiDiscrete"})
    if isinstance(space, gym.spaces.MultiBinary):
        return frozenset({"MultiBinary"})
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
