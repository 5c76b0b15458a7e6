"""rl-lightning: reinforcement learning algorithms as plain PyTorch Lightning modules."""

from rl_lightning.algos import DQN, OffPolicyAlgorithm, RLAlgorithm
from rl_lightning.errors import ConfigurationError

__version__ = "0.1.0"

__all__ = ["DQN", "ConfigurationError", "OffPolicyAlgorithm", "RLAlgorithm", "__version__"]
