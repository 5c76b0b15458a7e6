"""The recurrent core: one call per run of steps without a reset gives what stepping one step at a time gives."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from rl_lightning.nets import RecurrentActorCritic
from rl_lightning.nets.recurrent import scan_rnn


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
def test_a_sequence_with_resets_equals_single_steps_from_zeroed_states(cell):
    torch.manual_seed(0)
    rnn = cell(3, 4, num_layers=2)
    features = torch.randn(6, 3, 3)
    starts = torch.zeros(6, 3, dtype=torch.bool)
    starts[0, 0] = starts[2, 1] = starts[4, 0] = starts[4, 2] = True  # resets at times 2 and 4 cut the sequence
    parts = 2 if cell is nn.LSTM else 1
    state = tuple(torch.randn(3, 2, 4) for _ in range(parts))
    outputs, final = scan_rnn(rnn, features, state, starts)

    expected, step_state = [], state
    for t in range(6):
        step_state = tuple(torch.where(starts[t][:, None, None], 0.0, part) for part in step_state)
        output, step_state = scan_rnn(rnn, features[t : t + 1], step_state, torch.zeros(1, 3, dtype=torch.bool))
        expected.append(output)
    torch.testing.assert_close(outputs, torch.cat(expected))
    for part, expected_part in zip(final, step_state, strict=True):
        torch.testing.assert_close(part, expected_part)
    assert not torch.allclose(outputs[0, 1], scan_rnn(rnn, features[:1], state, starts[:1] | True)[0][0, 1])


def test_the_default_actor_critic_keeps_the_contract_with_a_state_per_env():
    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    policy = RecurrentActorCritic(space, outputs=3, cell="gru", hidden_size=5, num_layers=2, hidden_sizes=(7,))
    state = policy.initial_state(4, "cpu")
    assert [tuple(part.shape) for part in state] == [(4, 2, 5)]
    outputs, values, state = policy(torch.zeros(6, 4, 2), state, torch.zeros(6, 4, dtype=torch.bool))
    assert outputs.shape == (6, 4, 3) and values.shape == (6, 4) and state[0].shape == (4, 2, 5)
