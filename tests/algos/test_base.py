"""What every algorithm gets from RLAlgorithm: run arguments declared once, saved hyperparameters, the policy
contract."""

from __future__ import annotations

import pytest
import torch

from rl_lightning import A2C, DDPG, DQN, PPO, ConfigurationError
from rl_lightning.algos.compat import PLAIN_ATTRIBUTES
from tests.helpers import DQN_SMALL, trainer


def test_hyperparameters_hold_every_argument_with_its_effective_value():
    dqn = DQN("CartPole-v1", num_envs=2, learning_rate=1e-3)
    hparams = dict(dqn.hparams)
    expected = {
        "env": "CartPole-v1", "num_envs": 2, "learning_rate": 1e-3, "seed": 0, "total_timesteps": 100_000,
        "buffer_size": 1_000_000, "buffer_device": None, "save_buffer": True, "hidden_sizes": [64, 64],
    }
    assert {key: hparams[key] for key in expected} == expected
    assert DQN(**{k: v for k, v in hparams.items() if not k.startswith("_")}).hparams == dqn.hparams


@pytest.mark.parametrize("algorithm", [DDPG, A2C])
def test_a_subclass_fixing_parent_arguments_is_rebuilt_from_its_hyperparameters(algorithm):
    built = algorithm(num_envs=2, total_timesteps=1000, **({"train_freq": 2} if algorithm is DDPG else {}))
    assert not set(built.hparams) & set(algorithm.fixed_arguments)
    rebuilt = algorithm(**built.hparams)
    assert rebuilt.hparams == built.hparams
    assert rebuilt.num_envs == 2


def test_run_arguments_are_keywords_and_checked_in_one_place():
    with pytest.raises(TypeError):
        DQN("CartPole-v1", 2)  # num_envs is a keyword: DQN("CartPole-v1", num_envs=2)
    with pytest.raises(ConfigurationError, match="vectorization='threads' must be one of 'sync', 'async', 'native'"):
        PPO(vectorization="threads")
    with pytest.raises(ConfigurationError, match="eval_envs=0 must be a positive number"):
        DQN(eval_envs=0)


def test_exploration_and_replay_draw_from_different_streams():
    dqn = DQN(**DQN_SMALL)
    trainer(max_epochs=1).fit(dqn)
    assert dqn.generator.initial_seed() != dqn.buffer.generator.initial_seed()


def test_hook_attributes_skip_module_bookkeeping():
    dqn = DQN(**DQN_SMALL)
    for name in PLAIN_ATTRIBUTES:
        setattr(dqn, name, "value")
        assert dqn.__dict__[name] == "value"  # stored directly, not through nn.Module.__setattr__
    dqn.extra = torch.nn.Linear(1, 1)
    assert "extra" in dict(dqn.named_children())  # everything else still registers as usual
