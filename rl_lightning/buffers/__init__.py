"""Buffers of preallocated tensors: replay (uniform, n-step), rollout (GAE), and the sum tree of prioritized replay."""

from rl_lightning.buffers.replay import ReplayBatch, ReplayBuffer
from rl_lightning.buffers.rollout import RolloutBatch, RolloutBuffer
from rl_lightning.buffers.sum_tree import SumTree

__all__ = ["ReplayBatch", "ReplayBuffer", "RolloutBatch", "RolloutBuffer", "SumTree"]
