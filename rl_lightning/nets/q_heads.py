"""How a Q-network's outputs become action values and per-transition TD losses: scalar, C51 or QR-DQN.

DQN picks the next action and the outputs to bootstrap from; the head says what the outputs mean: one value per
action, the logits of a return distribution on a fixed support (Bellemare et al., 2017), or quantiles of it
(Dabney et al., 2018). Each loss is per transition, so that prioritized replay can weight it and use it as the
transition's new priority.
"""

from __future__ import annotations

import abc
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rl_lightning.errors import check_choice
from rl_lightning.nets.distributional import (
    categorical_projection,
    categorical_q_values,
    categorical_support,
    quantile_huber_loss,
    quantile_q_values,
)
from rl_lightning.nets.masking import mask_invalid


class _QHead(nn.Module, abc.ABC):
    """What every head shares: picking the outputs of given actions and of the greedy next action."""

    @abc.abstractmethod
    def q_values(self, outputs: Tensor) -> Tensor:
        """Expected returns ``(batch, n_actions)`` of a Q-network's outputs."""

    @abc.abstractmethod
    def losses(
        self, taken: Tensor, next_taken: Tensor, rewards: Tensor, discounts: Tensor, ends: Tensor, mean: bool = False
    ) -> Tensor:
        """Per-transition TD losses of the taken actions' outputs (their mean when ``mean``)."""

    def losses_and_priorities(
        self, taken: Tensor, next_taken: Tensor, rewards: Tensor, discounts: Tensor, ends: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Per-transition losses, and the transitions' new priorities under prioritized replay (whose magnitudes
        count; no gradient flows): by default the losses themselves."""
        losses = self.losses(taken, next_taken, rewards, discounts, ends)
        return losses, losses.detach()

    @staticmethod
    def select(outputs: Tensor, actions: Tensor) -> Tensor:
        """The outputs ``(batch, n_actions, ...)`` of the given ``(batch,)`` actions: ``(batch, ...)``."""
        index = actions.long().unsqueeze(1)
        if outputs.dim() > 2:
            index = index.view(-1, 1, *([1] * (outputs.dim() - 2))).expand(-1, 1, *outputs.shape[2:])
        return outputs.gather(1, index).squeeze(1)

    def greedy(self, outputs: Tensor, chooser: Tensor, action_masks: Tensor | None = None) -> Tensor:
        """The ``outputs`` of the action with the largest expected value under ``chooser`` (double Q: the online
        network's outputs; otherwise ``outputs`` themselves), among the valid actions where masks are given."""
        values = self.q_values(chooser)
        if action_masks is not None:
            values = mask_invalid(values, action_masks)
        return self.select(outputs, values.argmax(dim=1))


class ScalarQHead(_QHead):
    """One value per action; the loss of ``Q(s, a)`` against ``r + discount * (1 - term) * Q_target(s', a')``.

    The priority is the TD error's magnitude ``|target - Q(s, a)|`` (Schaul et al., 2016), not the loss: the Huber
    loss squares small errors, which would make the draws depend on the error scale's distance from 1.

    Args:
        loss: ``"huber"`` (smooth L1, the Nature paper's) or ``"mse"``.
    """

    def __init__(self, loss: Literal["huber", "mse"] = "huber") -> None:
        super().__init__()
        check_choice("loss", loss, ("huber", "mse"))
        self.loss = F.smooth_l1_loss if loss == "huber" else F.mse_loss

    def q_values(self, outputs: Tensor) -> Tensor:
        return outputs

    def greedy(self, outputs: Tensor, chooser: Tensor, action_masks: Tensor | None = None) -> Tensor:
        if chooser is outputs and action_masks is None:
            return outputs.max(dim=1).values
        return super().greedy(outputs, chooser, action_masks)

    def losses(
        self, taken: Tensor, next_taken: Tensor, rewards: Tensor, discounts: Tensor, ends: Tensor, mean: bool = False
    ) -> Tensor:
        """Per-transition losses of the taken actions' outputs against the bootstrapped next outputs (or their
        mean, in one fused kernel, when ``mean``)."""
        return self.loss(taken, rewards + discounts * (1.0 - ends) * next_taken, reduction="mean" if mean else "none")

    def losses_and_priorities(
        self, taken: Tensor, next_taken: Tensor, rewards: Tensor, discounts: Tensor, ends: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The per-transition losses, and the TD errors ``Q(s, a) - target`` (their sign is dropped as priorities)."""
        target = rewards + discounts * (1.0 - ends) * next_taken
        return self.loss(taken, target, reduction="none"), taken.detach() - target


class CategoricalQHead(_QHead):
    """C51: logits of each action's return distribution on ``n_atoms`` points from ``v_min`` to ``v_max``; the
    loss is the KL divergence from the target distribution projected onto the support (Rainbow's priority)."""

    def __init__(self, n_atoms: int = 51, v_min: float = -10.0, v_max: float = 10.0) -> None:
        super().__init__()
        self.register_buffer("support", categorical_support(n_atoms, v_min, v_max), persistent=False)

    def q_values(self, outputs: Tensor) -> Tensor:
        return categorical_q_values(outputs, self.support)

    def losses(
        self, taken: Tensor, next_taken: Tensor, rewards: Tensor, discounts: Tensor, ends: Tensor, mean: bool = False
    ) -> Tensor:
        target = categorical_projection(next_taken.softmax(dim=-1), rewards, discounts, ends, self.support)
        losses = torch.xlogy(target, target).sum(-1) - (target * taken.log_softmax(dim=-1)).sum(-1)
        return losses.mean() if mean else losses


class QuantileQHead(_QHead):
    """QR-DQN: quantiles of each action's return distribution; the quantile Huber loss against the target's.

    The priority is that loss too, as C51's is its cross-entropy in Rainbow: it measures how far the whole predicted
    distribution is from the target's (the quantile regression loss), so a transition whose returns are spread
    wrongly keeps being drawn even where the mean is right; the mean's TD error alone would miss that.
    """

    def __init__(self, kappa: float = 1.0) -> None:
        super().__init__()
        self.kappa = kappa

    def q_values(self, outputs: Tensor) -> Tensor:
        return quantile_q_values(outputs)

    def losses(
        self, taken: Tensor, next_taken: Tensor, rewards: Tensor, discounts: Tensor, ends: Tensor, mean: bool = False
    ) -> Tensor:
        bootstrap = (discounts * (1.0 - ends)).unsqueeze(-1)
        losses = quantile_huber_loss(taken, rewards.unsqueeze(-1) + bootstrap * next_taken, self.kappa)
        return losses.mean() if mean else losses


def q_head(
    distributional: Literal["categorical", "quantile"] | None,
    loss: Literal["huber", "mse"] = "huber",
    n_atoms: int = 51,
    v_min: float = -10.0,
    v_max: float = 10.0,
) -> nn.Module:
    """The head for ``distributional``: None (scalar values, ``loss``), ``"categorical"`` or ``"quantile"``."""
    check_choice("distributional", distributional, (None, "categorical", "quantile"))
    if distributional == "categorical":
        return CategoricalQHead(n_atoms, v_min, v_max)
    return QuantileQHead() if distributional == "quantile" else ScalarQHead(loss)
