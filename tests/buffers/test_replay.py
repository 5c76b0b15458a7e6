"""ReplayBuffer against hand-computed contents: wrap-around, dtypes, masks, sampling, checkpoints, n-step returns."""

from __future__ import annotations

import io
from typing import NamedTuple

import pytest
import torch

from rl_lightning.buffers import ReplayBatch, ReplayBuffer


class Step(NamedTuple):
    """One step of every env, in the order of ``ReplayBuffer.add``'s arguments."""

    observations: list[float]
    rewards: list[float]
    next_observations: list[float]
    terminations: list[bool]
    truncations: list[bool]
    valid: list[bool]


# Two envs stepped together. Env 0 plays an episode 0 -> 1 -> 2 with rewards 1, 2 that terminates at t1;
# t2 is its autoreset step (invalid); its next episode is 10 -> 11 -> 12 -> 13 with rewards 1, 2, 3.
# Env 1 plays 100 -> ... -> 104 with rewards 1, 2, 3, 4, truncated by a time limit at t3; t4 is its
# autoreset step; its next episode starts 200 -> 201 with reward 1.
F, T = False, True
TWO_EPISODE_ENDS = [
    Step([0, 100], [1, 1], [1, 101], [F, F], [F, F], [T, T]),  # t0
    Step([1, 101], [2, 2], [2, 102], [T, F], [F, F], [T, T]),  # t1: env 0 terminates
    Step([2, 102], [0, 3], [10, 103], [F, F], [F, F], [F, T]),  # t2: env 0 autoresets
    Step([10, 103], [1, 4], [11, 104], [F, F], [F, T], [T, T]),  # t3: env 1 is truncated
    Step([11, 104], [2, 0], [12, 200], [F, F], [F, F], [T, F]),  # t4: env 1 autoresets
    Step([12, 200], [3, 1], [13, 201], [F, F], [F, F], [T, T]),  # t5
]


def add_arguments(step: Step) -> tuple[torch.Tensor, ...]:
    """``ReplayBuffer.add``'s arguments for ``step``; each env's action is its observation, so that stored actions
    can be traced."""
    observations = torch.tensor(step.observations).reshape(-1, 1)
    return (
        observations,
        observations.long().reshape(-1),
        torch.tensor(step.rewards),
        torch.tensor(step.next_observations).reshape(-1, 1),
        torch.tensor(step.terminations),
        torch.tensor(step.truncations),
        torch.tensor(step.valid),
    )


def add(buffer: ReplayBuffer, step: Step) -> int:
    """Add ``step`` (see :func:`add_arguments`)."""
    return buffer.add(*add_arguments(step))


def make_buffer(capacity: int = 100, num_envs: int = 2, n_step: int = 1, seed: int = 0) -> ReplayBuffer:
    return ReplayBuffer(capacity, (1,), torch.float32, (), torch.long, num_envs, n_step, gamma=0.5, seed=seed)


def stored_rows(buffer: ReplayBuffer) -> list[tuple[float, ...]]:
    """Stored transitions in storage order as (observation, action, reward, next obs, termination, discount)."""
    storage = {name: tensor[: len(buffer)] for name, tensor in buffer.storage.items()}
    columns = [
        storage["observations"][:, 0],
        storage["actions"].float(),
        storage["rewards"],
        storage["next_observations"][:, 0],
        storage["terminations"],
        storage["discounts"],
    ]
    return [tuple(row) for row in torch.stack(columns, dim=1).tolist()]


def test_one_step_transitions_are_the_valid_steps_in_order() -> None:
    buffer = make_buffer(n_step=1)
    counts = [add(buffer, step) for step in TWO_EPISODE_ENDS]
    # Every valid step, as it came: reward r, discount gamma = 0.5, termination only for env 0 at t1.
    assert counts == [2, 2, 1, 2, 1, 2]
    assert stored_rows(buffer) == [
        (0, 0, 1, 1, 0, 0.5), (100, 100, 1, 101, 0, 0.5),  # t0
        (1, 1, 2, 2, 1, 0.5), (101, 101, 2, 102, 0, 0.5),  # t1
        (102, 102, 3, 103, 0, 0.5),  # t2
        (10, 10, 1, 11, 0, 0.5), (103, 103, 4, 104, 0, 0.5),  # t3: truncation keeps the bootstrap
        (11, 11, 2, 12, 0, 0.5),  # t4
        (12, 12, 3, 13, 0, 0.5), (200, 200, 1, 201, 0, 0.5),  # t5
    ]  # fmt: skip


