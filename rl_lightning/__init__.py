"""rl-lightning: reinforcement learning algorithms as plain PyTorch Lightning modules."""

from rl_lightning.algos import (
    A2C,
    DDPG,
    DQN,
    PPO,
    SAC,
    TD3,
    OffPolicyAlgorithm,
    OnPolicyAlgorithm,
    RLAlgorithm,
)
from rl_lightning.errors import ConfigurationError, RunFault

__version__ = "0.1.0"

__all__ = [
    "A2C",
    "DDPG",
    "DQN",
    "PPO",
    "SAC",
    "TD3",
    "ConfigurationError",
    "OffPolicyAlgorithm",
    "OnPolicyAlgorithm",
    "RLAlgorithm",
    "RunFault",
    "__version__",
]
