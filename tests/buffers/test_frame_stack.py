"""The frame-stack replay buffer against the plain one, on random episodes of gymnasium's own frame stacker."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
import torch

from rl_lightning.buffers import (
    FrameStackReplayBuffer,
    PrioritizedFrameStackReplayBuffer,
    PrioritizedReplayBuffer,
    ReplayBuffer,
)
from rl_lightning.data import Collector
from tests.toy_envs import stacked_frames_vector_env

NUM_ENVS, STACK = 3, 4


def buffers(capacity: int, n_step: int, padding: str, episode_length: int = 32) -> tuple[ReplayBuffer, ReplayBuffer]:
    common = {"num_envs": NUM_ENVS, "n_step": n_step, "gamma": 0.9, "seed": 5}
    plain = ReplayBuffer(capacity, (STACK, 2, 3), torch.uint8, (), torch.long, **common)
    lean = FrameStackReplayBuffer(
        capacity, (2, 3), torch.uint8, STACK, padding, (), torch.long, episode_length=episode_length, **common
    )
    return plain, lean


def play(collector: Collector, steps: int, *targets: ReplayBuffer) -> None:
    """Random actions; every transition, autoreset steps included (marked invalid), goes to every target."""
    for _ in range(steps):
        transition = collector.step(torch.randint(2, (NUM_ENVS,)))
        for target in targets:
            target.add(*transition)


def assert_same_rows(plain: ReplayBuffer, lean: FrameStackReplayBuffer, index: torch.Tensor) -> None:
    lean_batch = lean.gather(index)
    for name, tensor in plain.storage.items():
        assert torch.equal(getattr(lean_batch, name), tensor[index]), name


@pytest.mark.parametrize("padding", ["reset", "zero"])
@pytest.mark.parametrize("n_step", [1, 3])
def test_identical_to_the_plain_buffer_across_episode_ends_and_wrap_around(padding: str, n_step: int) -> None:
    plain, lean = buffers(capacity=100, n_step=n_step, padding=padding)
    collector = Collector(stacked_frames_vector_env(NUM_ENVS, STACK, padding))
    collector.reset(seed=1)
    play(collector, 20, plain, lean)  # not yet full
    assert len(lean) == len(plain) > 0
    assert_same_rows(plain, lean, torch.arange(len(plain)))
    play(collector, 60, plain, lean)  # wrapped around, many episodes (terminated and truncated) within
    assert len(plain) == 100 and lean.sampleable == 100
    assert_same_rows(plain, lean, torch.arange(100))
    for plain_part, lean_part in zip(plain.sample(64), lean.sample(64)):
        assert (plain_part is None and lean_part is None) or torch.equal(plain_part, lean_part)
    # Each frame once: the frames kept are far fewer than the plain buffer's 2 * STACK per transition.
    assert lean.frames.shape[0] < 2 * 100
    collector.close()


def test_state_dict_resumes_the_same_buffer() -> None:
    lean = buffers(capacity=60, n_step=3, padding="reset")[1]
    collector = Collector(stacked_frames_vector_env(NUM_ENVS, STACK, "reset"))
    collector.reset(seed=2)
    play(collector, 30, lean)
    restored = buffers(capacity=60, n_step=3, padding="reset")[1]
    restored.load_state_dict(lean.state_dict())
    play(collector, 15, lean, restored)  # the n-step window and the current stacks carried over
    assert torch.equal(lean.gather(torch.arange(60)).observations, restored.gather(torch.arange(60)).observations)
    for saved_part, restored_part in zip(lean.sample(32), restored.sample(32)):
        assert (saved_part is None and restored_part is None) or torch.equal(saved_part, restored_part)
    collector.close()


def test_state_without_storage_keeps_the_frames_the_window_needs() -> None:
    plain, lean = buffers(capacity=60, n_step=3, padding="zero")
    collector = Collector(stacked_frames_vector_env(NUM_ENVS, STACK, "zero"))
    collector.reset(seed=3)
    play(collector, 30, plain, lean)
    plain_restored, lean_restored = buffers(capacity=60, n_step=3, padding="zero")
    plain_restored.load_state_dict(plain.state_dict(include_storage=False))
    lean_restored.load_state_dict(lean.state_dict(include_storage=False))
    play(collector, 10, plain_restored, lean_restored)
    assert len(lean_restored) == len(plain_restored) > 0
    assert_same_rows(plain_restored, lean_restored, torch.arange(len(plain_restored)))
    collector.close()


def test_short_episodes_drop_the_oldest_transitions_never_a_wrong_frame() -> None:
    # Episodes of about 2 steps, a ring sized for 32: frames run out before transitions do.
    plain, lean = buffers(capacity=90, n_step=1, padding="reset", episode_length=32)
    collector = Collector(stacked_frames_vector_env(NUM_ENVS, STACK, "reset", termination_probability=0.5))
    collector.reset(seed=4)
    play(collector, 150, plain, lean)
    assert 0 < lean.sampleable < len(lean) == 90
    newest = (torch.arange(lean.sampleable) + lean.position - lean.sampleable) % 90
    assert_same_rows(plain, lean, newest)
    batch = lean.sample(256)
    rows = plain.storage["observations"][newest]
    # Every sampled observation is one of the kept transitions' (an overwritten frame would make a new one).
    assert all((rows == observation).flatten(1).all(1).any() for observation in batch.observations)
    collector.close()


def test_restarted_envs_store_their_first_observations_whole() -> None:
    plain, lean = buffers(capacity=60, n_step=2, padding="reset")
    collector = Collector(stacked_frames_vector_env(NUM_ENVS, STACK, "reset"))
    collector.reset(seed=6)
    play(collector, 10, plain, lean)
    plain.drop_unfinished()
    lean.drop_unfinished()
    collector.reset(seed=7)
    play(collector, 10, plain, lean)
    assert_same_rows(plain, lean, torch.arange(len(plain)))
    collector.close()


# ---------------------------------------------------------------------------------------------- prioritized
def prioritized_buffers(
    capacity: int, n_step: int, episode_length: int = 32
) -> tuple[PrioritizedReplayBuffer, PrioritizedFrameStackReplayBuffer]:
    common = {"num_envs": NUM_ENVS, "n_step": n_step, "gamma": 0.9, "seed": 5, "alpha": 0.7, "beta": 0.5}
    plain = PrioritizedReplayBuffer(capacity, (STACK, 2, 3), torch.uint8, (), torch.long, **common)
    lean = PrioritizedFrameStackReplayBuffer(
        capacity, (2, 3), torch.uint8, STACK, "reset", (), torch.long, episode_length=episode_length, **common
    )
    return plain, lean


def learn(*targets: PrioritizedReplayBuffer, rounds: int = 3) -> None:
    """Draw batches and hand back priorities that depend on what was drawn (the mean pixel: any batch's
    function), the same for every target, checking that all draw the same batches."""
    for _ in range(rounds):
        batches = [target.sample(16) for target in targets]
        for batch in batches[1:]:
            for part, expected in zip(batch, batches[0], strict=True):
                assert (part is None and expected is None) or torch.equal(part, expected)
        for target, batch in zip(targets, batches, strict=True):
            target.update_priorities(batch.indices, batch.observations.float().mean((1, 2, 3)) + batch.rewards)


@pytest.mark.parametrize("n_step", [1, 3])
def test_prioritized_frame_stacks_draw_as_the_prioritized_plain_buffer(n_step: int) -> None:
    plain, lean = prioritized_buffers(capacity=60, n_step=n_step)
    collector = Collector(stacked_frames_vector_env(NUM_ENVS, STACK, "reset"))
    collector.reset(seed=8)
    for _ in range(8):  # random episodes, wrapping around the ring, learning between plays
        play(collector, 10, plain, lean)
        learn(plain, lean)
    assert len(lean) == lean.sampleable == 60
    assert torch.equal(plain.tree.leaves, lean.tree.leaves)
    assert len(set(lean.tree.leaves.tolist())) > 10  # the priorities moved apart
    collector.close()


def test_prioritized_frame_stacks_resume_from_their_state_dict() -> None:
    lean = prioritized_buffers(capacity=60, n_step=3)[1]
    collector = Collector(stacked_frames_vector_env(NUM_ENVS, STACK, "reset"))
    collector.reset(seed=9)
    play(collector, 30, lean)
    learn(lean)
    restored = prioritized_buffers(capacity=60, n_step=3)[1]
    restored.load_state_dict(lean.state_dict())
    for _ in range(2):
        play(collector, 10, lean, restored)
        learn(lean, restored)  # the same batches, priorities and weights
    assert torch.equal(lean.tree.leaves, restored.tree.leaves)
    collector.close()


def test_prioritized_frame_stacks_never_draw_a_transition_that_left_early() -> None:
    _, lean = prioritized_buffers(capacity=90, n_step=1, episode_length=32)
    collector = Collector(stacked_frames_vector_env(NUM_ENVS, STACK, "reset", termination_probability=0.5))
    collector.reset(seed=4)
    play(collector, 150, lean)  # episodes of about 2 steps: frames run out before transitions do
    assert 0 < lean.sampleable < len(lean) == 90
    kept = ((torch.arange(lean.sampleable) + lean.position - lean.sampleable) % 90).tolist()
    assert [i for i, p in enumerate(lean.tree.leaves.tolist()) if p > 0] == sorted(kept)
    assert set(lean.sample(256).indices.tolist()) <= set(kept)
    # A uniform frame-stack buffer's state loads with equal priorities for the kept transitions, 0 for the others.
    uniform = FrameStackReplayBuffer(90, (2, 3), torch.uint8, STACK, "reset", (), torch.long, num_envs=NUM_ENVS)
    uniform.load_state_dict(lean.state_dict())
    converted = prioritized_buffers(capacity=90, n_step=1, episode_length=32)[1]
    converted.load_state_dict(FrameStackReplayBuffer.state_dict(uniform))
    assert converted.tree.leaves.tolist() == [1.0 if i in kept else 0.0 for i in range(90)]
    collector.close()


# ------------------------------------------------------------------------------------------ uninitialised memory
@contextlib.contextmanager
def allocations_filled_with(fill: str) -> Iterator[None]:
    """``torch.empty`` gives tensors whose bytes are all 0 (``fill="zeros"``, memory fresh from the system) or random
    (``"garbage"``, as reused memory may hold): a buffer built in here shows whether it ever reads a byte it did not
    write."""
    real_empty, generator = torch.empty, torch.Generator().manual_seed(0)

    def empty(*args: Any, **kwargs: Any) -> torch.Tensor:
        tensor = real_empty(*args, **kwargs)
        raw = real_empty(0, dtype=torch.uint8).set_(tensor.untyped_storage())
        if fill == "garbage":
            raw.copy_(torch.randint(256, raw.shape, dtype=torch.uint8, generator=generator))
        else:
            raw.zero_()
        return tensor

    with mock.patch.object(torch, "empty", empty):
        yield


def zeroed_and_garbage(make: Callable[[], ReplayBuffer]) -> tuple[ReplayBuffer, ReplayBuffer]:
    with allocations_filled_with("zeros"):
        zeroed = make()
    with allocations_filled_with("garbage"):
        garbage = make()
    return zeroed, garbage


def assert_same(expected: Any, actual: Any, path: str = "") -> None:
    """Equal trees of dicts, lists, tuples (batches too), tensors (same dtype, shape and bytes) and plain values."""
    if isinstance(expected, torch.Tensor):
        assert expected.dtype == actual.dtype and torch.equal(expected, actual), path
    elif isinstance(expected, dict):
        assert expected.keys() == actual.keys(), path
        for key in expected:
            assert_same(expected[key], actual[key], f"{path}.{key}")
    elif isinstance(expected, list | tuple):
        assert len(expected) == len(actual), path
        for number, (left, right) in enumerate(zip(expected, actual, strict=True)):
            assert_same(left, right, f"{path}.{number}")
    else:
        assert expected == actual, path


def frame_stack_kind(prioritized: bool, padding: str, n_step: int) -> Callable[[], ReplayBuffer]:
    common = {"num_envs": NUM_ENVS, "n_step": n_step, "gamma": 0.9, "seed": 5}
    kind = PrioritizedFrameStackReplayBuffer if prioritized else FrameStackReplayBuffer
    return lambda: kind(60, (2, 3), torch.uint8, STACK, padding, (), torch.long, **common)


def plain_kind(prioritized: bool, padding: str, n_step: int) -> Callable[[], ReplayBuffer]:
    common = {"num_envs": NUM_ENVS, "n_step": n_step, "gamma": 0.9, "seed": 5}
    kind = PrioritizedReplayBuffer if prioritized else ReplayBuffer
    return lambda: kind(60, (STACK, 2, 3), torch.uint8, (), torch.long, **common)


@pytest.mark.parametrize("kind", [frame_stack_kind, plain_kind])
@pytest.mark.parametrize(
    ("prioritized", "padding", "n_step"), [(False, "reset", 1), (False, "zero", 3), (True, "zero", 1)]
)
def test_storage_never_written_reaches_no_batch_and_no_saved_state(
    kind: Callable[..., Callable[[], ReplayBuffer]], prioritized: bool, padding: str, n_step: int
) -> None:
    """The storage is left uninitialised: built over random bytes, a buffer gives the same batches and saved states
    as built over zeros, partly filled, wrapped around and restored from a partly filled state."""
    make = kind(prioritized, padding, n_step)
    zeroed, garbage = zeroed_and_garbage(make)
    frame_stack = isinstance(garbage, FrameStackReplayBuffer)
    observations = [buffer.frames if frame_stack else buffer.storage["observations"] for buffer in (zeroed, garbage)]
    assert not observations[0].any() and observations[1].any()
    if padding == "zero" and frame_stack:
        assert not garbage.frames[garbage.frame_capacity :].any()  # the padding frame
    collector = Collector(stacked_frames_vector_env(NUM_ENVS, STACK, padding))
    collector.reset(seed=10)
    play(collector, 8, zeroed, garbage)  # partly filled
    assert 0 < len(garbage) < 60
    _, restored = zeroed_and_garbage(make)  # restored over random bytes from a partly filled state
    restored.load_state_dict(zeroed.state_dict())
    for steps in (0, 10, 40):  # then filled and wrapped around
        play(collector, steps, zeroed, garbage, restored)
        for buffer in (garbage, restored):
            assert len(buffer) == len(zeroed)
            for include_storage in (True, False):
                assert_same(zeroed.state_dict(include_storage), buffer.state_dict(include_storage))
        batches = [buffer.sample(64) for buffer in (zeroed, garbage, restored)]
        assert_same(batches[0], batches[1])
        assert_same(batches[0], batches[2])
        if prioritized:
            for buffer, batch in zip((zeroed, garbage, restored), batches, strict=True):
                buffer.update_priorities(batch.indices, batch.rewards + 1.0)
    assert len(garbage) == 60
    collector.close()
