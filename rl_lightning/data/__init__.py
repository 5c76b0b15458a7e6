"""Data pipeline: the collector stepping the envs, and the datasets feeding the Trainer."""

from rl_lightning.data.collector import Collector, Episodes, Transition, evaluate_policy
from rl_lightning.data.replay_dataset import Learner, ReplayDataset

__all__ = ["Collector", "Episodes", "Learner", "ReplayDataset", "Transition", "evaluate_policy"]
