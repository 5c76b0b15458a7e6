"""The rollout dataset on the deterministic counting envs: autoreset steps, truncation bootstrap, minibatches."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from rl_lightning.buffers import RolloutBuffer
from rl_lightning.data import Collector, RolloutDataset, RolloutStep


class CountingCritic:
    """A learner that always plays action 0 and whose critic values an observation ``[t]`` at ``t``."""

    def __init__(self) -> None:
        self.env_steps = 0
        self.rollout_updates_stopped = False
        self.generator = torch.Generator().manual_seed(0)
        self.final_values_asked: list[list[float]] = []

    def explore(self, observations: Tensor, state: Any, episode_starts: Tensor) -> RolloutStep:
        actions = torch.zeros(observations.shape[0], dtype=torch.long)
        return RolloutStep(observations, actions, actions, torch.zeros(observations.shape[0]), observations[:, 0])

    def predict_values(self, observations: Tensor, state: Any = None, episode_starts: Tensor | None = None) -> Tensor:
        return observations[:, 0].clone()

    def normalize_rewards(self, rewards: Tensor, dones: np.ndarray, valid: np.ndarray) -> Tensor:
        return rewards


def dataset(ending_envs, batch_size: int = 2, n_epochs: int = 2) -> tuple[RolloutDataset, CountingCritic]:
    collector = Collector(ending_envs)
    collector.reset(seed=0)
    learner = CountingCritic()
    buffer = RolloutBuffer(4, 2, (1,), torch.float32, (), torch.long, gamma=0.5, gae_lambda=0.5)
    rollouts = RolloutDataset(
        learner, collector, buffer, batch_size=batch_size, n_epochs=n_epochs, steps_per_epoch=8, total_timesteps=16
    )
    return rollouts, learner


def epoch_minibatches(rollouts: RolloutDataset) -> list:
    """One epoch's minibatches, in order: the dataset yields a round (an iterator of minibatches) per rollout."""
    return [batch for round_of_batches in rollouts for batch in round_of_batches]


# Env 0 terminates at its 2nd step; env 1 is truncated at its 3rd. The observation after t steps is [t]
# and the t-th step's reward is t; V([t]) = t; gamma = lambda = 0.5, so gamma * lambda = 0.25.
#   env 0: step 0: obs 0, r 1 -> delta 1 + 0.5 * 1 - 0 = 1.5, A = 1.5 + 0.25 * 1 = 1.75
#          step 1: obs 1, r 2, terminated -> A = 2 - 1 = 1
#          step 2: the autoreset step (obs = the final observation [2], reward 0): no transition
#          step 3: obs 0 (reset), r 1 -> A = 1 + 0.5 * V(last obs [1]) - 0 = 1.5
#   env 1: step 0: obs 0, r 1 -> delta 1.5, A = 1.5 + 0.25 * 2.625 = 2.15625
#          step 1: obs 1, r 2 -> delta 2 + 0.5 * 2 - 1 = 2, A = 2 + 0.25 * 2.5 = 2.625
#          step 2: obs 2, r 3, truncated -> A = 3 + 0.5 * V(final obs [3]) - 2 = 2.5
#          step 3: the autoreset step: no transition
VALID = [[True, True], [True, True], [False, True], [True, False]]
ADVANTAGES = [[1.75, 2.15625], [1.0, 2.625], [0.0, 2.5], [1.5, 0.0]]
TRANSITIONS = sorted([(0.0, 1.75), (1.0, 1.0), (0.0, 1.5), (0.0, 2.15625), (1.0, 2.625), (2.0, 2.5)])


def test_rollout_through_terminations_truncations_and_autoreset_steps(ending_envs):
    rollouts, learner = dataset(ending_envs)
    rollouts.collect()
    buffer = rollouts.buffer
    assert learner.env_steps == 8
    assert buffer.valid.tolist() == VALID
    assert buffer.rewards.tolist() == [[1.0, 1.0], [2.0, 2.0], [0.0, 3.0], [1.0, 0.0]]
    assert buffer.truncations[2, 1] and buffer.final_values[2, 1].item() == 3.0
    assert buffer.advantages.tolist() == ADVANTAGES


def test_each_pass_yields_every_real_transition_once(ending_envs):
    rollouts, learner = dataset(ending_envs, batch_size=2, n_epochs=2)
    batches = epoch_minibatches(rollouts)  # one epoch: 8 env steps, one rollout
    # 8 transitions per rollout / batch_size 2 = 4 minibatches per pass, sharing the 6 real transitions.
    assert [len(batch.advantages) for batch in batches] == [2, 2, 1, 1] * 2
    for first in (0, 4):
        seen = [
            (obs.item(), adv.item())
            for batch in batches[first : first + 4]
            for obs, adv in zip(batch.observations[:, 0], batch.advantages, strict=True)
        ]
        assert sorted(seen) == TRANSITIONS
    assert learner.env_steps == 8
    assert len(epoch_minibatches(rollouts)) == 8  # the second epoch plays the second rollout, up to 16 steps
    assert epoch_minibatches(rollouts) == []


def test_the_learner_can_stop_the_rest_of_a_rollout(ending_envs):
    rollouts, learner = dataset(ending_envs, batch_size=2, n_epochs=3)
    taken = 0
    for round_of_batches in rollouts:
        for _ in round_of_batches:
            taken += 1
            learner.rollout_updates_stopped = True
    assert taken == 1 and learner.env_steps == 8


def test_one_minibatch_per_pass_is_the_whole_rollout_without_autoreset_steps(ending_envs):
    rollouts, _ = dataset(ending_envs, batch_size=8, n_epochs=3)
    batches = epoch_minibatches(rollouts)
    assert len(batches) == 3
    for batch in batches:
        seen = sorted(zip(batch.observations[:, 0].tolist(), batch.advantages.tolist(), strict=True))
        assert seen == TRANSITIONS
