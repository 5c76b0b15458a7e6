"""Q-networks for discrete actions: scalar (DQN) and distributional (C51, QR-DQN), with dueling and noisy options.

All share one layout: the encoder of the observation space, an MLP torso, then a head of ``n_actions * k``
outputs (``k`` = 1, ``n_atoms`` or ``n_quantiles``), plus a value head of ``k`` outputs when dueling. With
``noisy=True`` the torso and heads are :class:`~rl_lightning.nets.noisy.NoisyLinear` layers, as in Rainbow
(Hessel et al., 2018); the encoder stays deterministic.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import gymnasium as gym
from torch import Tensor, nn

from rl_lightning.nets.distributional import (
    categorical_q_values,
    categorical_support,
    quantile_midpoints,
    quantile_q_values,
)
from rl_lightning.nets.encoders import make_encoder
from rl_lightning.nets.mlp import mlp
from rl_lightning.nets.noisy import NoisyLinear


class _QLayers(nn.Module):
    """The layers every Q-network here has; subclasses say how the outputs combine.

    The construction order (encoder, torso, advantage head, value head) fixes which numbers each layer draws
    from the seeded global generator: it must not change, or a seeded DQN run would no longer repeat.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.spaces.Discrete,
        outputs_per_action: int,
        hidden_sizes: Sequence[int],
        dueling: bool,
        noisy: bool,
        sigma0: float,
    ) -> None:
        super().__init__()
        n_actions = int(action_space.n)
        linear: Callable[[int, int], nn.Module] = functools.partial(NoisyLinear, sigma0=sigma0) if noisy else nn.Linear
        self.encoder = make_encoder(observation_space)
        self.torso = mlp(self.encoder.out_features, None, hidden_sizes, linear=linear)
        width = hidden_sizes[-1] if hidden_sizes else self.encoder.out_features
        self.n_actions, self.outputs_per_action = n_actions, outputs_per_action
        self.dueling, self.noisy = dueling, noisy
        self.advantage = linear(width, n_actions * outputs_per_action)
        self.value = linear(width, outputs_per_action) if dueling else None


class QNetwork(_QLayers):
    """``Q(s, .)`` for every action: encoder, MLP, and a linear or dueling head.

    The dueling head (Wang et al., 2016) computes ``V(s) + A(s, a) - mean_a A(s, a)``.

    Args:
        observation_space: the env's observation space (picks the encoder).
        action_space: a ``Discrete`` action space (sets the number of outputs).
        hidden_sizes: widths of the hidden layers after the encoder.
        dueling: use the dueling head.
        noisy: make the hidden layers and heads :class:`NoisyLinear` (Noisy DQN, Fortunato et al., 2018).
        sigma0: initial noise scale of the noisy layers.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.spaces.Discrete,
        hidden_sizes: Sequence[int] = (64, 64),
        dueling: bool = False,
        noisy: bool = False,
        sigma0: float = 0.5,
    ) -> None:
        super().__init__(observation_space, action_space, 1, hidden_sizes, dueling, noisy, sigma0)

    def forward(self, observations: Tensor) -> Tensor:
        features = self.torso(self.encoder(observations))
        advantage = self.advantage(features)
        if self.value is None:
            return advantage
        return self.value(features) + advantage - advantage.mean(dim=1, keepdim=True)


class _DistributionalQNetwork(_QLayers):
    """``(batch, n_actions, k)`` outputs; dueling combines value and advantage per output, as in Rainbow."""

    def forward(self, observations: Tensor) -> Tensor:
        features = self.torso(self.encoder(observations))
        advantage = self.advantage(features).unflatten(-1, (self.n_actions, self.outputs_per_action))
        if self.value is None:
            return advantage
        value = self.value(features).unsqueeze(-2)
        return value + advantage - advantage.mean(dim=-2, keepdim=True)


class CategoricalQNetwork(_DistributionalQNetwork):
    """C51's network: the logits of each action's return distribution on a fixed support.

    ``forward`` returns logits ``(batch, n_actions, n_atoms)``; the probabilities are their softmax over atoms,
    taken after the dueling combination (Rainbow's ``p = softmax(V + A - mean_a A)`` per atom).
    :meth:`q_values` gives the expected returns.

    Args:
        observation_space: the env's observation space (picks the encoder).
        action_space: a ``Discrete`` action space.
        hidden_sizes: widths of the hidden layers after the encoder.
        n_atoms: support points (51 in C51 and Rainbow).
        v_min: lowest return of the support.
        v_max: highest return of the support.
        dueling: value and advantage streams per atom (Rainbow).
        noisy: make the hidden layers and heads :class:`NoisyLinear` (Rainbow).
        sigma0: initial noise scale of the noisy layers.

    Raises:
        ConfigurationError: fewer than 2 atoms, or ``v_min >= v_max``.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.spaces.Discrete,
        hidden_sizes: Sequence[int] = (64, 64),
        n_atoms: int = 51,
        v_min: float = -10.0,
        v_max: float = 10.0,
        dueling: bool = False,
        noisy: bool = False,
        sigma0: float = 0.5,
    ) -> None:
        support = categorical_support(n_atoms, v_min, v_max)  # checked before any layer is built
        super().__init__(observation_space, action_space, n_atoms, hidden_sizes, dueling, noisy, sigma0)
        # Not persistent: it follows from the arguments, not from training.
        self.register_buffer("support", support, persistent=False)

    def q_values(self, logits: Tensor) -> Tensor:
        """Expected returns ``(batch, n_actions)`` of this network's logits ``(batch, n_actions, n_atoms)``."""
        return categorical_q_values(logits, self.support)


