"""Environments: vector envs from an id, class or factory (numpy and torch-native); seeding; space checks; saving
their state."""

from rl_lightning.envs.classic_control import Acrobot, CartPole, MountainCar, MountainCarContinuous, Pendulum
from rl_lightning.envs.factory import (
    TORCH_ENVS,
    EnvSpec,
    TorchEnvFactory,
    TorchEnvSpec,
    Vectorization,
    Wrapper,
    check_env_id,
    env_name,
    env_seeds,
    make_vector_env,
    probe_spaces,
    register_torch_env,
    reset_vector_env,
    seed_vector_env,
    torch_env_factory,
)
from rl_lightning.envs.masks import ACTION_MASK_KEY, action_masks_of
from rl_lightning.envs.spaces import (
    ACTION_SPACES,
    action_space_kinds,
    algorithms_for,
    check_action_space,
    check_observation_space,
    torch_dtype,
)
from rl_lightning.envs.state import EnvStateError, load_vector_env_state, vector_env_state
from rl_lightning.envs.torch_vector import TorchVectorEnv, steps_tensors

__all__ = [
    "ACTION_MASK_KEY",
    "ACTION_SPACES",
    "TORCH_ENVS",
    "Acrobot",
    "CartPole",
    "EnvSpec",
    "EnvStateError",
    "MountainCar",
    "MountainCarContinuous",
    "Pendulum",
    "TorchEnvFactory",
    "TorchEnvSpec",
    "TorchVectorEnv",
    "Vectorization",
    "Wrapper",
    "action_masks_of",
    "action_space_kinds",
    "algorithms_for",
    "check_action_space",
    "check_env_id",
    "check_observation_space",
    "env_name",
    "env_seeds",
    "load_vector_env_state",
    "make_vector_env",
    "probe_spaces",
    "register_torch_env",
    "reset_vector_env",
    "seed_vector_env",
    "steps_tensors",
    "torch_dtype",
    "torch_env_factory",
    "vector_env_state",
]
