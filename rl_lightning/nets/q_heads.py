"""How a Q-network's outputs become action values and per-transition TD losses: scalar, C51 or QR-DQN.

DQN picks the next action and the outputs to bootstrap from; the head says what the outputs mean: one value per
action, the logits of a return distribution on a fixed support (Bellemare et al., 2017), or quantiles of it
(Dabney et al., 2018). Each loss is per transition, so that prioritized replay can weight it and use it as the
transition's new priority.
"""

from __future__ import annotations

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


class ScalarQHead(nn.Module):
    """One value per action; the loss of ``Q(s, a)`` against ``r + discount * (1 - term) * Q_target(s', a')``.

    Args:
        loss: ``"huber"`` (smooth L1, the Nature paper's) or ``"mse"``.
    """

    def __init__(self, loss: Literal["huber", "mse"] = "huber") -> None:
        super().__init__()
        check_choice("loss", loss, ("huber", "mse"))
        self.loss = F.smooth_l1_loss if loss == "huber" else F.mse_loss

    def q_values(self, outputs: Tensor) -> Tensor:
        return outputs

    def losses(self, taken: Tensor, next_taken: Tensor, rewards: Tensor, discounts: Tensor, ends: Tensor) -> Tensor:
        """Per-transition losses of the taken actions' outputs against the bootstrapped next outputs."""
        return self.loss(taken, rewards + discounts * (1.0 - ends) * next_taken, reduction="none")


class CategoricalQHead(nn.Module):
    """C51: logits of each action's return distribution on ``n_atoms`` points from ``v_min`` to ``v_max``; the
    loss is the KL divergence from the target distribution projected onto the support (Rainbow's priority)."""

    def __init__(self, n_atoms: int = 51, v_min: float = -10.0, v_max: float = 10.0) -> None:
        super().__init__()
        self.register_buffer("support", categorical_support(n_atoms, v_min, v_max), persistent=False)

    def q_values(self, outputs: Tensor) -> Tensor:
        return categorical_q_values(outputs, self.support)

    def losses(self, taken: Tensor, next_taken: Tensor, rewards: Tensor, discounts: Tensor, ends: Tensor) -> Tensor:
        target = categorical_projection(next_taken.softmax(dim=-1), rewards, discounts, ends, self.support)
        return torch.xlogy(target, target).sum(-1) - (target * taken.log_softmax(dim=-1)).sum(-1)


class QuantileQHead(nn.Module):
    """QR-DQN: quantiles of each action's return distribution; the quantile Huber loss against the target's."""

    def __init__(self, kappa: float = 1.0) -> None:
        super().__init__()
        self.kappa = kappa

    def q_values(self, outputs: Tensor) -> Tensor:
        return quantile_q_values(outputs)

    def losses(self, taken: Tensor, next_taken: Tensor, rewards: Tensor, discounts: Tensor, ends: Tensor) -> Tensor:
        bootstrap = (discounts * (1.0 - ends)).unsqueeze(-1)
        return quantile_huber_loss(taken, rewards.unsqueeze(-1) + bootstrap * next_taken, self.kappa)


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
