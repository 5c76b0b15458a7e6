"""The one exception type for bad input, and the one home of the checks on hyperparameters.

Everything a user can get wrong (an env id, a space an algorithm cannot handle, a network of the wrong
shape, impossible hyperparameters) raises :class:`ConfigurationError` with one message that names the
problem and the fix. The CLI prints that message and exits non-zero, without a traceback. A fault met during a
run (:class:`RunFault`) is told the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


class ConfigurationError(ValueError):
    """Bad input from the user: the message says what is wrong and how to fix it."""


class RunFault(RuntimeError):
    """A run that cannot go on (a full disk, non-finite values): the message says what happened, where, and what
    was kept. The CLI prints it and exits with status 1, without a traceback."""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def _positive(value: Any) -> bool:
    return _number(value) and value > 0


def _fraction(value: Any) -> bool:
    return _number(value) and 0.0 <= value <= 1.0


def _non_negative(value: Any) -> bool:
    return _number(value) and value >= 0


_Rule = tuple[Callable[[Any], bool], str]
_POSITIVE: _Rule = (_positive, "must be a positive number")
_OPTIONAL_POSITIVE: _Rule = (lambda v: v is None or _positive(v), "must be a positive number, or None to turn it off")
_FRACTION: _Rule = (_fraction, "must lie in [0, 1]")
_OFF_AT_ZERO: _Rule = (_non_negative, "must be >= 0 (0 turns it off)")

HYPERPARAMETER_RULES: dict[str, _Rule] = {
    **dict.fromkeys(
        (
            "num_envs", "total_timesteps", "eval_episodes", "eval_envs", "buffer_size", "batch_size", "train_freq",
            "n_step", "n_steps", "n_epochs", "learning_rate", "target_update_interval", "n_critics", "policy_delay",
            "rms_prop_eps", "sigma0", "n_quantiles", "rnn_hidden_size", "rnn_layers",
        ),
        _POSITIVE,
    ),
    **dict.fromkeys(("steps_per_epoch", "max_grad_norm", "target_kl", "sequence_length"), _OPTIONAL_POSITIVE),
    **dict.fromkeys(
        (
            "gamma", "gae_lambda", "exploration_fraction", "exploration_initial_eps", "exploration_final_eps",
            "prioritized_alpha", "prioritized_beta", "alpha", "beta",
        ),
        _FRACTION,
    ),
    **dict.fromkeys(
        ("ent_coef", "vf_coef", "action_noise", "target_policy_noise", "target_noise_clip", "kappa"), _OFF_AT_ZERO
    ),
    "learning_starts": (_non_negative, "must be >= 0"),
    "tau": (lambda v: _fraction(v) and v > 0, "must lie in (0, 1]: 0 would never move the target networks"),
    "gradient_steps": (lambda v: _positive(v) or v == -1, "must be positive, or -1 for one per env step"),
}
"""What each hyperparameter of the shared vocabulary must satisfy, and the message when it does not."""


def check_hyperparameters(**values: Any) -> None:
    """Raise :class:`ConfigurationError` for the first of ``values`` that breaks its rule in
    :data:`HYPERPARAMETER_RULES` (every name must have one)."""
    for name, value in values.items():
        accepts, requirement = HYPERPARAMETER_RULES[name]
        if not accepts(value):
            raise ConfigurationError(f"{name}={value!r} {requirement}.")


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    """Raise :class:`ConfigurationError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigurationError(f"{name}={value!r} must be one of {', '.join(map(repr, choices))}.")