def test_three_step_returns_are_cut_at_episode_ends_and_never_cross_them() -> None:
    buffer = make_buffer(n_step=3)
    counts = [add(buffer, step) for step in TWO_EPISODE_ENDS]
    # gamma = 0.5. A transition is stored once 3 rewards follow it, or when its episode ends first.
    assert counts == [0, 2, 1, 3, 0, 1]
    assert sorted(stored_rows(buffer)) == sorted([
        # t1, env 0 terminates: both pending steps flushed, no bootstrap (termination 1), next obs the final 2.
        (0, 0, 1 + 0.5 * 2, 2, 1, 0.5**2),
        (1, 1, 2, 2, 1, 0.5),
        # t2: env 1's first step has its 3 rewards.
        (100, 100, 1 + 0.5 * 2 + 0.25 * 3, 103, 0, 0.5**3),
        # t3, env 1 is truncated: flushed with the bootstrap kept (termination 0) from the final obs 104.
        (101, 101, 2 + 0.5 * 3 + 0.25 * 4, 104, 0, 0.5**3),
        (102, 102, 3 + 0.5 * 4, 104, 0, 0.5**2),
        (103, 103, 4, 104, 0, 0.5),
        # t5: env 0's new episode restarts the window after its autoreset step (rewards 1, 2, 3).
        (10, 10, 1 + 0.5 * 2 + 0.25 * 3, 13, 0, 0.5**3),
    ])  # fmt: skip
    # Nothing from an autoreset step (observation 2 or 104) was stored.
    assert {row[0] for row in stored_rows(buffer)}.isdisjoint({2.0, 104.0})


def test_wrap_around_overwrites_the_oldest_transitions() -> None:
    buffer = make_buffer(capacity=5, num_envs=1)
    for k in range(7):
        add(buffer, Step([k], [k], [k + 1], [F], [F], [T]))
    # Steps 0..4 fill positions 0..4; steps 5 and 6 overwrite positions 0 and 1.
    assert [row[0] for row in stored_rows(buffer)] == [5, 6, 2, 3, 4]
    assert [row[3] for row in stored_rows(buffer)] == [6, 7, 3, 4, 5]
    assert (len(buffer), buffer.position) == (5, 2)


def test_vectorized_add_wraps_around_inside_one_step() -> None:
    buffer = make_buffer(capacity=5, num_envs=2)
    for k in range(3):
        add(buffer, Step([10 * k, 10 * k + 1], [0, 0], [0, 0], [F, F], [F, F], [T, T]))
    # Positions 0-1: step 0 (0, 1); 2-3: step 1 (10, 11); step 2 writes 20 at 4, then 21 wraps to 0.
    assert [row[0] for row in stored_rows(buffer)] == [21, 1, 10, 11, 20]
    assert (len(buffer), buffer.position) == (5, 1)


def test_n_step_flush_wraps_around_the_end_of_the_ring() -> None:
    buffer = make_buffer(capacity=3, num_envs=1, n_step=3)
    # One episode 0 -> 1 -> 2 -> 3 -> 4 with rewards 1, 2, 3, 4, terminating at the 4th step.
    for k in range(4):
        add(buffer, Step([k], [k + 1], [k + 1], [k == 3], [F], [T]))
    # Step 0 is stored at position 0 at t2; the flush at t3 writes 3 transitions at positions 1, 2, 0.
    assert sorted(stored_rows(buffer)) == [
        (1, 1, 2 + 0.5 * 3 + 0.25 * 4, 4, 1, 0.5**3),
        (2, 2, 3 + 0.5 * 4, 4, 1, 0.5**2),
        (3, 3, 4, 4, 1, 0.5),
    ]
    assert (len(buffer), buffer.position) == (3, 1)


