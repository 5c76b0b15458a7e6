"""Target networks: moving a copy of a network slowly toward it."""

from __future__ import annotations

import copy

import torch
from torch import nn


def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``target <- target + tau * (online - target)`` for every parameter; ``tau=1`` copies.

    Buffers (batch-norm statistics) are copied, as Stable-Baselines3 does: they are statistics of the data,
    not weights to average, and some are integers. Each list is updated by one foreach kernel rather than
    a Python loop over tensors, which matters when this runs after every gradient step.
    """
    with torch.no_grad():
        target_params, online_params = list(target.parameters()), list(online.parameters())
        if tau >= 1.0:
            torch._foreach_copy_(target_params, online_params)
        else:
            torch._foreach_lerp_(target_params, online_params, tau)
        target_buffers = list(target.buffers())
        if target_buffers:
            torch._foreach_copy_(target_buffers, list(online.buffers()))


def target_network(online: nn.Module) -> nn.Module:
    """A frozen copy of ``online`` to compute targets with (moved by :func:`polyak_update`, never by gradients)."""
    return copy.deepcopy(online).requires_grad_(False)
