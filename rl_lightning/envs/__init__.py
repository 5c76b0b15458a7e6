"""Environments: vector envs from an id, class or factory; seeding; space checks."""

from rl_lightning.envs.factory import (
    EnvSpec,
    check_env_id,
    env_name,
    env_seeds,
    make_vector_env,
    probe_spaces,
    seed_vector_env,
)
from rl_lightning.envs.spaces import (
    check_bounded_box_actions,
    check_discrete_actions,
    check_observation_space,
)

__all__ = [
    "EnvSpec",
    "check_bounded_box_actions",
    "check_discrete_actions",
    "check_env_id",
    "check_observation_space",
    "env_name",
    "env_seeds",
    "make_vector_env",
    "probe_spaces",
    "seed_vector_env",
]
