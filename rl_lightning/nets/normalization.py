"""Running mean and variance of a data stream, kept as module buffers so checkpoints carry them."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

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


class KeyedNormalizer(nn.Module):
    """A :class:`RunningMeanStd` for each of some keys of dict (or tuple) observations; other keys pass unchanged.

    What ``normalize_observations`` uses for ``Dict`` and ``Tuple`` observation spaces: float vector keys are
    normalized, images and discrete keys are not. The statistics are buffers (``normalizers.<key>.mean`` ...), so
    checkpoints carry them; under DDP every rank folds in the keys in the same order.

    Args:
        shapes: the shape of one observation of each key to normalize (by index for tuple observations).
    """

    def __init__(self, shapes: dict[str | int, Sequence[int]]) -> None:
        super().__init__()
        self.keys = list(shapes)
        self.normalizers = nn.ModuleDict({str(key): RunningMeanStd(shape) for key, shape in shapes.items()})

    @torch.no_grad()
    def update(self, observations: dict | tuple) -> None:
        """Fold each normalized key's batch ``(n, *shape)`` into its statistics."""
        for key in self.keys:
            self.normalizers[str(key)].update(observations[key])

    def normalize(self, observations: dict | tuple, clip: float) -> dict | tuple:
        """The observations with each normalized key ``(x - mean) / std``, clipped to ``[-clip, clip]``."""
        return self._replace(observations, lambda key, x: self.normalizers[str(key)].normalize(x, clip))

    def normalized_dtypes(self, dtypes: dict | tuple) -> dict | tuple:
        """The dtypes of what :meth:`normalize` gives for observations of ``dtypes``: float32 where normalized."""
        return self._replace(dtypes, lambda key, dtype: torch.float32)

    def _replace(self, observations: dict | tuple, fn: Callable[[str | int, Any], Any]) -> dict | tuple:
        """``observations`` with each normalized key's value ``v`` replaced by ``fn(key, v)``."""
        replaced = dict(observations) if isinstance(observations, dict) else list(observations)
        for key in self.keys:
            replaced[key] = fn(key, observations[key])
        return replaced if isinstance(observations, dict) else tuple(replaced)
