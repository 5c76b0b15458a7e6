"""Distributional RL math: C51's categorical projection and QR-DQN's quantile Huber loss.

C51 (Bellemare et al., 2017) represents the return of each action by probabilities on a fixed, evenly spaced
support ``z_0 < ... < z_{N-1}``; its target is the next distribution moved by the Bellman operator and
projected back onto the support. QR-DQN (Dabney et al., 2018) represents it by ``N`` quantiles at the fixed
fractions ``tau_hat_i = (2i + 1) / (2N)`` and regresses them on the target quantiles with an asymmetric
Huber loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rl_lightning.errors import ConfigurationError


def categorical_support(n_atoms: int, v_min: float, v_max: float, device: torch.device | str | None = None) -> Tensor:
    """The ``n_atoms`` evenly spaced returns ``z_j = v_min + j * (v_max - v_min) / (n_atoms - 1)``.

    Args:
        n_atoms: number of support points (51 in C51 and Rainbow); at least 2.
        v_min: the lowest return represented; below ``v_max``.
        v_max: the highest return represented.
        device: where the support lives.

    Raises:
        ConfigurationError: fewer than 2 atoms, or ``v_min >= v_max``.
    """
    if isinstance(n_atoms, bool) or not isinstance(n_atoms, int) or n_atoms < 2:
        raise ConfigurationError(
            f"n_atoms={n_atoms!r} must be an integer of at least 2: the support needs both ends, v_min and v_max."
        )
    if not v_min < v_max:
        raise ConfigurationError(
            f"v_min={v_min!r} must be below v_max={v_max!r}: they bound the returns the distribution can "
            f"represent (C51 and Rainbow use -10 and 10 with clipped rewards)."
        )
    return torch.linspace(float(v_min), float(v_max), n_atoms, device=device)


def categorical_q_values(logits: Tensor, support: Tensor) -> Tensor:
    """Expected returns ``sum_j softmax(logits)_j * z_j``: ``(..., n_atoms)`` logits -> ``(...)``.

    The softmax is taken in float32 at least, so half-precision logits give the same greedy actions.
    """
    probs = logits.softmax(dim=-1, dtype=torch.promote_types(logits.dtype, torch.float32))
    return (probs * support).sum(dim=-1)


def categorical_projection(
    next_probs: Tensor, rewards: Tensor, discounts: Tensor, terminations: Tensor, support: Tensor
) -> Tensor:
    """C51's target: the distribution of ``r + discount * (1 - term) * Z'`` projected onto ``support``.

    Each atom ``z_i`` of the next distribution moves to ``Tz_i = r + discount * (1 - term) * z_i``, clamped to
    ``[v_min, v_max]``, and its probability is split between the two support points around it in proportion
    to closeness (Bellemare et al., 2017, Algorithm 1). Written as one formula,

        target_j = sum_i next_probs_i * max(0, 1 - |Tz_i - z_j| / delta_z),

    the triangular weights of every ``Tz_i`` sum to 1 over the support, so an atom landing exactly on a
    support point keeps all its mass there (the ``l == u`` case that loses mass in a naive floor/ceil
    split), and no special case is needed. Dense weights cost ``batch * n_atoms^2`` (83k numbers for 32 x 51)
    and, unlike a scatter-add, are summed in a fixed order, so the target is reproducible on a GPU too.

    Args:
        next_probs: ``(batch, n_atoms)`` probabilities of the next state's chosen action (rows sum to 1).
        rewards: ``(batch,)`` (n-step discounted) rewards.
        discounts: ``(batch,)`` factors of the bootstrap (``gamma ** k``, k the rewards summed).
        terminations: ``(batch,)`` 1.0 where the episode terminated: all mass then goes to ``r``.
        support: ``(n_atoms,)`` evenly spaced support, as :func:`categorical_support` makes.

    Returns:
        ``(batch, n_atoms)`` target probabilities; rows sum to 1 wherever ``next_probs``' rows do.
    """
    v_min, v_max = support[0], support[-1]
    delta = (v_max - v_min) / (support.shape[0] - 1)
    bootstrap = discounts * (1.0 - terminations.to(discounts.dtype))
    target_atoms = torch.clamp(rewards.unsqueeze(-1) + bootstrap.unsqueeze(-1) * support, v_min, v_max)
    # weights[b, i, j]: the share of moved atom i that support point j receives.
    weights = (1.0 - (target_atoms.unsqueeze(-1) - support).abs() / delta).clamp(min=0.0)
    # A product and a sum rather than bmm: a matmul may run in TF32 on GPUs and lose mass in the third digit.
    return (next_probs.unsqueeze(-1) * weights).sum(dim=1)


def quantile_midpoints(
    n_quantiles: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """The fractions ``tau_hat_i = (2i + 1) / (2 n_quantiles)`` whose quantiles QR-DQN's outputs estimate.

    The midpoints of ``n_quantiles`` equal slices of [0, 1]: the quantiles there minimise the 1-Wasserstein
    distance to the true distribution among distributions of ``n_quantiles`` equally likely atoms (Dabney
    et al., 2018, Lemma 2).

    Raises:
        ConfigurationError: fewer than 1 quantile.
    """
    if isinstance(n_quantiles, bool) or not isinstance(n_quantiles, int) or n_quantiles < 1:
        raise ConfigurationError(f"n_quantiles={n_quantiles!r} must be an integer of at least 1 (QR-DQN uses 200).")
    return (torch.arange(n_quantiles, device=device, dtype=dtype or torch.float32) + 0.5) / n_quantiles


def quantile_q_values(quantiles: Tensor) -> Tensor:
    """Expected returns: the mean of equally likely quantiles, ``(..., n_quantiles)`` -> ``(...)``."""
    return quantiles.mean(dim=-1)


def quantile_huber_loss(quantiles: Tensor, target_quantiles: Tensor, kappa: float = 1.0) -> Tensor:
    """QR-DQN's quantile Huber loss of each sample (Dabney et al., 2018, equations 9 and 10).

    With the pairwise errors ``u_ij = T theta_j - theta_i`` between target quantile ``j`` and predicted
    quantile ``i``,

        loss = sum_i mean_j |tau_hat_i - 1{u_ij < 0}| * L_kappa(u_ij),
        L_kappa(u) = u^2 / 2 if |u| <= kappa else kappa * (|u| - kappa / 2),

    so quantile ``i`` is pushed up by the targets above it with weight ``tau_hat_i`` and down by those below
    with weight ``1 - tau_hat_i``. As in the paper (and Dopamine's QR-DQN), ``L_kappa`` is not divided by
    ``kappa``; IQN's variant divides. ``kappa=0`` gives the plain quantile regression loss, ``|u|`` for
    ``L_kappa``.

    Args:
        quantiles: ``(batch, n_quantiles)`` predicted quantiles of the taken actions, in order of ``tau_hat``.
        target_quantiles: ``(batch, n_targets)`` target quantiles ``r + discount * (1 - term) * theta'``;
            treated as constants (detached). ``n_targets`` may differ from ``n_quantiles``.
        kappa: the Huber threshold (1 in QR-DQN); at least 0.

    Returns:
        ``(batch,)`` the loss of each sample: average it (weighted by importance weights under prioritized
        replay) for the gradient, use it for new priorities.

    Raises:
        ConfigurationError: ``kappa < 0``.
    """
    if kappa < 0:
        raise ConfigurationError(f"kappa={kappa!r} must be >= 0 (1 in QR-DQN; 0 for the plain quantile loss).")
    tau_hat = quantile_midpoints(quantiles.shape[-1], device=quantiles.device, dtype=quantiles.dtype)
    errors = target_quantiles.detach().unsqueeze(-2) - quantiles.unsqueeze(-1)  # (batch, i, j)
    abs_errors = errors.abs()
    if kappa == 0:
        huber = abs_errors
    else:
        huber = torch.where(abs_errors <= kappa, 0.5 * errors.square(), kappa * (abs_errors - 0.5 * kappa))
    weights = (tau_hat.unsqueeze(-1) - (errors < 0).to(errors.dtype)).abs()
    return (weights * huber).mean(dim=-1).sum(dim=-1)
