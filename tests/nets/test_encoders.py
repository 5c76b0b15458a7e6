"""Encoders: which one each observation space gets, and what each computes on known inputs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rl_lightning.errors import ConfigurationError
from rl_lightning.nets import (
    FlattenEncoder,
    MultiInputEncoder,
    MultiOneHotEncoder,
    NatureCNN,
    OneHotEncoder,
    SmallImageCNN,
    is_image_space,
    make_encoder,
)
from rl_lightning.nets.encoders import scale_pixels

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


def test_pixels_are_scaled_as_a_division_by_255_leaving_the_input_alone() -> None:
    pixels = torch.arange(256, dtype=torch.uint8).repeat(3, 1)
    scaled = scale_pixels(pixels)
    assert scaled.dtype == torch.float32 and scaled[0, 51].item() == pytest.approx(0.2)  # 51 / 255
    assert torch.equal(scaled, pixels.float() / 255.0)  # the same bits as the out-of-place division
    floats = torch.full((2, 3), 255.0)
    assert torch.equal(scale_pixels(floats), torch.ones(2, 3)) and torch.equal(floats, torch.full((2, 3), 255.0))


def test_make_encoder_picks_the_encoder_of_the_space() -> None:
    assert isinstance(make_encoder(IMAGE_SPACE), NatureCNN)
    assert isinstance(make_encoder(gym.spaces.Box(-1.0, 1.0, (3,), np.float32)), FlattenEncoder)
    assert isinstance(make_encoder(gym.spaces.Discrete(4)), OneHotEncoder)


def test_make_encoder_refuses_other_spaces() -> None:
    with pytest.raises(ConfigurationError, match="no default network for observations of Text"):
        make_encoder(gym.spaces.Text(4))


# ---------------------------------------------------------------------------------------------- multi-input
SMALL_IMAGE = gym.spaces.Box(0, 255, (1, 4, 4), np.uint8)
DICT = gym.spaces.Dict(
    {"flag": gym.spaces.Box(-1.0, 1.0, (2,), np.float32), "image": SMALL_IMAGE, "target": gym.spaces.Discrete(3)}
)


class DtypeSpy(torch.nn.Module):
    """An encoder of one feature, the mean of its input, that remembers the dtype it was given."""

    out_features = 1

    def __init__(self) -> None:
        super().__init__()
        self.seen: torch.dtype | None = None

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        self.seen = observations.dtype
        return observations.float().flatten(1).mean(dim=1, keepdim=True)


def test_dict_observations_get_an_encoder_per_key_concatenated_in_key_order() -> None:
    encoder = make_encoder(DICT)
    assert isinstance(encoder, MultiInputEncoder)
    assert isinstance(encoder.encoders["image"], SmallImageCNN)
    assert isinstance(encoder.encoders["flag"], FlattenEncoder)
    assert isinstance(encoder.encoders["target"], OneHotEncoder)
    assert encoder.out_features == 2 + 128 + 3
    image = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8)
    observations = {"flag": torch.tensor([[0.5, -1.0], [1.0, 0.0]]), "image": image, "target": torch.tensor([2, 0])}
    features = encoder(observations)
    assert features[:, :2].tolist() == [[0.5, -1.0], [1.0, 0.0]]  # flag first: the space sorts its keys
    assert torch.equal(features[:, 2:130], encoder.encoders["image"](image))
    assert features[:, 130:].tolist() == [[0, 0, 1], [1, 0, 0]]


def test_image_keys_reach_their_encoder_as_uint8_and_own_encoders_replace_the_default() -> None:
    spy = DtypeSpy()
    encoder = MultiInputEncoder(DICT, encoders={"image": spy})
    assert encoder.encoders["image"] is spy and encoder.out_features == 2 + 1 + 3
    image = torch.full((1, 1, 4, 4), 255, dtype=torch.uint8)
    features = encoder({"flag": torch.zeros(1, 2), "image": image, "target": torch.tensor([1])})
    assert spy.seen == torch.uint8 and features[0, 2].item() == 255.0


def test_tuple_and_multi_discrete_and_multi_binary_keys() -> None:
    space = gym.spaces.Tuple((gym.spaces.MultiDiscrete([2, 3], start=[1, 0]), gym.spaces.MultiBinary(2)))
    encoder = make_encoder(space)
    assert isinstance(encoder.encoders["0"], MultiOneHotEncoder) and encoder.out_features == 5 + 2
    features = encoder((torch.tensor([[2, 0], [1, 2]]), torch.tensor([[1, 0], [0, 1]], dtype=torch.int8)))
    assert features.tolist() == [[0, 1, 1, 0, 0, 1, 0], [1, 0, 0, 0, 1, 0, 1]]


@pytest.mark.parametrize(
    ("space", "encoders", "message"),
    [
        (gym.spaces.Dict({"inner": DICT}), None, r"observation key 'inner' is a nested Dict space"),
        (
            gym.spaces.Dict({"camera": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)}),
            None,
            r"observation key 'camera': image observations of shape \(8, 8, 3\) look channels-last",
        ),
        (gym.spaces.Dict({"name": gym.spaces.Text(4)}), None, r"observation key 'name': no default network .*Text"),
        (DICT, {"images": DtypeSpy()}, r"encoders were given for \['images'\], which are not keys of Dict"),
    ],
    ids=["nested", "channels-last-image", "text", "unknown-key"],
)
def test_keys_the_encoder_cannot_take_are_named(space, encoders, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MultiInputEncoder(space, encoders)
