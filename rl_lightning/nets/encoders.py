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


NATURE_CNN_MIN_SIDE = 36
"""The smallest side the Nature CNN's three convolutions (8/4, 4/2, 3/1) leave a pixel of."""


def _check_image_layout(space: gym.spaces.Box) -> None:
    channels, height, width = space.shape
    if channels > 4 and height > 4 and width <= 4:
        raise ConfigurationError(
            f"image observations of shape {space.shape} look channels-last (H, W, C); the CNN takes channels-first "
            f"(C, H, W). Move the channel axis first with a wrapper (for Atari, use wrappers: "
            f"[rl_lightning.envs.AtariPreset], which gives (4, 84, 84))."
        )


class NatureCNN(nn.Module):
    """The convolutional torso of Mnih et al. (2015) for ``(C, H, W)`` uint8 frames of sides of at least 36.

    Observations stay uint8 until here and are scaled to [0, 1] on the device, so that a batch crosses to the
    device at a quarter of float32's size.
    """

    def __init__(self, space: gym.spaces.Box, features: int = 512) -> None:
        super().__init__()
        _check_image_layout(space)
        channels, height, width = space.shape
        if min(height, width) < NATURE_CNN_MIN_SIDE:
            raise ConfigurationError(
                f"the Nature CNN needs frames of at least {NATURE_CNN_MIN_SIDE}x{NATURE_CNN_MIN_SIDE} pixels, but the "
                f"observations are {height}x{width}: use SmallImageCNN (the default for small frames), or resize "
                f"the frames (e.g. AtariPreset's screen_size=84)."
            )
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


class SmallImageCNN(nn.Module):
    """The torso of MinAtar's baselines (Young & Tian 2019) for small ``(C, H, W)`` uint8 frames: one 3x3
    convolution of 16 channels, then ``features`` units; pixels are scaled to [0, 1] here."""

    def __init__(self, space: gym.spaces.Box, features: int = 128) -> None:
        super().__init__()
        _check_image_layout(space)
        channels, height, width = space.shape
        if min(height, width) < 3:
            raise ConfigurationError(
                f"image observations of {height}x{width} pixels are too small for a 3x3 convolution: flatten them "
                f"with gymnasium.wrappers.FlattenObservation (pass it in wrappers=)."
            )
        self.convs = nn.Sequential(nn.Conv2d(channels, 16, 3, stride=1), nn.ReLU(), nn.Flatten())
        self.linear = nn.Sequential(nn.Linear(16 * (height - 2) * (width - 2), features), nn.ReLU())
        self.out_features = features

    def forward(self, observations: Tensor) -> Tensor:
        return self.linear(self.convs(observations.float() / 255.0))


def make_encoder(space: gym.Space) -> nn.Module:
    """The default encoder of ``space``; its ``out_features`` is the width of the features."""
    if is_image_space(space):
        _check_image_layout(space)
        if min(space.shape[1:]) >= NATURE_CNN_MIN_SIDE:
            return NatureCNN(space)
        return SmallImageCNN(space)
    if isinstance(space, gym.spaces.Box):
        return FlattenEncoder(space)
    if isinstance(space, gym.spaces.Discrete):
        return OneHotEncoder(space)
    raise ConfigurationError(
        f"no default network for observations of {space!r}: supported are Box (vectors, or uint8 images "
        f"shaped (C, H, W)) and Discrete. Pass your own network, or flatten the observations with a wrapper."
    )
