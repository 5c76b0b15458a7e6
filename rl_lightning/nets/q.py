"""Q-networks for discrete actions."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
from torch import Tensor, nn

from rl_lightning.nets.encoders import make_encoder
from rl_lightning.nets.mlp import mlp


class QNetwork(nn.Module):
    """``Q(s, .)`` for every action: encoder, MLP, and a linear or dueling head.

    The dueling head (Wang et al., 2016) computes ``V(s) + A(s, a) - mean_a A(s, a)``.

    Args:
        observation_space: the env's observation space (picks the encoder).
        action_space: a ``Discrete`` action space (sets the number of outputs).
        hidden_sizes: widths of the hidden layers after the encoder.
        dueling: use the dueling head.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.spaces.Discrete,
        hidden_sizes: Sequence[int] = (64, 64),
        dueling: bool = False,
    ) -> None:
        super().__init__()
        n_actions = int(action_space.n)
        self.encoder = make_encoder(observation_space)
        self.torso = mlp(self.encoder.out_features, None, hidden_sizes)
        width = hidden_sizes[-1] if hidden_sizes else self.encoder.out_features
        self.dueling = dueling
        self.advantage = nn.Linear(width, n_actions)
        self.value = nn.Linear(width, 1) if dueling else None

    def forward(self, observations: Tensor) -> Tensor:
        features = self.torso(self.encoder(observations))
        advantage = self.advantage(features)
        if self.value is None:
            return advantage
        return self.value(features) + advantage - advantage.mean(dim=1, keepdim=True)
