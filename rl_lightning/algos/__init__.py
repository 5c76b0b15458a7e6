"""Algorithms, each a LightningModule."""

from rl_lightning.algos.base import RLAlgorithm
from rl_lightning.algos.dqn import DQN
from rl_lightning.algos.off_policy import OffPolicyAlgorithm

__all__ = ["DQN", "OffPolicyAlgorithm", "RLAlgorithm"]
