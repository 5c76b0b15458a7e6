"""Buffers of preallocated tensors: replay (uniform, n-step), rollout (GAE)."""

from rl_lightning.buffers.replay import ReplayBatch, ReplayBuffer
from rl_lightning.buffers.rollout import RolloutBatch, RolloutBuffer

__all__ = ["ReplayBatch", "ReplayBuffer", "RolloutBatch", "RolloutBuffer"]
