"""Multi-layer perceptrons."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn


def mlp(
    in_features: int,
    out_features: int | None,
    hidden_sizes: Sequence[int] = (64, 64),
    activation: type[nn.Module] = nn.ReLU,
    linear: Callable[[int, int], nn.Module] = nn.Linear,
) -> nn.Sequential:
    """``linear -> activation`` for each hidden size, then a final ``linear`` to ``out_features``.

    With ``out_features=None`` the stack ends after the last hidden activation (a feature extractor).

    Args:
        in_features: width of the input.
        out_features: width of the output, or None to end with the last hidden activation.
        hidden_sizes: widths of the hidden layers.
        activation: the activation after each hidden layer.
        linear: builds each layer from ``(in_features, out_features)``: ``nn.Linear``, or a noisy layer.
    """
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden_sizes:
        layers += [linear(width, size), activation()]
        width = size
    if out_features is not None:
        layers.append(linear(width, out_features))
    return nn.Sequential(*layers)
