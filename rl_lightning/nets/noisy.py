"""Noisy linear layers (Fortunato et al., 2018): exploration by learned, state-independent weight noise.

A :class:`NoisyLinear` layer computes ``y = (mu_w + sigma_w * eps_w) x + (mu_b + sigma_b * eps_b)``, where
``mu`` and ``sigma`` are learned and ``eps`` is noise. With factorised Gaussian noise, ``p`` inputs and ``q``
outputs need only ``p + q`` draws per noise sample instead of ``p * q``:

    eps_w[i, j] = f(e_out[i]) * f(e_in[j]),   eps_b[i] = f(e_out[i]),   f(x) = sign(x) * sqrt(|x|),

with ``e_in``, ``e_out`` standard normal. The noise stays fixed between calls of :meth:`NoisyLinear.reset_noise`,
which draws it from a generator that the caller passes in, so the algorithm (which owns the seeded
generators) decides when noise changes and runs repeat. The factors are buffers, so checkpoints carry them.

In ``eval()`` mode, or inside :func:`noise_disabled`, the layer uses the means alone: evaluation is
deterministic.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rl_lightning.errors import check_hyperparameters


class NoisyLinear(nn.Module):
    """A linear layer with factorised Gaussian weight and bias noise.

    Initialisation follows the paper's factorised case: every mean is drawn from ``U(-1/sqrt(p), 1/sqrt(p))``
    and every standard deviation set to ``sigma0 / sqrt(p)``, ``p`` the number of inputs; then a first noise
    sample is drawn from torch's global generator, so the layer is noisy from the start in train mode.

    Args:
        in_features: width of the input ``p``.
        out_features: width of the output ``q``.
        sigma0: scale of the initial noise standard deviations (0.5 in the paper and in Rainbow).
    """

    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5) -> None:
        super().__init__()
        check_hyperparameters(sigma0=sigma0)
        self.in_features, self.out_features, self.sigma0 = in_features, out_features, sigma0
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_sigma = nn.Parameter(torch.empty(out_features, in_features))
        self.bias_mu = nn.Parameter(torch.empty(out_features))
        self.bias_sigma = nn.Parameter(torch.empty(out_features))
        # The noise factors f(e_in) and f(e_out), already scaled; persistent, so a resumed run has the noise
        # it stopped with.
        self.register_buffer("epsilon_in", torch.zeros(in_features))
        self.register_buffer("epsilon_out", torch.zeros(out_features))
        self.reset_parameters()
        self.reset_noise()

    def reset_parameters(self) -> None:
        """Means from ``U(-1/sqrt(p), 1/sqrt(p))``, standard deviations ``sigma0 / sqrt(p)``."""
        bound = 1.0 / math.sqrt(self.in_features)
        with torch.no_grad():
            self.weight_mu.uniform_(-bound, bound)
            self.bias_mu.uniform_(-bound, bound)
            self.weight_sigma.fill_(self.sigma0 * bound)
            self.bias_sigma.fill_(self.sigma0 * bound)

    @torch.no_grad()
    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        """Draw new noise factors from ``generator`` (on this layer's device), or from torch's global one."""
        draws = torch.randn(
            self.in_features + self.out_features,
            generator=generator,
            device=self.epsilon_in.device,
            dtype=self.epsilon_in.dtype,
        )
        scaled = draws.sign() * draws.abs().sqrt()
        self.epsilon_in.copy_(scaled[: self.in_features])
        self.epsilon_out.copy_(scaled[self.in_features :])

    def forward(self, inputs: Tensor) -> Tensor:
        if not self.training:
            return F.linear(inputs, self.weight_mu, self.bias_mu)
        weight = torch.addcmul(self.weight_mu, self.weight_sigma, torch.outer(self.epsilon_out, self.epsilon_in))
        bias = torch.addcmul(self.bias_mu, self.bias_sigma, self.epsilon_out)
        return F.linear(inputs, weight, bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, sigma0={self.sigma0}"


def _noisy_layers(module: nn.Module) -> list[NoisyLinear]:
    """Every :class:`NoisyLinear` inside ``module`` (itself included), in ``module.modules()`` order."""
    return [layer for layer in module.modules() if isinstance(layer, NoisyLinear)]


def reset_noise(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Draw new noise for every :class:`NoisyLinear` inside ``module``, one after another from ``generator``.

    Args:
        module: any module; one without noisy layers is left as it is (and draws nothing from ``generator``).
        generator: a generator on the module's device; None draws from torch's global generator.
    """
    for layer in _noisy_layers(module):
        layer.reset_noise(generator)


@contextlib.contextmanager
def noise_disabled(module: nn.Module) -> Iterator[None]:
    """Within the block, every :class:`NoisyLinear` inside ``module`` uses its means alone.

    ``act(observations, deterministic=True)`` must be deterministic whatever mode the module is in (a user may
    call it on a module left in train mode after ``fit``), while the rest of the module (dropout, batch norm)
    keeps its mode: only the noisy layers are switched to eval mode, and each gets its own mode back after.
    """
    layers = _noisy_layers(module)
    modes = [layer.training for layer in layers]
    try:
        for layer in layers:
            layer.training = False
        yield
    finally:
        for layer, mode in zip(layers, modes):
            layer.training = mode
