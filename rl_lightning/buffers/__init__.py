"""Buffers of preallocated tensors: replay (uniform, n-step)."""

from rl_lightning.buffers.replay import ReplayBatch, ReplayBuffer

__all__ = ["ReplayBatch", "ReplayBuffer"]
