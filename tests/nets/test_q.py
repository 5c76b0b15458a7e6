"""QNetwork: output shapes for every supported observation space, and the dueling head on known weights."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rl_lightning.nets import FlattenEncoder, NatureCNN, OneHotEncoder, QNetwork, example_observations

THREE_ACTIONS = gym.spaces.Discrete(3)


@pytest.mark.parametrize("dueling", [False, True], ids=["linear-head", "dueling-head"])
@pytest.mark.parametrize(
    ("observation_space", "encoder_type"),
    [
        (gym.spaces.Box(-1.0, 1.0, (4,), np.float32), FlattenEncoder),
        (gym.spaces.Box(-1.0, 1.0, (2, 3), np.float32), FlattenEncoder),
        (gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), NatureCNN),
        (gym.spaces.Discrete(5), OneHotEncoder),
    ],
    ids=["vector", "matrix", "image", "discrete"],
)
def test_q_values_have_one_column_per_action(observation_space, encoder_type, dueling: bool) -> None:
    q_net = QNetwork(observation_space, THREE_ACTIONS, hidden_sizes=(8,), dueling=dueling)
    assert isinstance(q_net.encoder, encoder_type)
    assert q_net(example_observations(observation_space, batch=5)).shape == (5, 3)


def test_without_hidden_layers_the_head_reads_the_encoder_features() -> None:
    q_net = QNetwork(gym.spaces.Discrete(5), THREE_ACTIONS, hidden_sizes=())
    # One-hot of 5 values straight into the head: a (5 -> 3) linear layer.
    assert q_net.advantage.in_features == 5
    assert q_net(torch.tensor([0, 4])).shape == (2, 3)


def test_dueling_head_is_value_plus_advantage_minus_mean_advantage() -> None:
    q_net = QNetwork(gym.spaces.Box(-10.0, 10.0, (2,), np.float32), THREE_ACTIONS, hidden_sizes=(), dueling=True)
    with torch.no_grad():
        q_net.advantage.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        q_net.advantage.bias.zero_()
        q_net.value.weight.copy_(torch.tensor([[2.0, 0.0]]))
        q_net.value.bias.fill_(0.5)
    # x = (1, 2): A = (1, 2, 1 + 2) = (1, 2, 3), mean(A) = 2; V = 2 * 1 + 0.5 = 2.5.
    # Q = V + A - mean(A) = 2.5 + (1, 2, 3) - 2 = (1.5, 2.5, 3.5).
    q_values = q_net(torch.tensor([[1.0, 2.0]]))
    assert q_values.tolist() == [[1.5, 2.5, 3.5]]


def test_linear_head_is_the_advantage_layer_alone() -> None:
    q_net = QNetwork(gym.spaces.Box(-10.0, 10.0, (2,), np.float32), THREE_ACTIONS, hidden_sizes=())
    assert q_net.value is None
    with torch.no_grad():
        q_net.advantage.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        q_net.advantage.bias.copy_(torch.tensor([0.0, 0.0, -1.0]))
    # x = (1, 2): (1, 2, 1 + 2 - 1) = (1, 2, 2).
    assert q_net(torch.tensor([[1.0, 2.0]])).tolist() == [[1.0, 2.0, 2.0]]
