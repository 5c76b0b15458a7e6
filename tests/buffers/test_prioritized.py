"""PrioritizedReplayBuffer against hand-computed priorities, draws and importance weights."""

from __future__ import annotations

import pytest
import torch

from rl_lightning.buffers import PrioritizedReplayBuffer, ReplayBuffer
from rl_lightning.errors import ConfigurationError
from tests.buffers.test_replay import TWO_EPISODE_ENDS, Step, add, assert_same_batch, saved_and_loaded, stored_rows

F, T = False, True


def make_buffer(
    capacity: int = 100, num_envs: int = 1, n_step: int = 1, seed: int = 0, **priority_args: float
) -> PrioritizedReplayBuffer:
    return PrioritizedReplayBuffer(
        capacity, (1,), torch.float32, (), torch.long, num_envs, n_step, gamma=0.5, seed=seed, **priority_args
    )


def add_counting(buffer: ReplayBuffer, first: int, count: int) -> None:
    """Add ``count`` one-env steps whose observations are ``first, first + 1, ...`` (next observation + 1)."""
    for k in range(first, first + count):
        add(buffer, Step([k], [0], [k + 1], [F], [F], [T]))


def priorities(buffer: PrioritizedReplayBuffer) -> list[float]:
    """The stored ``p^alpha``, in storage order."""
    return buffer.tree.leaves[: len(buffer)].tolist()


def test_new_transitions_get_the_largest_priority_seen_so_far() -> None:
    buffer = make_buffer(alpha=0.5, epsilon=1.0)
    add_counting(buffer, 0, 3)
    assert priorities(buffer) == [1, 1, 1]  # before any update: 1
    buffer.update_priorities(torch.tensor([0, 2]), torch.tensor([3.0, -8.0]))  # (|p| + 1) ** 0.5: 2 and 3
    assert priorities(buffer) == [2, 1, 3]
    add_counting(buffer, 3, 1)
    buffer.update_priorities(torch.tensor([2]), torch.tensor([0.0]))  # lowered: the largest seen stays 3
    add_counting(buffer, 4, 1)
    assert priorities(buffer) == [2, 1, 1, 3, 3]


def test_weights_are_the_normalised_inverse_probabilities_of_the_draws() -> None:
    buffer = make_buffer(capacity=4, alpha=1.0, epsilon=1.0)
    add_counting(buffer, 0, 4)
    buffer.update_priorities(torch.arange(4), torch.tensor([0.0, 1.0, 3.0, 7.0]))  # p = 1, 2, 4, 8: total 15
    # 15 draws, one in each unit slice of the total: 1 of transition 0, 2 of 1, 4 of 2, 8 of 3, whatever the seed.
    batch = buffer.sample(15, beta=0.5)
    assert batch.indices.tolist() == [0, 1, 1, 2, 2, 2, 2] + [3] * 8
    assert torch.equal(batch.observations[:, 0], batch.indices.float())  # the batch is the transitions drawn
    # w_i = (N * P(i))^-beta / max_j w_j with N = 4, P(i) = p_i / 15: (4 * p_i / 15)^-0.5 / (4 / 15)^-0.5 = p_i^-0.5.
    expected = torch.tensor([1.0] + [2**-0.5] * 2 + [0.5] * 4 + [8**-0.5] * 8)
    assert batch.weights.dtype == torch.float32
    torch.testing.assert_close(batch.weights, expected)
    assert buffer.sample(15, beta=0.0).weights.tolist() == [1.0] * 15  # no correction
    buffer.beta = 1.0
    torch.testing.assert_close(buffer.sample(15).weights, expected**2)


def test_weights_are_normalised_by_the_largest_weight_of_the_batch_not_of_the_buffer() -> None:
    buffer = make_buffer(capacity=4, alpha=1.0, epsilon=1.0, seed=3)
    add_counting(buffer, 0, 4)
    buffer.update_priorities(torch.arange(4), torch.tensor([0.0, 1.0, 3.0, 7.0]))  # p = 1, 2, 4, 8
    priority = torch.tensor([1.0, 2.0, 4.0, 8.0])
    batches_without_the_rarest = 0
    for _ in range(20):
        batch = buffer.sample(2, beta=1.0)  # slices [0, 7.5) and [7.5, 15): the second always draws 3
        drawn = priority[batch.indices]
        torch.testing.assert_close(batch.weights, drawn.min() / drawn)
        batches_without_the_rarest += 0 not in batch.indices.tolist()
    assert batches_without_the_rarest >= 10  # where the buffer's largest weight (1 / p_0) would differ


