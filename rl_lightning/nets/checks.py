"""Building user-replaceable networks and refusing ones of the wrong shape."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rl_lightning.errors import ConfigurationError
from rl_lightning.tree import Observations, tree_leaves, tree_map

NetworkSpec = nn.Module | Callable[[gym.Space, gym.Space], nn.Module] | None
"""A network given by the user: a module, or a factory of ``(observation_space, action_space)``."""


def build_network(
    spec: NetworkSpec,
    observation_space: gym.Space,
    action_space: gym.Space,
    default: Callable[[], nn.Module],
    name: str,
    output_shape: tuple[int, ...] | None = None,
    meaning: str = "",
) -> nn.Module:
    """The module of ``spec``: itself, what its factory builds from the spaces, or ``default()`` for None.

    With ``output_shape``, the module is refused (:func:`check_output_shape`) unless a batch of 2 example
    observations gives an output of that shape, which means ``meaning``.
    """
    if spec is None:
        network = default()
    elif isinstance(spec, nn.Module):
        network = spec
    elif callable(spec):
        network = spec(observation_space, action_space)
        if not isinstance(network, nn.Module):
            raise ConfigurationError(
                f"{name}={spec!r} returned {type(network).__name__}; a network factory must return an nn.Module "
                f"when called with (observation_space, action_space)."
            )
    else:
        raise ConfigurationError(
            f"{name}={spec!r} is neither an nn.Module nor a factory of (observation_space, action_space)."
        )
    if output_shape is not None:
        check_output_shape(network, (example_observations(observation_space),), output_shape, name, meaning)
    return network


def example_observations(space: gym.Space, batch: int = 2) -> Observations:
    """A batch of observations from ``space``, as the collector hands them to networks (a dict or tuple of tensors
    for a ``Dict`` or ``Tuple`` space)."""

    def stacked(*samples: np.ndarray) -> torch.Tensor:
        array = np.stack([np.asarray(sample) for sample in samples])
        return torch.as_tensor(array.astype(np.float32) if array.dtype == np.float64 else array)

    return tree_map(stacked, *(space.sample() for _ in range(batch)))


def check_output_shape(
    network: nn.Module, inputs: tuple[Observations, ...], expected: tuple[int, ...], name: str, meaning: str
) -> None:
    """Run ``network`` on ``inputs`` and refuse it unless its output has shape ``expected``."""
    try:
        with torch.no_grad():
            output = network(*inputs)
    except Exception as err:
        shapes = ", ".join(_describe_shape(x) for x in inputs)
        raise ConfigurationError(
            f"{name} failed on inputs of shape {shapes} ({type(err).__name__}: {err}). It must map those to "
            f"shape {expected} = {meaning}."
        ) from None
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != expected:
        got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ConfigurationError(f"{name} returned shape {got}; expected {expected} = {meaning}.")


def _describe_shape(inputs: Observations) -> str:
    """``(2, 4)``, or ``{'image': (2, 3, 8, 8), 'flag': (2,)}`` for a dict of tensors."""
    leaves = list(tree_leaves(inputs))
    if len(leaves) == 1 and leaves[0][0] == "":
        return str(tuple(inputs.shape))
    return "{" + ", ".join(f"{key!r}: {tuple(leaf.shape)}" for key, leaf in leaves) + "}"
