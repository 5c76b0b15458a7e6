"""Hyperparameters that change over training: RL Baselines3 Zoo's ``"lin_<initial>"`` schedules, and SAC's
learned entropy coefficient (``"auto"``)."""

from __future__ import annotations

import math
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


def parse_ent_coef(ent_coef: float | str) -> tuple[float, bool]:
    """``ent_coef`` as (initial value, learned?): numbers are fixed, ``"auto"``, ``"auto_<init>"`` learned."""
    learned = isinstance(ent_coef, str) and ent_coef.startswith("auto")
    initial = ent_coef.removeprefix("auto").removeprefix("_") if learned else ent_coef
    try:
        value = 1.0 if initial == "" else float(initial)
    except (TypeError, ValueError):
        value = math.nan
    if not value > 0:
        raise ConfigurationError(
            f"ent_coef={ent_coef!r} must be a positive number (a fixed coefficient), 'auto' (learned, "
            f"starting at 1.0) or 'auto_<initial value>' such as 'auto_0.1'."
        )
    return value, learned
