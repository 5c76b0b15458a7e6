"""Environments: vector envs from an id, class or factory; seeding; space checks; saving their state."""

from rl_lightning.envs.factory import (
    EnvSpec,
    Vectorization,
    Wrapper,
    check_env_id,
    env_name,
    env_seeds,
    make_vector_env,
    probe_spaces,
    reset_vector_env,
    seed_vector_env,
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

__all__ = [
    "ACTION_MASK_KEY",
    "ACTION_SPACES",
    "EnvSpec",
    "EnvStateError",
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
    "reset_vector_env",
    "seed_vector_env",
    "torch_dtype",
    "vector_env_state",
]
