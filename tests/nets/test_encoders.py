"""Encoders: which one each observation space gets, and what each computes on known inputs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rl_lightning.errors import ConfigurationError
from rl_lightning.nets import FlattenEncoder, NatureCNN, OneHotEncoder, is_image_space, make_encoder

IMAGE_SPACE = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)


@pytest.mark.parametrize(
    ("space", "is_image"),
    [
        (IMAGE_SPACE, True),
        (gym.spaces.Box(0.0, 1.0, (4, 84, 84), np.float32), False),  # float pixels are not scaled from uint8
        (gym.spaces.Box(0, 255, (84, 84), np.uint8), False),  # no channel axis
        (gym.spaces.Discrete(3), False),
    ],
    ids=["uint8-chw", "float-chw", "uint8-hw", "discrete"],
)
def test_images_are_uint8_boxes_of_rank_three(space: gym.Space, is_image: bool) -> None:
    assert is_image_space(space) is is_image


def test_flatten_encoder_flattens_each_observation_to_float() -> None:
    encoder = FlattenEncoder(gym.spaces.Box(0, 10, (2, 3), np.int64))
    observations = torch.arange(12).reshape(2, 2, 3)
    assert encoder.out_features == 6  # 2 * 3
    features = encoder(observations)
    assert features.dtype == torch.float32
    assert features.tolist() == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]


def test_one_hot_encoder_counts_from_the_space_start() -> None:
    encoder = OneHotEncoder(gym.spaces.Discrete(3, start=1))
    # Values 1, 2, 3 are indices 0, 1, 2.
    assert encoder(torch.tensor([1, 3, 2])).tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]


def test_nature_cnn_scales_uint8_pixels_to_unit_range() -> None:
    encoder = NatureCNN(IMAGE_SPACE, features=16)
    white = torch.full((1, 4, 84, 84), 255, dtype=torch.uint8)
    # The torso sees 255 / 255 = 1.0 for white pixels.
    assert torch.allclose(encoder(white), encoder.linear(encoder.convs(torch.ones(1, 4, 84, 84))))
    assert encoder(white).shape == (1, encoder.out_features) == (1, 16)


def test_make_encoder_picks_the_encoder_of_the_space() -> None:
    assert isinstance(make_encoder(IMAGE_SPACE), NatureCNN)
    assert isinstance(make_encoder(gym.spaces.Box(-1.0, 1.0, (3,), np.float32)), FlattenEncoder)
    assert isinstance(make_encoder(gym.spaces.Discrete(4)), OneHotEncoder)


def test_make_encoder_refuses_other_spaces() -> None:
    with pytest.raises(ConfigurationError, match="no default network for observations of Dict"):
        make_encoder(gym.spaces.Dict({"a": gym.spaces.Discrete(2)}))
