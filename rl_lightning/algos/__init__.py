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
from rl_lightning.callbacks.progress import use_env_step_progress_bar

# The algorithms know nothing of the callbacks above them: the default progress bar is wired in here, which every
# import of an algorithm passes through (the package root imports the algorithms only when they are first named).
RLAlgorithm.trainer_adjustments.append(use_env_step_progress_bar)

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
