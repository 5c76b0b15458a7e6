"""ReplayDataset's schedule: env steps and batches per epoch from train_freq, gradient_steps, learning_starts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from gymnasium.vector import SyncVectorEnv

from rl_lightning.buffers import ReplayBuffer
from rl_lightning.data import Collector, ReplayDataset
from tests.helpers import ZeroPolicy
from tests.toy_envs import counting_vector_env


@pytest.fixture
def endless_envs() -> Iterator[SyncVectorEnv]:
    """Two counting envs whose episodes never end, so every env step is stored."""
    vector_env = counting_vector_env([(None, None), (None, None)])
    yield vector_env
    vector_env.close()


def make_dataset(
    vector_env: SyncVectorEnv, learner: ZeroPolicy, world_size: int = 1, **schedule: int
) -> ReplayDataset:
    collector = Collector(vector_env)
    collector.reset(seed=0)
    buffer = ReplayBuffer(1000, (1,), torch.float32, (), torch.long, num_envs=vector_env.num_envs, seed=0)
    return ReplayDataset(learner, collector, buffer, batch_size=4, world_size=world_size, **schedule)


def env_steps_at_each_batch(dataset: ReplayDataset, learner: ZeroPolicy, epochs: int) -> list[list[int]]:
    """For each epoch, the learner's env-step count when each batch was handed out (rounds flattened)."""
    return [[learner.env_steps for batches in dataset for _ in batches] for _ in range(epochs)]


def test_epochs_play_rounds_of_train_freq_steps_and_yield_gradient_steps_batches(endless_envs) -> None:
    learner = ZeroPolicy()
    dataset = make_dataset(
        endless_envs,
        learner,
        train_freq=4,
        gradient_steps=3,
        learning_starts=6,
        steps_per_epoch=8,
        total_timesteps=18,
    )
    # 2 envs, so a round of 4 env steps is 2 vector steps. Batches come once env steps > 6.
    # Epoch 1 (0 -> 8): round to 4 (no batches), round to 8 (3 batches).
    # Epoch 2 (8 -> 16): rounds to 12 and 16, 3 batches each.
    # Epoch 3 (16 -> 18, total_timesteps): one vector step reaches 18, then the round's 3 batches.
    # Epoch 4: nothing left to play.
    assert env_steps_at_each_batch(dataset, learner, epochs=4) == [
        [8, 8, 8],
        [12, 12, 12, 16, 16, 16],
        [18, 18, 18],
        [],
    ]
    assert learner.env_steps == len(dataset.buffer) == 18  # endless episodes: every env step is stored
    assert not learner.acted_with_grad


def test_batches_are_drawn_from_the_buffer_with_the_batch_size(endless_envs) -> None:
    learner = ZeroPolicy()
    dataset = make_dataset(
        endless_envs,
        learner,
        train_freq=2,
        gradient_steps=1,
        learning_starts=0,
        steps_per_epoch=2,
        total_timesteps=2,
    )
    ((batch,),) = [list(batches) for batches in dataset]  # one round of one batch
    # One vector step of two envs from observation [0]: both stored transitions are 0 -> 1 with reward 1.
    assert batch.observations.tolist() == [[0.0]] * 4
    assert batch.next_observations.tolist() == [[1.0]] * 4
    assert batch.rewards.tolist() == [1.0] * 4


def test_minus_one_gradient_steps_gives_one_batch_per_env_step_of_the_round(endless_envs) -> None:
    learner = ZeroPolicy()
    dataset = make_dataset(
        endless_envs,
        learner,
        train_freq=4,
        gradient_steps=-1,
        learning_starts=0,
        steps_per_epoch=8,
        total_timesteps=8,
    )
    # Two rounds of 4 env steps, 4 batches after each.
    assert env_steps_at_each_batch(dataset, learner, epochs=1) == [[4] * 4 + [8] * 4]


def test_env_steps_count_every_process_under_ddp(endless_envs) -> None:
    learner = ZeroPolicy()
    dataset = make_dataset(
        endless_envs,
        learner,
        world_size=2,
        train_freq=8,
        gradient_steps=-1,
        learning_starts=0,
        steps_per_epoch=16,
        total_timesteps=16,
    )
    # Each vector step of 2 envs in each of 2 processes is 4 env steps, so a round of train_freq = 8 env
    # steps is 2 vector steps; -1 gradient steps share the round's 8 steps over the 2 processes: 4 each.
    assert env_steps_at_each_batch(dataset, learner, epochs=1) == [[8] * 4 + [16] * 4]
    assert len(dataset.buffer) == 8  # this process's 4 vector steps of 2 envs
