"""rl-lightning: reinforcement learning algorithms as plain PyTorch Lightning modules."""

from rl_lightning.algos import (
    A2C,
    DDPG,
    DQN,
    PPO,
    RAINBOW,
    RAINBOW_ATARI,
    SAC,
    TD3,
    OffPolicyAlgorithm,
    OnPolicyAlgorithm,
    RLAlgorithm,
)
from rl_lightning.errors import ConfigurationError

__version__ = "0.1.0"

__all__ = [
    "A2C",
    "DDPG",
    "DQN",
    "PPO",
    "RAINBOW",
    "RAINBOW_ATARI",
    "SAC",
    "TD3",
    "ConfigurationError",
    "OffPolicyAlgorithm",
    "OnPolicyAlgorithm",
    "RLAlgorithm",
    "__version__",
]
