"""Space checks: what each algorithm takes (one table, checked against the algorithms themselves), and messages
that name the problem and only the algorithms that fit."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest

import rl_lightning
from rl_lightning.envs import ACTION_SPACES, algorithms_for, check_action_space, check_observation_space
from rl_lightning.errors import ConfigurationError
from tests.helpers import A2C_SMALL, CONTINUOUS_SMALL, DQN_SMALL, PPO_SMALL
from tests.toy_envs import spaces_env

BOUNDED_BOX = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
UNBOUNDED_BOX = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
HALF_BOUNDED_BOX = gym.spaces.Box(np.array([-1.0, -np.inf], np.float32), np.ones(2, np.float32))
DICT_SPACE = gym.spaces.Dict({"position": BOUNDED_BOX})

ACTION_SPACE_SAMPLES = {
    "discrete": gym.spaces.Discrete(3),
    "multi-discrete": gym.spaces.MultiDiscrete([2, 3]),
    "bounded-box": BOUNDED_BOX,
    "unbounded-box": UNBOUNDED_BOX,
    "half-bounded-box": HALF_BOUNDED_BOX,
    "integer-box": gym.spaces.Box(0, 5, (2,), np.int64),
    "multi-binary": gym.spaces.MultiBinary(3),
    "2d-multi-discrete": gym.spaces.MultiDiscrete([[2, 2], [2, 2]]),
    "tuple": gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(3))),
}
SMALL = {"DQN": DQN_SMALL, "PPO": PPO_SMALL, "A2C": A2C_SMALL, "SAC": CONTINUOUS_SMALL, "TD3": CONTINUOUS_SMALL,
         "DDPG": CONTINUOUS_SMALL}


def test_the_table_lists_every_algorithm() -> None:
    algorithms = [
        name
        for name in rl_lightning.algos.__all__
        if isinstance(getattr(rl_lightning.algos, name), type) and not name.endswith("Algorithm")
    ]
    assert sorted(ACTION_SPACES) == sorted(algorithms)


@pytest.mark.parametrize("space_id", ACTION_SPACE_SAMPLES)
@pytest.mark.parametrize("name", ACTION_SPACES)
def test_each_algorithm_takes_exactly_the_spaces_of_its_row_and_names_only_algorithms_that_do(
    name: str, space_id: str
) -> None:
    space = ACTION_SPACE_SAMPLES[space_id]
    algorithm = getattr(rl_lightning, name)
    takers = algorithms_for(space)
    if name in takers:
        algorithm(spaces_env(space), **SMALL[name])
        return
    with pytest.raises(ConfigurationError, match="action space") as refusal:
        algorithm(spaces_env(space), **SMALL[name])
    message = str(refusal.value)
    named = set(re.findall(r"\b(DQN|PPO|A2C|SAC|TD3|DDPG)\b", message)) - {name}
    assert named == set(takers), message
    if not takers:
        assert "No algorithm here takes it" in message


@pytest.mark.parametrize(
    ("space_id", "takers"),
    [
        ("discrete", ["DQN", "PPO", "A2C"]),
        ("multi-discrete", ["PPO", "A2C"]),
        ("bounded-box", ["PPO", "A2C", "SAC", "TD3", "DDPG"]),
        ("unbounded-box", ["PPO", "A2C"]),
        ("half-bounded-box", ["PPO", "A2C"]),
        ("integer-box", []),
        ("multi-binary", ["PPO", "A2C"]),
        ("tuple", []),
    ],
)
def test_algorithms_for_a_space(space_id: str, takers: list[str]) -> None:
    assert algorithms_for(ACTION_SPACE_SAMPLES[space_id]) == takers


def test_an_unbounded_box_refused_by_a_squashing_algorithm_says_why() -> None:
    with pytest.raises(ConfigurationError, match=r"SAC takes bounded Box .*\(unbounded: .*\)\. Use PPO, A2C, which"):
        check_action_space(HALF_BOUNDED_BOX, "SAC", ACTION_SPACES["SAC"])


def test_a_subclass_is_named_by_its_own_name_and_its_parent_stays_among_the_alternatives() -> None:
    with pytest.raises(ConfigurationError, match=r"MyTD3 takes bounded Box .*Discrete\(3\)\. Use DQN, PPO, A2C, which"):
        check_action_space(gym.spaces.Discrete(3), "MyTD3", ACTION_SPACES["TD3"])


@pytest.mark.parametrize(
    "space",
    [BOUNDED_BOX, UNBOUNDED_BOX, gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(5)],
    ids=["box", "unbounded-box", "image", "discrete"],
)
def test_box_and_discrete_observations_are_accepted(space: gym.Space) -> None:
    check_observation_space(space, "DQN")


def test_dict_and_tuple_observations_of_supported_keys_are_accepted() -> None:
    check_observation_space(DICT_SPACE, "DQN")
    check_observation_space(gym.spaces.Tuple((BOUNDED_BOX, gym.spaces.MultiBinary(2))), "DQN")


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (gym.spaces.Dict({"inner": DICT_SPACE}), r"DQN cannot handle the observation key 'inner' of Dict.*nested Dict"),
        (
            gym.spaces.Dict({"name": gym.spaces.Text(5), "position": BOUNDED_BOX}),
            r"observation key 'name' of Dict.*its space Text.*none of Box, Discrete, MultiDiscrete and MultiBinary",
        ),
        (gym.spaces.Tuple((BOUNDED_BOX, gym.spaces.Tuple((BOUNDED_BOX,)))), r"observation key 1 of Tuple.*nested"),
        (gym.spaces.Graph(BOUNDED_BOX, None), r"observation space Graph.*supported are Box"),
    ],
    ids=["nested-dict", "text-key", "nested-tuple", "graph"],
)
def test_observation_spaces_the_encoders_cannot_take_are_refused_naming_the_key(space, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        check_observation_space(space, "DQN")
