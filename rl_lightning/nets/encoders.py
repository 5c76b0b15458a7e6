"""Turning observations of any supported space into flat float features.

A ``Dict`` or ``Tuple`` observation space gets a :class:`MultiInputEncoder`: each key its own encoder (the CNN for
images, flattening for vectors, one-hot for discrete keys), their features concatenated.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from rl_lightning.errors import ConfigurationError
from rl_lightning.tree import Observations


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


class MultiOneHotEncoder(nn.Module):
    """One-hot encodes each dimension of a ``MultiDiscrete`` observation and concatenates them."""

    def __init__(self, space: gym.spaces.MultiDiscrete) -> None:
        super().__init__()
        self.nvec = [int(n) for n in space.nvec.flatten()]
        self.register_buffer("start", torch.as_tensor(np.asarray(space.start).flatten()), persistent=False)
        self.out_features = sum(self.nvec)

    def forward(self, observations: Tensor) -> Tensor:
        choices = (observations.flatten(1).long() - self.start).unbind(-1)
        return torch.cat([nn.functional.one_hot(c, n) for c, n in zip(choices, self.nvec, strict=True)], -1).float()


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


def scale_pixels(observations: Tensor) -> Tensor:
    """``observations / 255`` as float32, in [0, 1] for uint8 pixels: one new tensor, divided in place (the same
    values as ``observations.float() / 255``, at half its time on a batch of Atari stacks: one allocation, not two)."""
    return observations.to(torch.float32, copy=True).div_(255.0)


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
        return self.linear(self.convs(scale_pixels(observations)))


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
        return self.linear(self.convs(scale_pixels(observations)))


STRUCTURED_SPACES = (gym.spaces.Dict, gym.spaces.Tuple)
"""Spaces whose observations are a dict or tuple of tensors, one per key."""


class MultiInputEncoder(nn.Module):
    """The encoder of a ``Dict`` or ``Tuple`` observation space: one encoder per key, features concatenated in the
    space's key order.

    Observations come as a dict (or tuple) of tensors, one per key, each of its own dtype: uint8 images reach their
    CNN as uint8. Give ``encoders`` to replace the default encoder of some keys (any module with an
    ``out_features`` attribute, mapping that key's batch to ``(batch, out_features)``).

    Args:
        space: a ``Dict`` or ``Tuple`` space of ``Box``, ``Discrete``, ``MultiDiscrete`` and ``MultiBinary`` keys.
        encoders: encoders of one's own, by key (by index for a ``Tuple`` space); the other keys get the default.
    """

    def __init__(self, space: gym.spaces.Dict | gym.spaces.Tuple, encoders: dict[str | int, nn.Module] | None = None):
        super().__init__()
        subspaces = space.spaces if isinstance(space, gym.spaces.Dict) else dict(enumerate(space.spaces))
        given = dict(encoders or {})
        unknown = set(given) - set(subspaces)
        if unknown:
            raise ConfigurationError(
                f"encoders were given for {sorted(map(str, unknown))}, which are not keys of {space!r}: give encoders "
                f"only for its keys {list(subspaces)}."
            )
        self.keys = list(subspaces)
        self.encoders = nn.ModuleDict()
        for key, subspace in subspaces.items():
            if isinstance(subspace, STRUCTURED_SPACES) and key not in given:
                raise ConfigurationError(
                    f"observation key {key!r} is a nested {type(subspace).__name__} space: the multi-input encoder "
                    f"takes Dict and Tuple observations one level deep. Flatten that key into its parent with an "
                    f"ObservationWrapper (passed in wrappers=), or give that key an encoder of your own."
                )
            try:
                self.encoders[str(key)] = given[key] if key in given else make_encoder(subspace)
            except ConfigurationError as err:
                raise ConfigurationError(f"observation key {key!r}: {err}") from None
        self.out_features = sum(encoder.out_features for encoder in self.encoders.values())

    def forward(self, observations: Observations) -> Tensor:
        return torch.cat([self.encoders[str(key)](observations[key]) for key in self.keys], dim=-1)


def make_encoder(space: gym.Space) -> nn.Module:
    """The default encoder of ``space``; its ``out_features`` is the width of the features."""
    if isinstance(space, STRUCTURED_SPACES):
        return MultiInputEncoder(space)
    if is_image_space(space):
        _check_image_layout(space)
        if min(space.shape[1:]) >= NATURE_CNN_MIN_SIDE:
            return NatureCNN(space)
        return SmallImageCNN(space)
    if isinstance(space, gym.spaces.Box | gym.spaces.MultiBinary):
        return FlattenEncoder(space)
    if isinstance(space, gym.spaces.Discrete):
        return OneHotEncoder(space)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return MultiOneHotEncoder(space)
    raise ConfigurationError(
        f"no default network for observations of {space!r}: supported are Box (vectors, or uint8 images "
        f"shaped (C, H, W)), Discrete, and Dict or Tuple spaces of those and of MultiDiscrete and MultiBinary. Pass "
        f"your own network, or convert the observations with a wrapper."
    )
