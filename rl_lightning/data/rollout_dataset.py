"""The on-policy dataset: play one rollout with the current policy, then yield shuffled minibatches of it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import IterableDataset

from rl_lightning.buffers import RolloutBatch, RolloutBuffer
from rl_lightning.data.collector import Collector, refuse_faults
from rl_lightning.distributed import min_over_ranks


class RolloutStep(NamedTuple):
    """What the policy decided for one vector step, as the rollout buffer stores it."""

    observations: Tensor
    """The observations as the networks saw them (normalized, if the learner normalizes)."""
    actions: Tensor
    """The sampled actions, which the log-probabilities belong to."""
    env_actions: Tensor
    """The actions sent to the envs (e.g. clipped to a Box's bounds)."""
    log_probs: Tensor
    values: Tensor


class OnPolicyLearner(Protocol):
    """What the rollout dataset needs of the module it feeds."""

    env_steps: int
    """Environment steps taken so far, over all envs and all processes."""
    rollout_updates_stopped: bool
    """Set by the learner to skip the remaining minibatches of the current rollout (PPO's ``target_kl``)."""
    generator: torch.Generator | None
    """Shuffles the minibatches."""

    def explore(self, observations: Tensor, action_masks: Tensor | None = None) -> RolloutStep:
        """Sample actions for raw observations, with their log-probabilities and values; valid ones only where
        the env gives masks (``action_masks`` is passed only then, so a learner of unmasked envs may omit it)."""
        ...

    def predict_values(self, observations: Tensor) -> Tensor:
        """``V(s)`` of raw observations."""
        ...

    def normalize_rewards(
        self, rewards: Tensor, dones: np.ndarray | Tensor, valid: np.ndarray | Tensor | None
    ) -> Tensor:
        """The rewards the learner learns from (the env's, or scaled ones)."""
        ...


class RolloutDataset(IterableDataset):
    """Alternates collection and learning as on-policy algorithms do (Stable-Baselines3's PPO and A2C).

    Each rollout is ``n_steps`` vector steps of every env, played with the learner's current policy into
    the buffer; then come ``n_epochs`` passes over it, each in a new random order (one ``randperm`` on the
    learner's generator), split into ``n_steps * num_envs / batch_size`` minibatches. The vector env's
    autoreset steps are left out, so a minibatch of a rollout where episodes ended holds slightly fewer
    than ``batch_size`` transitions. The learner can skip the rest of a rollout's minibatches by setting
    ``rollout_updates_stopped``. One iteration (a Lightning epoch) plays rollouts until ``steps_per_epoch``
    env steps are played; rollouts are never cut, so the last one may pass ``total_timesteps``.

    Args:
        learner: the module; it acts, values observations, scales rewards, and its ``env_steps`` is advanced here.
        collector: steps the training envs.
        buffer: holds one rollout (its ``n_steps`` sets the rollout's length).
        batch_size: transitions per minibatch (a divisor of ``n_steps * num_envs``).
        n_epochs: passes over each rollout.
        steps_per_epoch: env steps per epoch.
        total_timesteps: env steps at which training ends.
        world_size: processes each stepping the same number of envs (env steps count all of them).
    """

    def __init__(
        self,
        learner: OnPolicyLearner,
        collector: Collector,
        buffer: RolloutBuffer,
        *,
        batch_size: int,
        n_epochs: int,
        steps_per_epoch: int,
        total_timesteps: int,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        self.learner, self.collector, self.buffer = learner, collector, buffer
        self.n_epochs, self.steps_per_epoch, self.total_timesteps = n_epochs, steps_per_epoch, total_timesteps
        self.batches_per_pass = max(1, buffer.n_steps * buffer.num_envs // batch_size)
        self.steps_per_env_step = collector.num_envs * world_size

    @torch.no_grad()
    def collect(self) -> None:
        """Play one rollout with the learner's current policy and compute its advantages."""
        learner, collector, buffer = self.learner, self.collector, self.buffer
        buffer.reset()
        for _ in range(buffer.n_steps):
            action_masks = collector.action_masks  # those of the observations acted on (step() replaces them)
            if action_masks is None:
                step = learner.explore(collector.observations)
            else:
                step = learner.explore(collector.observations, action_masks)
            transition = collector.step(step.actions, step.env_actions)
            # V(true final observation), the bootstrap of a truncated episode: one batched call, only when needed.
            # A torch env's flags are not read back to know that: its final values are computed at every step.
            truncations = transition.truncations
            needed = collector.on_device or truncations.any()
            final_values = learner.predict_values(transition.next_observations) if needed else None
            dones = transition.terminations | transition.truncations
            rewards = learner.normalize_rewards(transition.rewards, dones, transition.valid)
            buffer.add(
                step.observations,
                step.actions,
                rewards,
                step.values,
                step.log_probs,
                transition.terminations,
                transition.truncations,
                transition.valid,
                final_values,
                action_masks,
            )
            learner.env_steps += self.steps_per_env_step
        if collector.check_finite:  # before anything learns from the rollout (a torch env's values: one sync)
            refuse_faults(collector)
        buffer.compute_returns_and_advantages(learner.predict_values(collector.observations))

    def minibatches(self) -> Iterator[RolloutBatch]:
        """``n_epochs`` shuffled passes over the collected rollout, until the learner stops them."""
        learner, buffer = self.learner, self.buffer
        learner.rollout_updates_stopped = False
        indices = buffer.valid_indices()
        # Under DDP every rank must take as many updates as the others; a rank's rollout can hold fewer valid
        # transitions than there are minibatches (its episodes ended more often), so the ranks agree on the count.
        sections = min_over_ranks(min(self.batches_per_pass, len(indices)))
        if sections == 0:
            return  # a rollout of autoreset steps only: one step of envs that had all just ended an episode
        # One minibatch per pass is the whole rollout, the same in any order: gathered once (if at all), not shuffled.
        whole = buffer.batch(None if buffer.all_valid else indices) if sections == 1 else None
        for _ in range(self.n_epochs):
            for batch in (whole,) if whole is not None else self._shuffled(indices, sections):
                yield batch
                if learner.rollout_updates_stopped:
                    return

    def _shuffled(self, indices: Tensor, sections: int) -> Iterator[RolloutBatch]:
        """One pass over ``indices`` in a random order (one ``randperm``), split into ``sections`` minibatches."""
        order = torch.randperm(len(indices), generator=self.learner.generator, device=indices.device)
        for batch_indices in indices[order].tensor_split(sections):
            yield self.buffer.batch(batch_indices)

    def __iter__(self) -> Iterator[RolloutBatch]:
        epoch_end = min(self.learner.env_steps + self.steps_per_epoch, self.total_timesteps)
        while self.learner.env_steps < epoch_end:
            self.collect()
            yield from self.minibatches()
