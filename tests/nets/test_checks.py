"""build_network and check_output_shape: user networks in every accepted form, and clear refusals."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from rl_lightning.errors import ConfigurationError
from rl_lightning.nets import build_network, check_output_shape, example_observations

OBSERVATION_SPACE = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
ACTION_SPACE = gym.spaces.Discrete(2)


def default_network() -> nn.Module:
    return nn.Linear(4, 2)


def build(spec) -> nn.Module:
    return build_network(spec, OBSERVATION_SPACE, ACTION_SPACE, default_network, "q_net")


def test_a_module_is_used_as_given() -> None:
    module = nn.Linear(4, 2)
    assert build(module) is module


def test_a_factory_is_called_with_the_spaces() -> None:
    calls = []

    def factory(observation_space: gym.Space, action_space: gym.Space) -> nn.Module:
        calls.append((observation_space, action_space))
        return nn.Linear(4, 7)

    assert build(factory).out_features == 7
    assert calls == [(OBSERVATION_SPACE, ACTION_SPACE)]


def test_none_builds_the_default() -> None:
    network = build(None)
    assert isinstance(network, nn.Linear)
    assert (network.in_features, network.out_features) == (4, 2)


def test_a_factory_returning_something_else_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"returned str; a network factory must return an nn\.Module"):
        build(lambda observation_space, action_space: "a network")


def test_a_spec_that_is_neither_module_nor_factory_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"q_net=3 is neither an nn\.Module nor a factory"):
        build(3)


def test_a_network_of_the_expected_shape_passes() -> None:
    check_output_shape(nn.Linear(4, 2), (torch.zeros(5, 4),), (5, 2), "q_net", "(batch, n_actions)")


def test_a_network_of_the_wrong_shape_is_refused_stating_the_expected_shape() -> None:
    with pytest.raises(
        ConfigurationError, match=r"q_net returned shape \(5, 3\); expected \(5, 2\) = \(batch, n_actions\)"
    ):
        check_output_shape(nn.Linear(4, 3), (torch.zeros(5, 4),), (5, 2), "q_net", "(batch, n_actions)")


def test_a_network_returning_no_tensor_is_refused() -> None:
    class TwoOutputs(nn.Module):
        def forward(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return observations, observations

    with pytest.raises(ConfigurationError, match=r"q_net returned shape tuple; expected \(5, 4\)"):
        check_output_shape(TwoOutputs(), (torch.zeros(5, 4),), (5, 4), "q_net", "(batch, n_actions)")


def test_a_network_failing_on_the_inputs_is_refused_naming_their_shape() -> None:
    with pytest.raises(
        ConfigurationError, match=r"q_net failed on inputs of shape \(5, 4\) \(RuntimeError: .*shape \(5, 2\)"
    ):
        check_output_shape(nn.Linear(3, 2), (torch.zeros(5, 4),), (5, 2), "q_net", "(batch, n_actions)")


@pytest.mark.parametrize(
    ("space", "shape", "dtype"),
    [
        (gym.spaces.Box(-1.0, 1.0, (3,), np.float64), (2, 3), torch.float32),  # float64 becomes float32
        (gym.spaces.Box(0, 255, (4, 8, 8), np.uint8), (2, 4, 8, 8), torch.uint8),
        (gym.spaces.Discrete(5), (2,), torch.int64),
    ],
    ids=["float64-box", "image", "discrete"],
)
def test_example_observations_are_batches_as_the_collector_gives_them(space, shape, dtype) -> None:
    observations = example_observations(space)
    assert (tuple(observations.shape), observations.dtype) == (shape, dtype)
