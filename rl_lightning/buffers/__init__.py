"""Buffers of preallocated tensors: replay (uniform, n-step, prioritized, frame-stack), rollout (GAE)."""

from rl_lightning.buffers.frame_stack import FrameStackReplayBuffer
from rl_lightning.buffers.prioritized import PrioritizedFrameStackReplayBuffer, PrioritizedReplayBuffer
from rl_lightning.buffers.replay import ReplayBatch, ReplayBuffer
from rl_lightning.buffers.rollout import RolloutBatch, RolloutBuffer, Sequences
from rl_lightning.buffers.sum_tree import SumTree

__all__ = [
    "FrameStackReplayBuffer",
    "PrioritizedFrameStackReplayBuffer",
    "PrioritizedReplayBuffer",
    "ReplayBatch",
    "ReplayBuffer",
    "RolloutBatch",
    "RolloutBuffer",
    "Sequences",
    "SumTree",
]
