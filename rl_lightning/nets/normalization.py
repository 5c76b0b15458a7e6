"""Running mean and variance of a data stream, kept as module buffers so checkpoints carry them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rl_lightning.distributed import sum_over_ranks, world_size


class RunningMeanStd(nn.Module):
    """Mean and variance of everything passed to :meth:`update`, combined batch by batch (Chan et al., 1979).

    The statistics are buffers: they are saved with the module's ``state_dict`` (so in checkpoints) and
    follow it across devices. They change only in :meth:`update`; normalizing never updates them, which
    is how evaluation keeps them frozen. The start (mean 0, variance 1, a count of ``epsilon``) and the
    ``1e-8`` under the square root are Stable-Baselines3's ``VecNormalize``'s. Under DDP each update folds in
    the batches of every rank together (a collective: every rank updates, in the same order), so that the
    statistics are those of all the processes' data, and the same on every rank.

    Args:
        shape: shape of one sample (``()`` for scalars such as returns).
        epsilon: initial count, which keeps the first update's weights finite.
    """

    def __init__(self, shape: Sequence[int] = (), epsilon: float = 1e-4) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(tuple(shape)))
        self.register_buffer("var", torch.ones(tuple(shape)))
        self.register_buffer("count", torch.tensor(float(epsilon)))

    @torch.no_grad()
    def update(self, batch: Tensor) -> None:
        """Fold a batch ``(n, *shape)`` into the statistics."""
        batch = batch.float()
        # An empty batch (the returns of a step where every env was at its autoreset step) changes nothing.
        if world_size() > 1:
            batch_count, batch_mean, batch_var = self._moments_over_ranks(batch)  # even of an empty batch
            if batch_count == 0:
                return
        else:
            batch_count = batch.shape[0]
            if batch_count == 0:
                return
            batch_var, batch_mean = torch.var_mean(batch, dim=0, correction=0)
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.var.mul_(self.count).add_(batch_var * batch_count + delta.square() * (self.count * batch_count / total))
        self.var.div_(total)
        self.mean.add_(delta * (batch_count / total))
        self.count.copy_(total)

    @staticmethod
    def _moments_over_ranks(batch: Tensor) -> tuple[float, Tensor, Tensor]:
        """Count, mean and variance of every rank's ``batch`` together: one all-reduce of count, sum, sum of squares."""
        shape = batch.shape[1:]
        data = batch.double().reshape(batch.shape[0], math.prod(shape))
        count = torch.full((1,), float(batch.shape[0]), dtype=torch.float64, device=batch.device)
        moments = sum_over_ranks(torch.cat([count, data.sum(dim=0), data.square().sum(dim=0)]))
        total = moments[0]
        mean = moments[1 : 1 + data.shape[1]] / total
        var = (moments[1 + data.shape[1] :] / total - mean.square()).clamp(min=0.0)
        return float(total), mean.float().reshape(shape), var.float().reshape(shape)

    def normalize(self, x: Tensor, clip: float) -> Tensor:
        """``(x - mean) / std``, clipped to ``[-clip, clip]``."""
        return ((x.float() - self.mean) * torch.rsqrt(self.var + 1e-8)).clamp(-clip, clip)

    def scale(self, x: Tensor, clip: float) -> Tensor:
        """``x / std`` (no centring, as for rewards), clipped to ``[-clip, clip]``."""
        return (x.float() * torch.rsqrt(self.var + 1e-8)).clamp(-clip, clip)
