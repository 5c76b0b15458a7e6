"""The off-policy dataset: play a few env steps, then yield a few sampled batches, until the epoch ends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch
from torch.utils.data import IterableDataset

from rl_lightning.buffers import ReplayBatch, ReplayBuffer
from rl_lightning.data.collector import Collector, Policy
from rl_lightning.distributed import min_over_ranks


class Learner(Policy, Protocol):
    """What a dataset needs of the module it feeds: a policy, and the env-step clock."""

    env_steps: int
    """Environment steps taken so far, over all envs and all processes."""


class ReplayDataset(IterableDataset):
    """Interleaves collection and sampling as off-policy algorithms do (SB3's ``train_freq``/``gradient_steps``).

    One iteration is one epoch of ``steps_per_epoch`` env steps, made of rounds: play ``train_freq`` env
    steps with the learner's current policy into the buffer, then, once ``learning_starts`` env steps
    have been played, yield the round's ``gradient_steps`` batches as one lazy iterator, which the module's
    ``training_step`` runs through, one update per batch. Every batch is sampled after the previous update
    was applied (the iterator samples on demand, and the module takes rounds from the dataloader itself,
    with no prefetch), so the policy that plays is always the latest one. Iteration stops early at
    ``total_timesteps``.

    Args:
        learner: the module; its ``act`` chooses actions and its ``env_steps`` is advanced here.
        collector: steps the training envs.
        buffer: stores the transitions; batches are sampled from it.
        batch_size: transitions per batch.
        train_freq: env steps per round (a multiple of the envs stepped together).
        gradient_steps: batches per round; -1 for as many as the env steps of the round.
        learning_starts: env steps played before the first batch.
        steps_per_epoch: env steps per epoch (a multiple of ``train_freq``).
        total_timesteps: env steps at which training ends.
        world_size: processes each stepping the same number of envs (env steps count all of them).
    """

    def __init__(
        self,
        learner: Learner,
        collector: Collector,
        buffer: ReplayBuffer,
        *,
        batch_size: int,
        train_freq: int,
        gradient_steps: int,
        learning_starts: int,
        steps_per_epoch: int,
        total_timesteps: int,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        self.learner, self.collector, self.buffer = learner, collector, buffer
        self.batch_size, self.learning_starts = batch_size, learning_starts
        self.steps_per_epoch, self.total_timesteps = steps_per_epoch, total_timesteps
        self.steps_per_env_step = collector.num_envs * world_size
        # train_freq counts the env steps of all processes, like every other step count here.
        self.vector_steps_per_round = max(1, train_freq // self.steps_per_env_step)
        self.gradient_steps = gradient_steps if gradient_steps > 0 else train_freq // world_size
        self._every_buffer_filled = False  # every rank's buffer holds a transition (and always will)

    def _play(self, until: int) -> None:
        """Play one round (fewer steps if ``until`` env steps are reached first)."""
        learner, collector = self.learner, self.collector
        for _ in range(self.vector_steps_per_round):
            with torch.no_grad():
                actions = collector.act(learner)
            transition = collector.step(actions)
            if collector.action_masks is None:
                self.buffer.add(*transition)
            else:  # the masks of the transition's next observations, for the target's max over valid actions
                self.buffer.add(*transition, next_action_masks=collector.action_masks)
            learner.env_steps += self.steps_per_env_step
            if learner.env_steps >= until:
                return

    def _can_sample(self) -> bool:
        """Whether every process's buffer holds a transition to sample: under DDP all ranks update, or none.

        (A rank's n-step transitions wait for n steps or an episode's end, which come at different steps on
        different ranks.) The ranks agree once; a buffer never empties again.
        """
        if not self._every_buffer_filled:
            self._every_buffer_filled = min_over_ranks(len(self.buffer)) > 0
        return self._every_buffer_filled

    def _batches(self) -> Iterator[ReplayBatch]:
        """A round's batches, each sampled only when the previous one's update is done."""
        for _ in range(self.gradient_steps):
            yield self.buffer.sample(self.batch_size)

    def __iter__(self) -> Iterator[Iterator[ReplayBatch]]:
        learner = self.learner
        epoch_end = min(learner.env_steps + self.steps_per_epoch, self.total_timesteps)
        while learner.env_steps < epoch_end:
            self._play(until=epoch_end)
            if learner.env_steps > self.learning_starts and self._can_sample():
                yield self._batches()
