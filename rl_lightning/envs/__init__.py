"""Environments: vector envs from an id, class or factory (numpy and torch-native); Atari and MinAtar; seeding;
space checks; saving their state."""

from rl_lightning.envs.atari import AtariPreset, MinAtarPreset, TrainingSignal, for_evaluation, register_pixel_envs
from rl_lightning.envs.classic_control import Acrobot, CartPole, MountainCar, MountainCarContinuous, Pendulum
from rl_lightning.envs.factory import (
    TORCH_ENVS,
    EnvSpec,
    EnvTraits,
    FrameStack,
    TorchEnvFactory,
    TorchEnvSpec,
    Vectorization,
    Wrapper,
    check_env_id,
    env_name,
    env_seeds,
    make_vector_env,
    probe_env,
    probe_spaces,
    register_torch_env,
    reset_vector_env,
    seed_vector_env,
    torch_env_factory,
)
from rl_lightning.envs.masks import ACTION_MASK_KEY, action_masks_of, env_action_masks, has_action_masks_method
from rl_lightning.envs.partial import CARTPOLE_NO_VELOCITY, CartPoleNoVelocityEnv, register_partial_envs
from rl_lightning.envs.spaces import (
    ACTION_SPACES,
    action_space_kinds,
    algorithms_for,
    check_action_space,
    check_observation_space,
    is_structured,
    observation_shape,
    torch_dtype,
)
from rl_lightning.envs.state import EnvStateError, load_vector_env_state, vector_env_state
from rl_lightning.envs.torch_vector import TorchVectorEnv, steps_tensors

__all__ = [
    "ACTION_MASK_KEY",
    "ACTION_SPACES",
    "CARTPOLE_NO_VELOCITY",
    "TORCH_ENVS",
    "Acrobot",
    "AtariPreset",
    "CartPole",
    "CartPoleNoVelocityEnv",
    "EnvSpec",
    "EnvStateError",
    "EnvTraits",
    "FrameStack",
    "MinAtarPreset",
    "MountainCar",
    "MountainCarContinuous",
    "Pendulum",
    "TorchEnvFactory",
    "TorchEnvSpec",
    "TorchVectorEnv",
    "TrainingSignal",
    "Vectorization",
    "Wrapper",
    "action_masks_of",
    "action_space_kinds",
    "algorithms_for",
    "check_action_space",
    "check_env_id",
    "check_observation_space",
    "env_action_masks",
    "env_name",
    "env_seeds",
    "for_evaluation",
    "has_action_masks_method",
    "is_structured",
    "load_vector_env_state",
    "make_vector_env",
    "observation_shape",
    "probe_env",
    "probe_spaces",
    "register_partial_envs",
    "register_pixel_envs",
    "register_torch_env",
    "reset_vector_env",
    "seed_vector_env",
    "steps_tensors",
    "torch_dtype",
    "torch_env_factory",
    "vector_env_state",
]

register_partial_envs()  # ids that configs name: rl_lightning/CartPoleNoVel-v1
