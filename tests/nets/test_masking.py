"""Invalid-action masking of logits and Q-values, and uniform draws among valid actions."""

from __future__ import annotations

import torch

from rl_lightning.nets import Categorical, MultiCategorical, mask_invalid, random_valid_actions

MASKS = torch.tensor([[True, False, True], [False, False, True]])


def test_masked_actions_get_zero_probability_and_are_never_the_mode() -> None:
    logits = torch.tensor([[0.0, 5.0, 1.0], [3.0, 2.0, -1.0]])
    distribution = Categorical(mask_invalid(logits, MASKS))
    probabilities = distribution.log_pmf.exp()
    torch.testing.assert_close(probabilities[0], torch.tensor([1.0, 0.0, torch.e]) / (1.0 + torch.e))
    assert probabilities[1].tolist() == [0.0, 0.0, 1.0]
    assert distribution.mode().tolist() == [2, 2]
    # Entropy of the valid actions only, finite: a masked action contributes nothing.
    p = 1.0 / (1.0 + torch.e)
    expected = -(p * torch.log(torch.tensor(p)) + (1 - p) * torch.log(torch.tensor(1 - p)))
    torch.testing.assert_close(distribution.entropy(), torch.stack([expected, torch.tensor(0.0)]))


def test_a_row_without_valid_actions_stays_finite() -> None:
    masked = mask_invalid(torch.tensor([[1.0, 2.0]]), torch.tensor([[False, False]]))
    assert torch.isfinite(masked).all()
    assert (masked * 0.0).eq(0.0).all()  # a terminal target's bootstrap multiplies it by 0: no NaN


def test_multi_discrete_masks_cover_each_dimension_in_turn() -> None:
    logits = torch.zeros(1, 5)  # nvec (2, 3)
    masks = torch.tensor([[False, True, True, False, True]])
    distribution = MultiCategorical(mask_invalid(logits, masks), [2, 3])
    assert distribution.mode().tolist() == [[1, 0]]
    samples = torch.stack([distribution.sample(torch.Generator().manual_seed(i)) for i in range(50)])
    assert set(samples[:, 0, 0].tolist()) == {1}
    assert set(samples[:, 0, 1].tolist()) == {0, 2}


def test_random_valid_actions_are_uniform_over_the_valid_ones() -> None:
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([random_valid_actions(MASKS, generator) for _ in range(2000)])
    assert set(draws[:, 1].tolist()) == {2}
    counts = torch.bincount(draws[:, 0], minlength=3)
    assert counts[1] == 0
    assert 900 < counts[0] < 1100 and 900 < counts[2] < 1100
