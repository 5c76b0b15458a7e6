"""Episode statistics as a torchmetrics ``Metric``, so they are reduced across processes."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from rl_lightning.data.episode_sums import episode_sums


class EpisodeStatistics(Metric):
    """Mean and standard deviation of episode returns, and mean length, over the episodes it saw.

    ``compute`` returns NaNs when no episode finished (on any process), instead of warning.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        for name in ("count", "return_sum", "return_sq_sum", "length_sum"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self,
        returns: np.ndarray | Tensor | None = None,
        lengths: np.ndarray | Tensor | None = None,
        *,
        sums: Tensor | None = None,
    ) -> None:
        """Add episodes: their ``returns`` and ``lengths``, or ``sums`` over them.

        Args:
            returns: the episodes' returns (with ``lengths``).
            lengths: the episodes' lengths.
            sums: instead, their count, return sum, squared-return sum and length sum, as
                :meth:`~rl_lightning.data.Collector.pop_episode_sums` gives them (on any device).
        """
        if sums is None:
            sums = episode_sums(returns, lengths)
        count, return_sum, return_sq_sum, length_sum = sums.to(self.count.device, torch.float64)
        self.count += count
        self.return_sum += return_sum
        self.return_sq_sum += return_sq_sum
        self.length_sum += length_sum

    def compute(self) -> dict[str, Tensor]:
        count = self.count
        mean = self.return_sum / count
        variance = (self.return_sq_sum / count - mean.square()).clamp(min=0.0)
        return {
            "episodes": count,
            "return_mean": mean,
            "return_std": variance.sqrt(),
            "length_mean": self.length_sum / count,
        }


class EpochMeans:
    """Running means of per-update scalars (losses, Q-values), kept on their device until the epoch ends.

    Lightning's ``self.log`` costs about a millisecond per call; adding a detached tensor costs
    microseconds and never synchronises with the device. The scalars of one :meth:`add` are summed as one stacked
    tensor (one op per call, not one per name).
    """

    def __init__(self) -> None:
        self._sums: dict[tuple[str, ...], Tensor] = {}  # by the names of an add(), their sums in that order
        self._counts: dict[tuple[str, ...], int] = {}

    def add(self, **values: Tensor) -> None:
        """Add one value of each name: 0-dim tensors on one device."""
        names = tuple(values)
        stacked = torch.stack([value.detach() for value in values.values()]).float()
        if names in self._sums:
            self._sums[names] += stacked
            self._counts[names] += 1
        else:
            self._sums[names] = stacked
            self._counts[names] = 1

    def _means(self) -> dict[str, Tensor]:
        totals: dict[str, Tensor] = {}
        counts: dict[str, int] = {}
        for names, sums in self._sums.items():  # a name may come from adds of different names
            for name, total in zip(names, sums.unbind(), strict=True):
                totals[name] = totals[name] + total if name in totals else total
                counts[name] = counts.get(name, 0) + self._counts[names]
        return {name: total / counts[name] for name, total in totals.items()}

    def non_finite(self) -> list[str]:
        """The names whose sum since the last :meth:`pop` is NaN or infinite: one of their values was (one sync)."""
        if not self._sums:
            return []
        finite = torch.cat([sums.isfinite() for sums in self._sums.values()]).tolist()
        names = [name for group in self._sums for name in group]
        return list(dict.fromkeys(name for name, ok in zip(names, finite, strict=True) if not ok))

    def pop(self) -> dict[str, Tensor]:
        """The means since the last call, and forget them."""
        means = self._means()
        self._sums.clear()
        self._counts.clear()
        return means
