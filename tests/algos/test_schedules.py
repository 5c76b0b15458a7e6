"""Schedules: constants, RL-Zoo's linear decay as a function of the progress remaining, and bad specs."""

import pytest

from rl_lightning import ConfigurationError
from rl_lightning.algos.schedules import Schedule


def test_a_constant_stays_put_and_a_linear_schedule_decays_to_zero():
    assert [Schedule.parse(3e-4, "lr")(p) for p in (1.0, 0.5, 0.0)] == [3e-4, 3e-4, 3e-4]
    linear = Schedule.parse("lin_1e-3", "lr")
    assert linear == Schedule(1e-3, linear=True)
    assert [linear(p) for p in (1.0, 0.25, 0.0)] == pytest.approx([1e-3, 2.5e-4, 0.0])
    assert linear(1.5) == pytest.approx(1e-3) and linear(-0.5) == 0.0  # progress outside [0, 1] is clamped


@pytest.mark.parametrize("spec", [0, -1e-3, "lin_0", "lin_-1", "linear_1e-3", "fast", None])
def test_anything_else_is_refused_naming_the_hyperparameter(spec):
    with pytest.raises(ConfigurationError, match=r"clip_range=.* must be a positive number, or 'lin_<initial"):
        Schedule.parse(spec, "clip_range")