class QuantileQNetwork(_DistributionalQNetwork):
    """QR-DQN's network: ``n_quantiles`` quantiles of each action's return distribution.

    ``forward`` returns ``(batch, n_actions, n_quantiles)``; output ``k`` estimates the quantile at
    ``taus[k] = (2k + 1) / (2 n_quantiles)``. :meth:`q_values` gives the expected returns (their mean).

    Args:
        observation_space: the env's observation space (picks the encoder).
        action_space: a ``Discrete`` action space.
        hidden_sizes: widths of the hidden layers after the encoder.
        n_quantiles: quantiles per action (200 in QR-DQN).
        dueling: value and advantage streams per quantile.
        noisy: make the hidden layers and heads :class:`NoisyLinear`.
        sigma0: initial noise scale of the noisy layers.

    Raises:
        ConfigurationError: fewer than 1 quantile.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.spaces.Discrete,
        hidden_sizes: Sequence[int] = (64, 64),
        n_quantiles: int = 200,
        dueling: bool = False,
        noisy: bool = False,
        sigma0: float = 0.5,
    ) -> None:
        taus = quantile_midpoints(n_quantiles)
        super().__init__(observation_space, action_space, n_quantiles, hidden_sizes, dueling, noisy, sigma0)
        self.register_buffer("taus", taus, persistent=False)

    def q_values(self, quantiles: Tensor) -> Tensor:
        """Expected returns ``(batch, n_actions)`` of this network's quantiles ``(batch, n_actions, n_quantiles)``."""
        return quantile_q_values(quantiles)


def default_q_network(
    observation_space: gym.Space,
    action_space: gym.spaces.Discrete,
    hidden_sizes: Sequence[int],
    distributional: str | None = None,
    n_atoms: int = 51,
    v_min: float = -10.0,
    v_max: float = 10.0,
    n_quantiles: int = 200,
    dueling: bool = False,
    noisy: bool = False,
) -> tuple[Callable[[], nn.Module], tuple[int, ...], str]:
    """DQN's default network for ``distributional`` (None, ``"categorical"`` or ``"quantile"``): a factory, the
    shape of its output for one observation (``(n_actions,)``, ``(n_actions, n_atoms)``, ...), and what that is."""
    spaces, n_actions = (observation_space, action_space), int(action_space.n)
    options = {"dueling": dueling, **({"noisy": True} if noisy else {})}
    if distributional == "categorical":
        categorical_support(n_atoms, v_min, v_max)  # refuse a bad support before anything is built
        factory = functools.partial(CategoricalQNetwork, *spaces, hidden_sizes, n_atoms, v_min, v_max, **options)
        return factory, (n_actions, n_atoms), f"(batch, n_actions, n_atoms) logits for {action_space}"
    if distributional == "quantile":
        quantile_midpoints(n_quantiles)
        factory = functools.partial(QuantileQNetwork, *spaces, hidden_sizes, n_quantiles, **options)
        return factory, (n_actions, n_quantiles), f"(batch, n_actions, n_quantiles) quantiles for {action_space}"
    factory = functools.partial(QNetwork, *spaces, hidden_sizes, **options)
    return factory, (n_actions,), f"(batch, n_actions) for {action_space}"