def test_invalid_envs_contribute_nothing() -> None:
    buffer = make_buffer(num_envs=3)
    count = add(buffer, Step([0, 1, 2], [1, 1, 1], [3, 4, 5], [F, F, F], [F, F, F], [T, F, T]))
    assert count == 2
    assert [row[0] for row in stored_rows(buffer)] == [0, 2]


def test_uint8_observations_and_long_actions_keep_their_dtype_and_values() -> None:
    buffer = ReplayBuffer(4, (2, 2), torch.uint8, (), torch.long, num_envs=1, seed=0)
    image = torch.tensor([[[0, 127], [254, 255]]], dtype=torch.uint8)
    big_action = torch.tensor([2**40])  # beyond float32's exact integers (2**24)
    buffer.add(image, big_action, torch.ones(1), 255 - image, torch.zeros(1), torch.zeros(1))
    assert buffer.storage["observations"].dtype == torch.uint8
    batch = buffer.sample(3)
    assert batch.observations.dtype == batch.next_observations.dtype == torch.uint8
    assert batch.actions.dtype == torch.long
    assert torch.equal(batch.observations[0], image[0])
    assert torch.equal(batch.next_observations[0], torch.tensor([[255, 128], [1, 0]], dtype=torch.uint8))
    assert batch.actions.tolist() == [2**40] * 3


def filled_buffer(seed: int) -> ReplayBuffer:
    buffer = make_buffer(capacity=50, num_envs=1, seed=seed)
    for k in range(20):
        add(buffer, Step([k], [0], [k + 1], [F], [F], [T]))
    return buffer


def test_sampling_is_reproducible_with_the_same_seed() -> None:
    first, second, other = filled_buffer(seed=7), filled_buffer(seed=7), filled_buffer(seed=8)
    for _ in range(3):
        batch = first.sample(16)
        assert torch.equal(batch.observations, second.sample(16).observations)
        assert not torch.equal(batch.observations, other.sample(16).observations)
        # Each sampled transition is a stored one: next observation = observation + 1.
        assert torch.equal(batch.next_observations, batch.observations + 1)


def test_sampling_an_empty_buffer_raises() -> None:
    with pytest.raises(RuntimeError, match="empty replay buffer"):
        make_buffer().sample(1)


def assert_same_batch(expected: ReplayBatch, got: ReplayBatch) -> None:
    """Every field of ``got`` equals that of ``expected``, tensor for tensor or None for None."""
    for name, want, have in zip(ReplayBatch._fields, expected, got, strict=True):
        assert (want is None) == (have is None), name
        assert want is None or torch.equal(want, have), name


def test_uniform_batches_carry_no_indices_or_weights_and_priorities_change_nothing() -> None:
    buffer, twin = filled_buffer(seed=3), filled_buffer(seed=3)
    batch = buffer.sample(4, beta=0.5)  # beta is taken, and means nothing to uniform draws
    assert (batch.indices, batch.weights) == (None, None)
    buffer.update_priorities(batch.indices, torch.full((4,), 100.0))
    twin.sample(4)
    assert_same_batch(twin.sample(16), buffer.sample(16))


def saved_and_loaded(state: dict) -> dict:
    """``state`` after a round trip through torch.save and a weights-only torch.load, as in a checkpoint."""
    stream = io.BytesIO()
    torch.save(state, stream)
    stream.seek(0)
    return torch.load(stream, weights_only=True)


