"""Episode statistics and per-update means, against values computed by hand."""

import math

import numpy as np
import pytest
import torch

from rl_lightning.algos.metrics import EpisodeStatistics, EpochMeans


def test_episode_statistics_over_several_updates():
    statistics = EpisodeStatistics()
    statistics.update(np.array([1.0, 3.0]), np.array([10, 30]))
    statistics.update(torch.tensor([5.0]), torch.tensor([20]))
    stats = statistics.compute()
    assert stats["episodes"].item() == 3
    assert stats["return_mean"].item() == pytest.approx(3.0)
    assert stats["return_std"].item() == pytest.approx(math.sqrt(8 / 3))  # population std of 1, 3, 5
    assert stats["length_mean"].item() == pytest.approx(20.0)


def test_episode_sums_from_a_torch_collector_give_the_same_statistics():
    # Episodes of returns 1, 3, 5 and lengths 10, 30, 20 as (count, sum, sum of squares, length sum), in float32 as
    # on a device without float64.
    statistics = EpisodeStatistics()
    statistics.update(sums=torch.tensor([3.0, 9.0, 35.0, 60.0]))
    stats = statistics.compute()
    assert stats["episodes"].item() == 3
    assert stats["return_mean"].item() == pytest.approx(3.0)
    assert stats["return_std"].item() == pytest.approx(math.sqrt(8 / 3))
    assert stats["length_mean"].item() == pytest.approx(20.0)


def test_no_episode_gives_nan_not_a_warning_or_zero():
    stats = EpisodeStatistics().compute()
    assert stats["episodes"].item() == 0 and math.isnan(stats["return_mean"].item())


def test_epoch_means_average_each_name_and_forget_on_pop():
    means = EpochMeans()
    means.add(loss=torch.tensor(1.0), q=torch.tensor(4.0, requires_grad=True))
    means.add(loss=torch.tensor(3.0))
    popped = means.pop()
    assert {name: value.item() for name, value in popped.items()} == {"loss": 2.0, "q": 4.0}
    assert not popped["q"].requires_grad  # detached: no graph kept alive until the epoch ends
    assert means.pop() == {}