def test_draws_follow_the_priorities_to_the_power_alpha() -> None:
    buffer = make_buffer(capacity=8, alpha=0.5, epsilon=1e-6, seed=5)
    add_counting(buffer, 0, 4)
    buffer.update_priorities(torch.arange(4), torch.tensor([1.0, 4.0, 9.0, 16.0]))  # p^0.5 ~ 1, 2, 3, 4
    draws = torch.cat([buffer.sample(6).indices for _ in range(2000)])
    counts = torch.bincount(draws, minlength=4).double()
    expected = 12000 * torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64) / 10
    assert counts.sum() == 12000
    assert ((counts - expected) ** 2 / expected).sum().item() < 16.3  # chi-square, 0.999 quantile, 3 degrees


def test_alpha_zero_draws_uniformly() -> None:
    buffer = make_buffer(capacity=8, alpha=0.0)
    add_counting(buffer, 0, 4)
    buffer.update_priorities(torch.arange(4), torch.tensor([0.0, 10.0, 100.0, 1000.0]))
    assert priorities(buffer) == [1, 1, 1, 1]
    assert buffer.sample(8).indices.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_a_transition_drawn_twice_keeps_its_largest_priority() -> None:
    buffer = make_buffer(capacity=8, alpha=1.0, epsilon=0.5)
    add_counting(buffer, 0, 3)
    buffer.update_priorities(torch.tensor([1, 0, 1, 1, 0]), torch.tensor([3.5, 1.5, 0.5, -1.5, 2.5]))
    assert priorities(buffer) == [3, 4, 1]
    assert buffer.tree.total().item() == 8.0