def test_state_dict_round_trip_continues_identically() -> None:
    original = make_buffer(capacity=6, n_step=3, seed=1)
    for step in TWO_EPISODE_ENDS[:4]:
        add(original, step)
    restored = make_buffer(capacity=6, n_step=3, seed=99)  # its own seed is overwritten by the loaded one
    restored.load_state_dict(saved_and_loaded(original.state_dict()))
    assert stored_rows(restored) == stored_rows(original)

    # t4 and t5 complete env 0's pending window (saved mid-return) and wrap the 6-transition ring.
    for step in TWO_EPISODE_ENDS[4:]:
        assert add(restored, step) == add(original, step)
    assert (len(restored), restored.position) == (len(original), original.position) == (6, 1)
    for name, tensor in original.storage.items():
        assert torch.equal(restored.storage[name], tensor), name
    for _ in range(3):
        assert_same_batch(original.sample(8), restored.sample(8))


def test_state_dict_without_storage_keeps_the_pending_n_step_window() -> None:
    original = make_buffer(n_step=3)
    for step in TWO_EPISODE_ENDS[:4]:
        add(original, step)
    restored = make_buffer(n_step=3)
    restored.load_state_dict(saved_and_loaded(original.state_dict(include_storage=False)))
    assert len(restored) == 0
    for step in TWO_EPISODE_ENDS[4:]:
        add(restored, step)
    # Only the return that was pending at the save completes: env 0's 10 with rewards 1, 2, 3.
    assert stored_rows(restored) == [(10, 10, 1 + 0.5 * 2 + 0.25 * 3, 13, 0, 0.5**3)]


def test_dropping_unfinished_steps_keeps_them_out_of_the_next_episode() -> None:
    buffer = make_buffer(n_step=3)
    for step in TWO_EPISODE_ENDS[:4]:
        add(buffer, step)
    stored = stored_rows(buffer)
    # The envs start new episodes here (t4, t5 stand for them): env 0's pending 10 never completes its return.
    buffer.drop_unfinished()
    for step in TWO_EPISODE_ENDS[4:]:
        add(buffer, step)
    assert stored_rows(buffer) == stored  # 11 and 12 of the new episode still wait for their third reward


def test_a_full_buffer_is_saved_without_a_copy() -> None:
    buffer = make_buffer(capacity=4, n_step=1)
    for step in TWO_EPISODE_ENDS[:2]:
        add(buffer, step)
    assert buffer.state_dict()["storage"]["observations"].data_ptr() == buffer.storage["observations"].data_ptr()


def test_capacity_below_one_n_step_window_per_env_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity=5 must hold at least num_envs \\* n_step = 6"):
        make_buffer(capacity=5, num_envs=2, n_step=3)


@pytest.mark.parametrize("n_step", [1, 3])
def test_each_transition_keeps_the_action_mask_of_its_next_observation(n_step: int) -> None:
    buffer = ReplayBuffer(100, (1,), torch.float32, (), torch.long, 2, n_step, gamma=0.5, action_mask_size=2)
    for step in TWO_EPISODE_ENDS:
        observations = torch.tensor(step.observations).reshape(-1, 1)
        next_observations = torch.tensor(step.next_observations).reshape(-1, 1)
        # Action 1 is valid where the next observation is odd: a mask that says which step it came from.
        next_masks = torch.cat([torch.ones(2, 1, dtype=torch.bool), next_observations.long() % 2 == 1], dim=1)
        buffer.add(
            observations, observations.long().reshape(-1), torch.tensor(step.rewards), next_observations,
            torch.tensor(step.terminations), torch.tensor(step.truncations), torch.tensor(step.valid), next_masks,
        )
    stored = buffer.storage["next_action_masks"][: len(buffer)]
    next_observations = buffer.storage["next_observations"][: len(buffer), 0].long()
    assert stored[:, 0].all()
    assert stored[:, 1].tolist() == (next_observations % 2 == 1).tolist()
    assert stored[:, 1].any() and not stored[:, 1].all()
    assert buffer.sample(4).next_action_masks.shape == (4, 2)


