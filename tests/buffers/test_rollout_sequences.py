"""The rollout buffer's chunks for recurrent policies: steps, masks and start states of a hand-made rollout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl_lightning.buffers import RolloutBuffer


def chunked_rollout(sequence_length: int = 2) -> RolloutBuffer:
    """5 steps of 2 envs in chunks of 2 steps (the third of each env padded).

    Env 0 terminates at step 1, so step 2 is its autoreset step (no transition) and step 3 starts an episode; env 1
    plays on. Step ``t`` of env ``e`` has observation ``[10 t + e]``, action ``2 t + e`` and state ``[100 t + e]``.
    """
    rollout = RolloutBuffer(
        5, 2, (1,), torch.float32, (), torch.long, state_shapes=[(1,)], sequence_length=sequence_length
    )
    for t in range(5):
        rollout.add(
            torch.tensor([[10.0 * t], [10.0 * t + 1]]),
            torch.tensor([2 * t, 2 * t + 1]),
            torch.ones(2),
            torch.zeros(2),
            torch.zeros(2),
            np.array([t == 1, False]),
            np.array([False, False]),
            np.array([t != 2, True]),
            policy_state=(torch.tensor([[100.0 * t], [100.0 * t + 1]]),),
            episode_starts=np.array([t in (0, 3), t == 0]),
        )
    rollout.compute_returns_and_advantages(torch.zeros(2))
    return rollout


def test_chunks_hold_whole_runs_of_steps_with_their_start_states_and_masks():
    rollout = chunked_rollout()
    # 3 chunks per env: env 0's are 0, 1, 2 (steps 0-1, 2-3, 4 + padding), env 1's are 3, 4, 5.
    assert rollout.chunk_indices().tolist() == [0, 1, 2, 3, 4, 5]
    batch = rollout.sequence_batch(torch.tensor([1, 2, 5]))
    sequences = batch.sequences
    # Columns: env 0 steps 2-3, env 0 step 4 and padding, env 1 step 4 and padding (time first).
    assert sequences.observations.squeeze(-1).tolist() == [[20.0, 40.0, 41.0], [30.0, 40.0, 41.0]]
    assert sequences.mask.tolist() == [[False, True, True], [True, False, False]]  # autoreset step, padding
    assert sequences.episode_starts.tolist() == [[False, False, False], [True, False, False]]
    assert [state.squeeze(-1).tolist() for state in sequences.start_states] == [[200.0, 400.0, 401.0]]
    # The transitions are the masked steps, in the order of the flattened (time, chunk) positions.
    assert sequences.positions.tolist() == [1, 2, 3]
    assert batch.observations.squeeze(-1).tolist() == [40.0, 41.0, 30.0]
    assert batch.actions.tolist() == [8, 9, 6]
    assert batch.sequences is not None and batch.action_masks is None


def test_a_first_chunk_starts_from_the_state_the_policy_acted_from():
    batch = chunked_rollout().sequence_batch(torch.tensor([0, 3]))
    assert batch.sequences.mask.all()
    assert batch.sequences.episode_starts.tolist() == [[True, True], [False, False]]
    assert batch.sequences.start_states[0].squeeze(-1).tolist() == [0.0, 1.0]
    assert batch.actions.tolist() == [0, 1, 2, 3]


def test_a_chunk_without_a_transition_is_in_no_minibatch():
    # Chunks of one step: env 0's third (its autoreset step) holds nothing to learn from.
    assert chunked_rollout(sequence_length=1).chunk_indices().tolist() == [0, 1, 3, 4, 5, 6, 7, 8, 9]


def test_states_are_given_exactly_when_the_buffer_keeps_them():
    keeping = RolloutBuffer(2, 1, (1,), torch.float32, (), torch.long, state_shapes=[(1,)])
    plain = RolloutBuffer(2, 1, (1,), torch.float32, (), torch.long)
    step = (torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), torch.zeros(1), torch.zeros(1), torch.zeros(1))
    flags = (np.array([False]), np.array([False]), None)
    with pytest.raises(ValueError, match="policy_state exactly when"):
        keeping.add(*step, *flags)
    with pytest.raises(ValueError, match="policy_state exactly when"):
        plain.add(*step, *flags, policy_state=(torch.zeros(1, 1),), episode_starts=np.array([True]))
    assert keeping.sequence_length == 2  # the default: each env's whole rollout is one chunk
