"""Episode bookkeeping as tensor ops on the envs' device: what the collector keeps for a torch-native vector env.

Kept apart from the collector so that its per-step path stays a handful of tensor ops with no host sync: a running
return and length per env, and the finished episodes as four sums (count, return sum, squared-return sum, length
sum), which :class:`~rl_lightning.algos.metrics.EpisodeStatistics` takes at the epoch's end.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

SUM_NAMES = ("count", "return_sum", "return_sq_sum", "length_sum")
"""What :func:`episode_sums` and :meth:`DeviceEpisodes.pop_sums` hold, in this order."""


def accumulator_dtype(device: torch.device) -> torch.dtype:
    """float64 for returns and sums where the device has it (MPS has not: float32 there)."""
    return torch.float32 if device.type == "mps" else torch.float64


def episode_sums(returns: np.ndarray | Tensor, lengths: np.ndarray | Tensor) -> Tensor:
    """The four sums of :data:`SUM_NAMES` over the episodes with ``returns`` and ``lengths``, in float64 on the CPU.

    Args:
        returns: the episodes' returns.
        lengths: the episodes' lengths.
    """
    returns = torch.as_tensor(returns, dtype=torch.float64)
    lengths = torch.as_tensor(lengths, dtype=torch.float64)
    count = torch.tensor(float(returns.numel()), dtype=torch.float64)
    return torch.stack([count, returns.sum(), returns.square().sum(), lengths.sum()])


class DeviceEpisodes:
    """Running returns and lengths of ``num_envs`` envs, and sums over their finished episodes, on ``device``.

    After each :meth:`record`, ``ended``, ``ended_returns`` and ``ended_lengths`` describe that step: which envs
    ended an episode, and the return and length each env's episode had reached (read where ``ended``). Evaluation
    uses them to keep single episodes.

    Args:
        num_envs: envs stepped together.
        device: where the env's tensors live.
    """

    def __init__(self, num_envs: int, device: torch.device) -> None:
        self.num_envs, self.device = num_envs, device
        self.dtype = accumulator_dtype(device)
        self.returns = torch.zeros(num_envs, dtype=self.dtype, device=device)
        self.lengths = torch.zeros(num_envs, dtype=torch.int64, device=device)
        self.sums = torch.zeros(len(SUM_NAMES), dtype=self.dtype, device=device)
        self.ended = torch.zeros(num_envs, dtype=torch.bool, device=device)
        self.ended_returns, self.ended_lengths = self.returns, self.lengths

    def reset(self) -> None:
        """Forget the unfinished episodes and the finished ones' sums."""
        self.returns = torch.zeros_like(self.returns)
        self.lengths = torch.zeros_like(self.lengths)
        self.sums = torch.zeros_like(self.sums)
        self.ended = torch.zeros_like(self.ended)
        self.ended_returns, self.ended_lengths = self.returns, self.lengths

    def record(self, rewards: Tensor, done: Tensor, valid: Tensor | None) -> None:
        """Add one step of every env: ``rewards`` where ``valid`` (None: everywhere), then close the ``done`` episodes.

        Args:
            rewards: ``(num_envs,)`` rewards of the step.
            done: ``(num_envs,)`` bool, terminated or truncated at this step.
            valid: ``(num_envs,)`` bool, False at a NEXT_STEP autoreset step (no transition); None in SAME_STEP mode.
        """
        rewards = rewards.to(self.dtype)
        if valid is None:
            returns, lengths = self.returns + rewards, self.lengths + 1
        else:
            returns, lengths = self.returns + rewards * valid, self.lengths + valid
        ended = done.to(self.dtype)
        # One matrix-vector product for the four sums: fewer kernels than four masked sums.
        parts = torch.stack([torch.ones_like(returns), returns, returns.square(), lengths.to(self.dtype)])
        self.sums += parts @ ended
        self.ended, self.ended_returns, self.ended_lengths = done, returns, lengths
        # New tensors rather than zeroing in place: ended_returns and ended_lengths keep this step's values.
        self.returns = torch.where(done, 0.0, returns)
        self.lengths = torch.where(done, 0, lengths)

    def pop_sums(self) -> Tensor:
        """The finished episodes' sums (:data:`SUM_NAMES`, on ``device``) since the last call, and forget them."""
        sums, self.sums = self.sums, torch.zeros_like(self.sums)
        return sums

    def state_dict(self) -> dict[str, Any]:
        """The running returns and lengths and the sums, on the CPU."""
        return {"returns": self.returns.cpu(), "lengths": self.lengths.cpu(), "sums": self.sums.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go on from ``state``, saved by :meth:`state_dict`."""
        self.returns = state["returns"].to(self.device, self.dtype)
        self.lengths = state["lengths"].to(self.device, torch.int64)
        self.sums = state["sums"].to(self.device, self.dtype)
