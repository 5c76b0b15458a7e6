"""Invalid-action masking for discrete actions: logits and Q-values of invalid actions out of reach.

A mask is a bool tensor ``(batch, n)`` (True: the action is valid) over the same columns as the logits or
Q-values: ``n`` actions for ``Discrete(n)``, the concatenated ``sum(nvec)`` choices of a ``MultiDiscrete``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def mask_invalid(scores: Tensor, action_masks: Tensor) -> Tensor:
    """``scores`` (logits or Q-values) with every invalid action's entry at the dtype's lowest finite value.

    The lowest finite value rather than ``-inf``: an invalid action then gets probability 0 under a softmax and is
    never an argmax or a max, while a row with no valid action (or a masked value multiplied by 0, as a
    terminal target's bootstrap is) stays finite instead of becoming NaN.
    """
    return scores.masked_fill(~action_masks, torch.finfo(scores.dtype).min)


def random_valid_actions(action_masks: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One action per row, uniform over the row's valid actions (one ``multinomial`` draw on ``generator``)."""
    return torch.multinomial(action_masks.float(), 1, generator=generator).squeeze(1)


def random_actions(
    n_actions: int, batch: int, device: torch.device, generator: torch.Generator | None, action_masks: Tensor | None
) -> Tensor:
    """Uniform actions of ``Discrete(n_actions)``: over all actions, or over each row's valid ones under masks."""
    if action_masks is not None:
        return random_valid_actions(action_masks, generator)
    return torch.randint(n_actions, (batch,), device=device, generator=generator)
