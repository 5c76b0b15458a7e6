"""Buffers of preallocated tensors: replay (uniform, n-step, prioritized), rollout (GAE)."""

from rl_lightning.buffers.prioritized import PrioritizedReplayBuffer
from rl_lightning.buffers.replay import ReplayBatch, ReplayBuffer
from rl_lightning.buffers.rollout import RolloutBatch, RolloutBuffer
from rl_lightning.buffers.sum_tree import SumTree

__all__ = ["PrioritizedReplayBuffer", "ReplayBatch", "ReplayBuffer", "RolloutBatch", "RolloutBuffer", "SumTree"]
