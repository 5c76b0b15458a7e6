"""Stochastic policies for on-policy algorithms: action distributions, their heads, and actor-critic networks.

An actor maps observations to the parameters of a distribution (logits, or Gaussian means); a head turns
those parameters into a distribution and the distribution's samples into env actions. The heads own what
is not a function of the observation (the Gaussian's log standard deviations) and know the action space,
so a replacement actor only has to produce a tensor of the right shape. Every head has ``outputs`` (the
width of the actor's output), ``action_shape`` and ``action_dtype`` (one action as sampled and stored),
``forward`` (actor outputs -> distribution) and ``to_env`` (sampled actions -> what the env is sent).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from rl_lightning.errors import ConfigurationError
from rl_lightning.nets.encoders import make_encoder
from rl_lightning.nets.mlp import mlp
from rl_lightning.tree import Observations

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class Categorical:
    """A categorical distribution over ``n`` actions, from unnormalised logits ``(batch, n)``."""

    def __init__(self, logits: Tensor) -> None:
        self.log_pmf = logits.float().log_softmax(dim=-1)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return torch.multinomial(self.log_pmf.exp(), 1, generator=generator).squeeze(-1)

    def mode(self) -> Tensor:
        return self.log_pmf.argmax(dim=-1)

    def log_prob(self, actions: Tensor) -> Tensor:
        return self.log_pmf.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> Tensor:
        # Clamped so that a masked action (logit -inf) contributes 0 * finite, not 0 * -inf = nan.
        log_pmf = self.log_pmf.clamp(min=torch.finfo(self.log_pmf.dtype).min)
        return -(log_pmf.exp() * log_pmf).sum(dim=-1)


class MultiCategorical:
    """Independent categorical distributions, one per dimension of a ``MultiDiscrete`` action.

    ``logits`` is ``(batch, sum(nvec))``: the logits of the first dimension, then the second, and so on.
    Actions are ``(batch, len(nvec))``; log-probabilities and entropies are summed over the dimensions.
    """

    def __init__(self, logits: Tensor, nvec: Sequence[int]) -> None:
        self.dims = [Categorical(part) for part in logits.split(list(nvec), dim=-1)]

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return torch.stack([dim.sample(generator) for dim in self.dims], dim=-1)

    def mode(self) -> Tensor:
        return torch.stack([dim.mode() for dim in self.dims], dim=-1)

    def log_prob(self, actions: Tensor) -> Tensor:
        return sum(dim.log_prob(a) for dim, a in zip(self.dims, actions.unbind(-1), strict=True))

    def entropy(self) -> Tensor:
        return sum(dim.entropy() for dim in self.dims)


class Bernoulli:
    """Independent Bernoulli distributions, one per bit of a ``MultiBinary`` action, from logits ``(batch, n)``.

    Actions are ``(batch, n)`` floats of 0 and 1; log-probabilities and entropies are summed over the bits.
    """

    def __init__(self, logits: Tensor) -> None:
        self.logits = logits.float()

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        uniform = torch.rand(self.logits.shape, generator=generator, device=self.logits.device)
        return (uniform < torch.sigmoid(self.logits)).float()

    def mode(self) -> Tensor:
        return (self.logits > 0).float()

    def log_prob(self, actions: Tensor) -> Tensor:
        # log p(a) = a * log sigmoid(l) + (1 - a) * log sigmoid(-l) = -BCE(l, a), stable for large |l|.
        bce = nn.functional.binary_cross_entropy_with_logits(self.logits, actions, reduction="none")
        return -bce.sum(dim=-1)

    def entropy(self) -> Tensor:
        p = torch.sigmoid(self.logits)
        return nn.functional.binary_cross_entropy_with_logits(self.logits, p, reduction="none").sum(dim=-1)


class DiagGaussian:
    """A Gaussian with diagonal covariance over ``(batch, action_dim)`` actions; densities summed over dims."""

    def __init__(self, mean: Tensor, log_std: Tensor) -> None:
        self.mean = mean.float()
        self.log_std = log_std.expand_as(self.mean)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.log_std.exp() * noise

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, actions: Tensor) -> Tensor:
        z = (actions - self.mean) * torch.exp(-self.log_std)
        return (-0.5 * z.square() - self.log_std).sum(dim=-1) - self.mean.shape[-1] * _HALF_LOG_2PI

    def entropy(self) -> Tensor:
        return self.log_std.sum(dim=-1) + self.mean.shape[-1] * (0.5 + _HALF_LOG_2PI)


Distribution = Categorical | MultiCategorical | Bernoulli | DiagGaussian


class CategoricalHead(nn.Module):
    """``Discrete(n)`` actions: the actor outputs ``(batch, n)`` logits."""

    def __init__(self, space: gym.spaces.Discrete) -> None:
        super().__init__()
        self.outputs, self.start = int(space.n), int(space.start)
        self.action_shape: tuple[int, ...] = ()
        self.action_dtype = torch.long

    def forward(self, logits: Tensor) -> Categorical:
        return Categorical(logits)

    def to_env(self, actions: Tensor) -> Tensor:
        return actions + self.start if self.start else actions


class MultiCategoricalHead(nn.Module):
    """``MultiDiscrete(nvec)`` actions (one-dimensional ``nvec``): the actor outputs ``(batch, sum(nvec))`` logits."""

    def __init__(self, space: gym.spaces.MultiDiscrete) -> None:
        super().__init__()
        self.nvec = [int(n) for n in space.nvec]
        self.outputs = sum(self.nvec)
        self.action_shape = (len(self.nvec),)
        self.action_dtype = torch.long
        start = torch.as_tensor(np.asarray(space.start, dtype=np.int64))
        self.register_buffer("start", start, persistent=False)
        self.has_start = bool(start.any())

    def forward(self, logits: Tensor) -> MultiCategorical:
        return MultiCategorical(logits, self.nvec)

    def to_env(self, actions: Tensor) -> Tensor:
        return actions + self.start if self.has_start else actions


class BernoulliHead(nn.Module):
    """``MultiBinary`` actions (of any shape): the actor outputs ``(batch, n)`` logits, one per bit."""

    def __init__(self, space: gym.spaces.MultiBinary) -> None:
        super().__init__()
        self.outputs = math.prod(space.shape)
        self.action_shape = (self.outputs,)
        self.action_dtype = torch.float32
        self.env_shape = tuple(space.shape)

    def forward(self, logits: Tensor) -> Bernoulli:
        return Bernoulli(logits)

    def to_env(self, actions: Tensor) -> Tensor:
        return actions.to(torch.int8).reshape(-1, *self.env_shape)


class DiagGaussianHead(nn.Module):
    """``Box`` actions: the actor outputs ``(batch, action_dim)`` means; the log-stds are parameters of their own.

    The log standard deviations do not depend on the state (as in Schulman et al., 2017). Samples are
    unbounded; :meth:`to_env` clips them to the bounds and gives them the space's shape, while learning
    keeps the unclipped sample, whose log-probability is the one the policy really had.

    Args:
        space: a float ``Box`` action space.
        log_std_init: initial log standard deviation of every action dimension.
    """

    def __init__(self, space: gym.spaces.Box, log_std_init: float = 0.0) -> None:
        super().__init__()
        self.outputs = math.prod(space.shape)
        self.action_shape = (self.outputs,)
        self.action_dtype = torch.float32
        self.env_shape = tuple(space.shape)
        self.log_std = nn.Parameter(torch.full((self.outputs,), float(log_std_init)))
        self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32).flatten(), persistent=False)
        self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32).flatten(), persistent=False)

    def forward(self, mean: Tensor) -> DiagGaussian:
        return DiagGaussian(mean, self.log_std)

    def to_env(self, actions: Tensor) -> Tensor:
        return torch.clamp(actions, self.low, self.high).reshape(-1, *self.env_shape)


ActionHead = CategoricalHead | MultiCategoricalHead | BernoulliHead | DiagGaussianHead


def make_action_head(space: gym.Space, algorithm: str, log_std_init: float = 0.0) -> ActionHead:
    """The head for ``space``; a space ``algorithm`` cannot handle is refused with what is supported."""
    if isinstance(space, gym.spaces.Discrete):
        return CategoricalHead(space)
    if isinstance(space, gym.spaces.MultiDiscrete) and len(space.nvec.shape) == 1:
        return MultiCategoricalHead(space)
    if isinstance(space, gym.spaces.MultiBinary):
        return BernoulliHead(space)
    if isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating):
        return DiagGaussianHead(space, log_std_init)
    raise ConfigurationError(
        f"{algorithm} cannot handle the action space {space!r}: supported are Discrete, MultiDiscrete (a "
        f"one-dimensional nvec), MultiBinary and float Box. Flatten or convert the actions with a wrapper (passed in "
        f"wrappers=)."
    )


def orthogonal_init(module: nn.Module, gain: float) -> nn.Module:
    """Orthogonal weights of scale ``gain`` and zero biases for every linear and convolutional layer of ``module``."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d):
            nn.init.orthogonal_(layer.weight, gain=gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


# Gains of OpenAI Baselines (and Stable-Baselines3): sqrt(2) for ReLU/tanh hidden layers; a near-zero
# policy output starts the policy near uniform (or at mean 0), a unit-scale value output.
HIDDEN_GAIN, ACTOR_GAIN, CRITIC_GAIN = math.sqrt(2.0), 0.01, 1.0


def _mlp_with_head(
    in_features: int, outputs: int, hidden_sizes: Sequence[int], gain: float, ortho: bool
) -> nn.Sequential:
    net = mlp(in_features, outputs, hidden_sizes, activation=nn.Tanh)
    if ortho:
        orthogonal_init(net, HIDDEN_GAIN)
        orthogonal_init(net[-1], gain)
    return net


def _encoder(observation_space: gym.Space, ortho: bool) -> nn.Module:
    encoder = make_encoder(observation_space)
    return orthogonal_init(encoder, HIDDEN_GAIN) if ortho else encoder


def default_actor(
    observation_space: gym.Space, outputs: int, hidden_sizes: Sequence[int] = (64, 64), ortho_init: bool = True
) -> nn.Sequential:
    """An actor of its own: encoder, tanh MLP, linear output of ``outputs`` distribution parameters."""
    encoder = _encoder(observation_space, ortho_init)
    return nn.Sequential(encoder, _mlp_with_head(encoder.out_features, outputs, hidden_sizes, ACTOR_GAIN, ortho_init))


def default_critic(
    observation_space: gym.Space, hidden_sizes: Sequence[int] = (64, 64), ortho_init: bool = True
) -> nn.Sequential:
    """A critic of its own: encoder, tanh MLP, linear output of one value."""
    encoder = _encoder(observation_space, ortho_init)
    return nn.Sequential(encoder, _mlp_with_head(encoder.out_features, 1, hidden_sizes, CRITIC_GAIN, ortho_init))


class ActorCritic(nn.Module):
    """An actor (observations -> distribution parameters) and a critic (observations -> ``(batch, 1)`` values).

    With a ``torso``, both take its features instead of the observations, and :meth:`forward` computes the
    torso once for both.

    Args:
        actor: maps observations (or torso features) to ``(batch, outputs)`` distribution parameters.
        critic: maps observations (or torso features) to ``(batch, 1)`` state values.
        torso: layers shared by actor and critic, or None.
    """

    def __init__(self, actor: nn.Module, critic: nn.Module, torso: nn.Module | None = None) -> None:
        super().__init__()
        self.torso, self.actor, self.critic = torso, actor, critic

    @classmethod
    def default(
        cls,
        observation_space: gym.Space,
        outputs: int,
        hidden_sizes: Sequence[int] = (64, 64),
        shared: bool = False,
        ortho_init: bool = True,
    ) -> ActorCritic:
        """Stable-Baselines3's networks: one encoder, then shared or separate tanh MLPs, orthogonal init.

        The encoder (parameter-free for vectors, the Nature CNN for images) is always shared; ``shared``
        also shares the hidden layers, leaving two linear heads.
        """
        encoder = _encoder(observation_space, ortho_init)
        if shared:
            torso = nn.Sequential(encoder, mlp(encoder.out_features, None, hidden_sizes, activation=nn.Tanh))
            if ortho_init:
                orthogonal_init(torso[1], HIDDEN_GAIN)
            width = hidden_sizes[-1] if hidden_sizes else encoder.out_features
            return cls(
                _mlp_with_head(width, outputs, (), ACTOR_GAIN, ortho_init),
                _mlp_with_head(width, 1, (), CRITIC_GAIN, ortho_init),
                torso,
            )
        return cls(
            _mlp_with_head(encoder.out_features, outputs, hidden_sizes, ACTOR_GAIN, ortho_init),
            _mlp_with_head(encoder.out_features, 1, hidden_sizes, CRITIC_GAIN, ortho_init),
            encoder,
        )

    def _features(self, observations: Observations) -> Tensor:
        return observations if self.torso is None else self.torso(observations)

    def forward(self, observations: Observations) -> tuple[Tensor, Tensor]:
        """Distribution parameters ``(batch, outputs)`` and values ``(batch,)``."""
        features = self._features(observations)
        return self.actor(features), self.critic(features).squeeze(-1)

    def actor_outputs(self, observations: Observations) -> Tensor:
        return self.actor(self._features(observations))

    def values(self, observations: Observations) -> Tensor:
        return self.critic(self._features(observations)).squeeze(-1)
