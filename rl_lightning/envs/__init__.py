"""Environments: vector envs from an id, class or factory; Atari and MinAtar; seeding; space checks; saving state."""

from rl_lightning.envs.atari import AtariPreset, MinAtarPreset, TrainingSignal, for_evaluation, register_pixel_envs
from rl_lightning.envs.factory import (
    EnvSpec,
    EnvTraits,
    FrameStack,
    Vectorization,
    Wrapper,
    check_env_id,
    env_name,
    env_seeds,
    make_vector_env,
    probe_env,
    probe_spaces,
    seed_vector_env,
)
from rl_lightning.envs.spaces import (
    check_bounded_box_actions,
    check_discrete_actions,
    check_observation_space,
    torch_dtype,
)
from rl_lightning.envs.state import EnvStateError, load_vector_env_state, vector_env_state

__all__ = [
    "AtariPreset",
    "EnvSpec",
    "EnvStateError",
    "EnvTraits",
    "FrameStack",
    "MinAtarPreset",
    "TrainingSignal",
    "Vectorization",
    "Wrapper",
    "check_bounded_box_actions",
    "check_discrete_actions",
    "check_env_id",
    "check_observation_space",
    "env_name",
    "env_seeds",
    "for_evaluation",
    "load_vector_env_state",
    "make_vector_env",
    "probe_env",
    "probe_spaces",
    "register_pixel_envs",
    "seed_vector_env",
    "torch_dtype",
    "vector_env_state",
]
