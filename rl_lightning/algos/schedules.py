"""Hyperparameters that change over training: a constant, or RL Baselines3 Zoo's ``"lin_<initial>"``."""

from __future__ import annotations

from dataclasses import dataclass

from rl_lightning.errors import ConfigurationError

ScheduleSpec = float | str
"""A constant (``3e-4``), or ``"lin_<initial>"`` (``"lin_1e-3"``): linear from the initial value to 0 over
``total_timesteps``. YAML writes either as a plain scalar."""


@dataclass(frozen=True)
class Schedule:
    """A value as a function of the training progress remaining (1 at the first env step, 0 at the last).

    Args:
        initial: the value at the start.
        linear: decay linearly to 0 at ``total_timesteps``; otherwise stay at ``initial``.
    """

    initial: float
    linear: bool = False

    def __call__(self, progress_remaining: float) -> float:
        if not self.linear:
            return self.initial
        return self.initial * min(max(progress_remaining, 0.0), 1.0)

    @classmethod
    def parse(cls, spec: ScheduleSpec, name: str) -> Schedule:
        """The schedule of a hyperparameter ``name``, refusing anything but a positive constant or ``lin_<value>``."""
        text = spec.strip() if isinstance(spec, str) else None
        linear = text is not None and text.startswith("lin_")
        try:
            initial = float(text[4:] if linear else spec)
        except (TypeError, ValueError):
            initial = None
        if initial is None or not initial > 0:
            raise ConfigurationError(
                f"{name}={spec!r} must be a positive number, or 'lin_<initial value>' (e.g. 'lin_1e-3') for a "
                f"linear decay to 0 over total_timesteps."
            )
        return cls(initial, linear)