def test_masks_must_be_given_exactly_when_the_buffer_keeps_them() -> None:
    step = TWO_EPISODE_ENDS[0]
    with_masks = ReplayBuffer(10, (1,), torch.float32, (), torch.long, 2, action_mask_size=2)
    with pytest.raises(ValueError, match="next_action_masks exactly when"):
        add(with_masks, step)
    with pytest.raises(ValueError, match="next_action_masks exactly when"):
        make_buffer().add(*add_arguments(step), next_action_masks=torch.ones(2, 2, dtype=torch.bool))


# ---------------------------------------------------------------------------------------------- dict observations
DICT_SHAPES = {"flag": (1,), "image": (1, 2, 2), "target": ()}
DICT_DTYPES = {"flag": torch.float32, "image": torch.uint8, "target": torch.long}


def dict_observations(t: int) -> dict[str, torch.Tensor]:
    """Step ``t``'s observations of 2 envs, every key saying ``t`` and the env: ``10 t + env`` (the flag halved)."""
    values = torch.tensor([10 * t, 10 * t + 1])
    return {
        "flag": (values / 2).float().reshape(2, 1),
        "image": values.to(torch.uint8).reshape(2, 1, 1, 1).expand(2, 1, 2, 2),
        "target": values,
    }


def test_dict_observations_are_stored_key_by_key_in_their_own_dtype_and_gathered_by_row() -> None:
    """2 envs, 3-step returns of rewards t (gamma 0.5): the transition of step t has return t + 0.5 (t + 1) + 0.25
    (t + 2) and next observation t + 3; every key of a sampled row must say the same step and env."""
    buffer = ReplayBuffer(16, DICT_SHAPES, DICT_DTYPES, (), torch.long, num_envs=2, n_step=3, gamma=0.5, seed=0)
    assert {key: t.dtype for key, t in buffer.storage["observations"].items()} == DICT_DTYPES
    assert buffer.storage["next_observations"]["image"].shape == (16, 1, 2, 2)
    no = torch.zeros(2, dtype=torch.bool)
    for t in range(5):
        buffer.add(dict_observations(t), torch.zeros(2, dtype=torch.long), torch.full((2,), float(t)),
                   dict_observations(t + 1), no, no)  # fmt: skip
    assert len(buffer) == 6  # steps 0, 1 and 2 of both envs
    assert buffer.nbytes == 16 * 2 * (4 + 4 + 8) + 16 * (8 + 4 + 4 + 4)
    batch = buffer.sample(64)
    assert batch.observations["image"].dtype == torch.uint8 and batch.next_observations["target"].dtype == torch.long
    code = batch.observations["target"]
    step, env = code // 10, code % 10
    assert torch.equal(batch.observations["image"][:, 0, 1, 1].long(), code)
    assert torch.equal(batch.observations["flag"][:, 0], code / 2)
    assert torch.equal(batch.next_observations["target"], code + 30)
    assert torch.equal(batch.next_observations["image"][:, 0, 0, 0].long(), code + 30)
    assert torch.equal(batch.rewards, step + 0.5 * (step + 1) + 0.25 * (step + 2))
    assert set(env.tolist()) == {0, 1} and set(step.tolist()) == {0, 1, 2}

    restored = ReplayBuffer(16, DICT_SHAPES, DICT_DTYPES, (), torch.long, num_envs=2, n_step=3, gamma=0.5, seed=1)
    restored.load_state_dict(io_round_trip(buffer.state_dict()))
    for t in range(5, 7):  # the n-step window was saved too: steps 3 and 4 complete their returns
        for each in (buffer, restored):
            each.add(dict_observations(t), torch.zeros(2, dtype=torch.long), torch.full((2,), float(t)),
                     dict_observations(t + 1), no, no)  # fmt: skip
    expected, got = buffer.sample(32), restored.sample(32)
    for key in DICT_SHAPES:
        assert torch.equal(got.observations[key], expected.observations[key]), key
        assert torch.equal(got.next_observations[key], expected.next_observations[key]), key


def io_round_trip(state: dict) -> dict:
    """``state`` written with ``torch.save`` and read back as a checkpoint would be."""
    stream = io.BytesIO()
    torch.save(state, stream)
    stream.seek(0)
    return torch.load(stream, weights_only=True)
