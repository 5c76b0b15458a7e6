"""Turning observations of any supported space into flat float features."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from rl_lightning.errors import ConfigurationError


def is_image_space(space: gym.Space) -> bool:
    """A uint8 ``Box`` of rank 3, channels first (``C, H, W``) as gymnasium's Atari wrappers produce."""
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


class FlattenEncoder(nn.Module):
    """Flattens each observation and casts it to float."""

    def __init__(self, space: gym.spaces.Box) -> None:
        super().__init__()
        self.out_features = int(np.prod(space.shape))

    def forward(self, observations: Tensor) -> Tensor:
        return observations.flatten(1).float()


class OneHotEncoder(nn.Module):
    """One-hot encodes a ``Discrete`` observation."""

    def __init__(self, space: gym.spaces.Discrete) -> None:
        super().__init__()
        self.n, self.start = int(space.n), int(space.start)
        self.out_features = self.n

    def forward(self, observations: Tensor) -> Tensor:
        return nn.functional.one_hot(observations.long().reshape(-1) - self.start, self.n).float()


class NatureCNN(nn.Module):
    """The convolutional torso of Mnih et al. (2015); pixels are scaled to [0, 1] here."""

    def __init__(self, space: gym.spaces.Box, features: int = 512) -> None:
        super().__init__()
        channels = space.shape[0]
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, *space.shape)).shape[1]
        self.linear = nn.Sequential(nn.Linear(flat, features), nn.ReLU())
        self.out_features = features

    def forward(self, observations: Tensor) -> Tensor:
        return self.linear(self.convs(observations.float() / 255.0))


def make_encoder(space: gym.Space) -> nn.Module:
    """The default encoder of ``space``; its ``out_features`` is the width of the features."""
    if is_image_space(space):
        return NatureCNN(space)
    if isinstance(space, gym.spaces.Box):
        return FlattenEncoder(space)
    if isinstance(space, gym.spaces.Discrete):
        return OneHotEncoder(space)
    raise ConfigurationError(
        f"no default network for observations of {space!r}: supported are Box (vectors, or uint8 images "
        f"shaped (C, H, W)) and Discrete. Pass your own network, or flatten the observations with a wrapper."
    )
