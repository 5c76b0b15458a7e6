"""The one exception type for bad input.

Everything a user can get wrong (an env id, a space an algorithm cannot handle, a network of the wrong
shape, impossible hyperparameters) raises :class:`ConfigurationError` with one message that names the
problem and the fix. The CLI prints that message and exits non-zero, without a traceback.
"""


class ConfigurationError(ValueError):
    """Bad input from the user: the message says what is wrong and how to fix it."""


def check_positive(**values: float) -> None:
    """Raise :class:`ConfigurationError` for the first of ``values`` that is not > 0."""
    for name, value in values.items():
        if value is None or value <= 0:
            raise ConfigurationError(f"{name}={value!r} must be a positive number.")


def check_fraction(**values: float) -> None:
    """Raise :class:`ConfigurationError` for the first of ``values`` outside [0, 1]."""
    for name, value in values.items():
        if value is None or not 0.0 <= value <= 1.0:
            raise ConfigurationError(f"{name}={value!r} must lie in [0, 1].")
