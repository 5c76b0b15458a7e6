"""The on-policy dataset: play one rollout with the current policy, then yield shuffled minibatches of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import IterableDataset

from rl_lightning.buffers import RolloutBatch, RolloutBuffer
from rl_lightning.data.collector import Collector, PolicyState, refuse_faults
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
    state: PolicyState = None
    """The state the policy acted from (the initial one at the start, before the reset where an episode starts),
    as the rollout buffer keeps it; None for a memoryless policy."""
    next_state: PolicyState = None
    """The policy's state after the step, to act on the next observations from."""


class OnPolicyLearner(Protocol):
    """What the rollout dataset needs of the module it feeds."""

    env_steps: int
    """Environment steps taken so far, over all envs and all processes."""
    rollout_updates_stopped: bool
    """Set by the learner to skip the remaining minibatches of the current rollout (PPO's ``target_kl``)."""
    generator: torch.Generator | None
    """Shuffles the minibatches."""

    def explore(
        self, observations: Tensor, state: PolicyState, episode_starts: Tensor, action_masks: Tensor | None = None
    ) -> RolloutStep:
        """Sample actions for raw observations, with their log-probabilities and values, from the policy's
        ``state`` (reset where ``episode_starts``; see the policy contract); valid ones only where the env gives
        masks (``action_masks`` is passed only then, so a learner of unmasked envs may omit it)."""
        ...

    def predict_values(
        self, observations: Tensor, state: PolicyState = None, episode_starts: Tensor | None = None
    ) -> Tensor:
        """``V(s)`` of raw observations, from the policy's ``state`` (reset where ``episode_starts``; None: nowhere)."""
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
    than ``batch_size`` transitions. A recurrent policy's rollout (a buffer that keeps states) is shuffled and
    split in whole chunks of steps instead (:meth:`RolloutBuffer.sequence_batch`), never in single steps: the
    learner runs its memory again over each chunk from the state stored at its start. The learner can skip the
    rest of a rollout's minibatches by setting ``rollout_updates_stopped``. One iteration (a Lightning epoch)
    plays rollouts until ``steps_per_epoch`` env steps are played; rollouts are never cut, so the last one may
    pass ``total_timesteps``. Each rollout's minibatches are yielded as one lazy iterator (a round), which the
    module's ``training_step`` runs through, one update per minibatch.

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
            # The policy's state is the collector's, one per env (see Collector.act): a recurrent one's memory.
            state, starts = collector.policy_state, collector.episode_starts
            if action_masks is None:
                step = learner.explore(collector.observations, state, starts)
            else:
                step = learner.explore(collector.observations, state, starts, action_masks)
            collector.policy_state = step.next_state
            transition = collector.step(step.actions, step.env_actions)
            # V(true final observation), the bootstrap of a truncated episode: one batched call, only when needed,
            # from the state after the episode's last step (no reset: the final observation is still the episode's).
            # A torch env's flags are not read back to know that: its final values are computed at every step.
            truncations = transition.truncations
            needed = collector.on_device or truncations.any()
            final_values = learner.predict_values(transition.next_observations, step.next_state) if needed else None
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
                step.state,
                None if step.state is None else starts,
            )
            learner.env_steps += self.steps_per_env_step
        if collector.check_finite:  # before anything learns from the rollout (a torch env's values: one sync)
            refuse_faults(collector)
        last_values = learner.predict_values(collector.observations, collector.policy_state, collector.episode_starts)
        buffer.compute_returns_and_advantages(last_values)

    def minibatches(self) -> Iterator[RolloutBatch]:
        """``n_epochs`` shuffled passes over the collected rollout, until the learner stops them."""
        learner, buffer = self.learner, self.buffer
        learner.rollout_updates_stopped = False
        if buffer.states is None:  # transitions, the autoreset steps left out
            indices, gather = buffer.valid_indices(), buffer.batch
            whole_rollout = None if buffer.all_valid else indices
        else:  # whole chunks of steps, for a recurrent policy
            indices, gather = buffer.chunk_indices(), buffer.sequence_batch
            whole_rollout = indices
        # Under DDP every rank must take as many updates as the others; a rank's rollout can hold fewer valid
        # transitions than there are minibatches (its episodes ended more often), so the ranks agree on the count.
        sections = min_over_ranks(min(self.batches_per_pass, len(indices)))
        if sections == 0:
            return  # a rollout of autoreset steps only: one step of envs that had all just ended an episode
        # One minibatch per pass is the whole rollout, the same in any order: gathered once (if at all), not shuffled.
        whole = gather(whole_rollout) if sections == 1 else None
        for _ in range(self.n_epochs):
            for batch in (whole,) if whole is not None else self._shuffled(indices, sections, gather):
                yield batch
                if learner.rollout_updates_stopped:
                    return

    def _shuffled(
        self, indices: Tensor, sections: int, gather: Callable[[Tensor], RolloutBatch]
    ) -> Iterator[RolloutBatch]:
        """One pass over ``indices`` in a random order (one ``randperm``), split into ``sections`` minibatches."""
        order = torch.randperm(len(indices), generator=self.learner.generator, device=indices.device)
        for batch_indices in indices[order].tensor_split(sections):
            yield gather(batch_indices)

    def __iter__(self) -> Iterator[Iterator[RolloutBatch]]:
        epoch_end = min(self.learner.env_steps + self.steps_per_epoch, self.total_timesteps)
        while self.learner.env_steps < epoch_end:
            self.collect()
            yield self.minibatches()
