"""Running mean and variance of a data stream, kept as module buffers so checkpoints carry them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class RunningMeanStd(nn.Module):
    """Mean and variance of everything passed to :meth:`update`, combined batch by batch (Chan et al., 1979).

    The statistics are buffers: they are saved with the module's ``state_dict`` (so in checkpoints) and
    follow it across devices. They change only in :meth:`update`; normalizing never updates them, which
    is how evaluation keeps them frozen. The start (mean 0, variance 1, a count of ``epsilon``) and the
    ``1e-8`` under the square root are Stable-Baselines3's ``VecNormalize``'s.

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
        batch_count = batch.shape[0]
        batch_var, batch_mean = torch.var_mean(batch, dim=0, correction=0)
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.var.mul_(self.count).add_(batch_var * batch_count + delta.square() * (self.count * batch_count / total))
        self.var.div_(total)
        self.mean.add_(delta * (batch_count / total))
        self.count.copy_(total)

    def normalize(self, x: Tensor, clip: float) -> Tensor:
        """``(x - mean) / std``, clipped to ``[-clip, clip]``."""
        return ((x.float() - self.mean) * torch.rsqrt(self.var + 1e-8)).clamp(-clip, clip)

    def scale(self, x: Tensor, clip: float) -> Tensor:
        """``x / std`` (no centring, as for rewards), clipped to ``[-clip, clip]``."""
        return (x.float() * torch.rsqrt(self.var + 1e-8)).clamp(-clip, clip)
