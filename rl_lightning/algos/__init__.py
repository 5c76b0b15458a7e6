"""Algorithms, each a LightningModule."""

from rl_lightning.algos.a2c import A2C
from rl_lightning.algos.base import RLAlgorithm
from rl_lightning.algos.ddpg import DDPG
from rl_lightning.algos.dqn import DQN
from rl_lightning.algos.off_policy import OffPolicyAlgorithm
from rl_lightning.algos.on_policy import OnPolicyAlgorithm
from rl_lightning.algos.ppo import PPO
from rl_lightning.algos.rainbow import RAINBOW, RAINBOW_ATARI
from rl_lightning.algos.sac import SAC
from rl_lightning.algos.td3 import TD3

__all__ = [
    "A2C",
    "DDPG",
    "DQN",
    "PPO",
    "RAINBOW",
    "RAINBOW_ATARI",
    "SAC",
    "TD3",
    "OffPolicyAlgorithm",
    "OnPolicyAlgorithm",
    "RLAlgorithm",
]
