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
from rl_lightning.callbacks.progress import use_env_step_progress_bar
from rl_lightning.errors import ConfigurationError, RunFault

# The algorithms know nothing of the callbacks above them: the package wires its default progress bar in here.
RLAlgorithm.trainer_adjustments.append(use_env_step_progress_bar)

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
    "RunFault",
    "__version__",
]
