"""The hyperparameter rules: one message per broken rule, the same for every algorithm."""

import math

import pytest

from rl_lightning import A2C, DQN, PPO, SAC, TD3, ConfigurationError
from rl_lightning.errors import HYPERPARAMETER_RULES, check_hyperparameters


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"batch_size": 0}, "batch_size=0 must be a positive number."),
        ({"learning_rate": math.nan}, "learning_rate=nan must be a positive number."),
        ({"gamma": 1.5}, r"gamma=1.5 must lie in \[0, 1\]."),
        ({"tau": 0.0}, r"tau=0.0 must lie in \(0, 1\]"),
        ({"max_grad_norm": -1.0}, "max_grad_norm=-1.0 must be a positive number, or None"),
        ({"gradient_steps": 0}, "gradient_steps=0 must be positive, or -1"),
        ({"learning_starts": -5}, "learning_starts=-5 must be >= 0."),
        ({"ent_coef": -0.1}, r"ent_coef=-0.1 must be >= 0 \(0 turns it off\)."),
        ({"num_envs": True}, "num_envs=True must be a positive number."),
    ],
)
def test_a_broken_rule_names_the_value_and_the_rule(values, message):
    with pytest.raises(ConfigurationError, match=message):
        check_hyperparameters(**values)


def test_accepted_values_pass():
    check_hyperparameters(max_grad_norm=None, gradient_steps=-1, tau=1.0, gamma=0.0, learning_starts=0, ent_coef=0)


@pytest.mark.parametrize("algorithm", [DQN, PPO, A2C, SAC, TD3])
def test_every_algorithm_refuses_a_negative_max_grad_norm_alike(algorithm):
    with pytest.raises(ConfigurationError, match="max_grad_norm=-1 must be a positive number, or None"):
        algorithm(max_grad_norm=-1, total_timesteps=1000)


def test_every_rule_has_a_message():
    assert all(message for _, message in HYPERPARAMETER_RULES.values())