def test_n_step_transitions_of_several_envs_wrap_around_with_their_priorities() -> None:
    buffer = make_buffer(capacity=6, num_envs=2, n_step=3, alpha=1.0, epsilon=1.0)
    for step in TWO_EPISODE_ENDS[:4]:  # 6 transitions (see test_replay): the ring is full, at position 0
        add(buffer, step)
    buffer.update_priorities(torch.arange(6), torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    assert priorities(buffer) == [2, 3, 4, 5, 6, 7]
    for step in TWO_EPISODE_ENDS[4:]:  # t5 stores env 0's 3-step transition of 10 at position 0
        add(buffer, step)
    assert (len(buffer), buffer.position) == (6, 1)
    assert priorities(buffer) == [7, 3, 4, 5, 6, 7]  # the new one has the largest priority seen, 7
    assert stored_rows(buffer)[0] == (10, 10, 1 + 0.5 * 2 + 0.25 * 3, 13, 0, 0.5**3)
    batch = buffer.sample(32)
    rows = stored_rows(buffer)
    for k, index in enumerate(batch.indices.tolist()):  # each sampled row is the stored transition at its index
        assert (batch.observations[k, 0].item(), batch.rewards[k].item()) == (rows[index][0], rows[index][2])


def test_state_dict_round_trip_continues_identically() -> None:
    original = make_buffer(capacity=6, num_envs=2, n_step=3, seed=1, alpha=0.7)
    for step in TWO_EPISODE_ENDS[:4]:
        add(original, step)
    original.update_priorities(torch.tensor([0, 3, 3]), torch.tensor([4.0, 0.1, 2.0]))
    restored = make_buffer(capacity=6, num_envs=2, n_step=3, seed=99, alpha=0.7, beta=1.0)
    restored.load_state_dict(saved_and_loaded(original.state_dict()))
    assert restored.beta == original.beta == 0.4
    assert priorities(restored) == priorities(original)
    for step in TWO_EPISODE_ENDS[4:]:  # the new transition gets the restored largest priority, (4 + eps)^0.7
        add(original, step)
        add(restored, step)
    assert priorities(restored) == priorities(original)
    assert priorities(original)[0] == pytest.approx(4**0.7)
    for _ in range(3):
        expected = original.sample(8)
        assert_same_batch(expected, restored.sample(8))
        for buffer in (original, restored):
            buffer.update_priorities(expected.indices, expected.rewards)


def test_a_state_without_storage_leaves_an_empty_buffer_that_fills_at_the_largest_priority() -> None:
    original = make_buffer(alpha=1.0, epsilon=1.0)
    add_counting(original, 0, 3)
    original.update_priorities(torch.tensor([1]), torch.tensor([4.0]))
    restored = make_buffer(alpha=1.0, epsilon=1.0)
    add_counting(restored, 0, 5)
    restored.load_state_dict(saved_and_loaded(original.state_dict(include_storage=False)))
    assert (len(restored), restored.tree.total().item()) == (0, 0.0)
    add_counting(restored, 10, 2)
    assert priorities(restored) == [5, 5]


def test_the_state_of_a_uniform_buffer_loads_with_equal_priorities() -> None:
    uniform = ReplayBuffer(8, (1,), torch.float32, (), torch.long, seed=0)
    add_counting(uniform, 0, 3)
    buffer = make_buffer(capacity=8, alpha=1.0, epsilon=1.0)
    add_counting(buffer, 0, 5)
    buffer.update_priorities(torch.tensor([4]), torch.tensor([9.0]))
    buffer.load_state_dict(uniform.state_dict())
    assert priorities(buffer) == [1, 1, 1]
    assert buffer.tree.total().item() == 3.0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"alpha": 1.5}, r"alpha=1.5 must lie in \[0, 1\]\.$"),
        ({"alpha": -0.1}, r"alpha=-0.1 must lie in \[0, 1\]\.$"),
        ({"beta": 2}, r"beta=2 must lie in \[0, 1\]\.$"),
        ({"epsilon": 0.0}, r"epsilon=0.0 must be > 0, so that no transition has probability 0\."),
    ],
)
def test_bad_exponents_are_refused_with_one_clear_message(arguments: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{message}"):
        make_buffer(**arguments)


def test_a_gpu_buffer_is_refused_where_deterministic_algorithms_are_enforced() -> None:
    # Refused before anything is allocated, so this runs without a GPU too.
    torch.use_deterministic_algorithms(True)
    try:
        with pytest.raises(ConfigurationError, match=r"torch.cumsum, which has no deterministic CUDA kernel"):
            PrioritizedReplayBuffer(10, (1,), torch.float32, (), torch.long, device="cuda")
        make_buffer()  # on the CPU cumsum is deterministic
    finally:
        torch.use_deterministic_algorithms(False)


def test_a_bad_beta_is_refused_when_set_or_passed() -> None:
    buffer = make_buffer()
    add_counting(buffer, 0, 2)
    with pytest.raises(ConfigurationError, match=r"beta=-1 must lie in \[0, 1\]"):
        buffer.beta = -1
    with pytest.raises(ConfigurationError, match=r"beta=1.01 must lie in \[0, 1\]"):
        buffer.sample(2, beta=1.01)
    assert buffer.beta == 0.4


def test_updating_without_indices_is_refused() -> None:
    buffer = make_buffer()
    add_counting(buffer, 0, 2)
    with pytest.raises(ValueError, match=r"needs the indices of a batch of this buffer"):
        buffer.update_priorities(None, torch.ones(2))


def test_sampling_an_empty_buffer_raises() -> None:
    with pytest.raises(RuntimeError, match="empty replay buffer"):
        make_buffer().sample(1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_on_a_gpu_adding_drawing_and_updating_never_wait_for_the_host() -> None:
    buffer = PrioritizedReplayBuffer(1000, (4,), torch.float32, (), torch.long, num_envs=2, device="cuda", seed=0)
    observations = torch.ones(2, 4, device="cuda")
    no_done = torch.zeros(2, dtype=torch.bool)  # the env's flags come from the host
    actions, rewards = torch.zeros(2, dtype=torch.long, device="cuda"), torch.ones(2, device="cuda")
    buffer.add(observations, actions, rewards, observations, no_done, no_done)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            buffer.add(observations, actions, rewards, observations, no_done, no_done)
            batch = buffer.sample(64)
            buffer.update_priorities(batch.indices, batch.rewards * 3.0)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(buffer) == 8
    assert batch.indices.min().item() >= 0 and batch.indices.max().item() < 8
    assert buffer.max_priority.item() == pytest.approx(3.0**0.6)
