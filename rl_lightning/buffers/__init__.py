"""Buffers of preallocated tensors: replay (uniform, n-step, frame-stack), rollout (GAE)."""

from rl_lightning.buffers.frame_stack import FrameStackReplayBuffer
from rl_lightning.buffers.replay import ReplayBatch, ReplayBuffer
from rl_lightning.buffers.rollout import RolloutBatch, RolloutBuffer

__all__ = ["FrameStackReplayBuffer", "ReplayBatch", "ReplayBuffer", "RolloutBatch", "RolloutBuffer"]
