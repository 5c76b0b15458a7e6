"""Data pipeline: the collector stepping the envs, and the datasets feeding the Trainer."""

from rl_lightning.data.collector import (
    Collector,
    Episodes,
    Policy,
    PolicyState,
    Transition,
    evaluate_policy,
    refuse_faults,
)
from rl_lightning.data.replay_dataset import Learner, ReplayDataset
from rl_lightning.data.rollout_dataset import OnPolicyLearner, RolloutDataset, RolloutStep

__all__ = [
    "Collector",
    "Episodes",
    "Learner",
    "OnPolicyLearner",
    "Policy",
    "PolicyState",
    "ReplayDataset",
    "RolloutDataset",
    "RolloutStep",
    "Transition",
    "evaluate_policy",
    "refuse_faults",
]
