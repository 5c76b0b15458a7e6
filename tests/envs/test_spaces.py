"""Space checks: what each algorithm family accepts, and messages that name the problem and the fix."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rl_lightning.envs import check_bounded_box_actions, check_discrete_actions, check_observation_space
from rl_lightning.errors import ConfigurationError

BOUNDED_BOX = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
UNBOUNDED_BOX = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
HALF_BOUNDED_BOX = gym.spaces.Box(np.array([-1.0, -np.inf], np.float32), np.ones(2, np.float32))
DICT_SPACE = gym.spaces.Dict({"position": BOUNDED_BOX})


def test_discrete_actions_pass_the_discrete_check() -> None:
    check_discrete_actions(gym.spaces.Discrete(3), "DQN")


@pytest.mark.parametrize("space", [BOUNDED_BOX, gym.spaces.MultiDiscrete([2, 2])], ids=["box", "multi-discrete"])
def test_non_discrete_actions_are_refused_with_the_suggested_algorithms(space: gym.Space) -> None:
    with pytest.raises(ConfigurationError, match=r"DQN needs a Discrete action space.*\(SAC, TD3 or PPO\)"):
        check_discrete_actions(space, "DQN", suggestion="SAC, TD3 or PPO")


def test_bounded_box_actions_pass_the_bounded_box_check() -> None:
    check_bounded_box_actions(BOUNDED_BOX, "SAC")


@pytest.mark.parametrize("space", [UNBOUNDED_BOX, HALF_BOUNDED_BOX], ids=["unbounded", "half-bounded"])
def test_unbounded_box_actions_are_refused(space: gym.Space) -> None:
    with pytest.raises(ConfigurationError, match=r"SAC squashes actions into the Box bounds, but .* is unbounded"):
        check_bounded_box_actions(space, "SAC")


def test_discrete_actions_are_refused_by_the_bounded_box_check() -> None:
    with pytest.raises(ConfigurationError, match=r"TD3 needs a continuous \(Box\) action space"):
        check_bounded_box_actions(gym.spaces.Discrete(2), "TD3")


@pytest.mark.parametrize(
    "space",
    [BOUNDED_BOX, UNBOUNDED_BOX, gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(5)],
    ids=["box", "unbounded-box", "image", "discrete"],
)
def test_box_and_discrete_observations_are_accepted(space: gym.Space) -> None:
    check_observation_space(space, "DQN")


def test_dict_observations_are_refused_with_the_flatten_wrapper_as_fix() -> None:
    with pytest.raises(ConfigurationError, match=r"DQN cannot handle the observation space Dict.*FlattenObservation"):
        check_observation_space(DICT_SPACE, "DQN")
