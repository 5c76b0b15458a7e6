"""The rollout buffer of on-policy algorithms: one rollout of every env, then GAE(lambda) advantages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from rl_lightning import tree
from rl_lightning.tree import Observations, tree_map


class Sequences(NamedTuple):
    """A minibatch of whole chunks of a rollout, time first, for a recurrent policy to run again.

    ``C`` chunks of ``L`` steps: column ``c`` holds steps ``start_c .. start_c + L - 1`` of one env. Steps past the
    rollout's end are padding, and the vector env's autoreset steps are no transitions: ``mask`` is False at both,
    and the batch's transitions (the :class:`RolloutBatch` fields) are the others, in ``positions`` order.
    """

    observations: Tensor
    """``(L, C, *observation_shape)``."""
    episode_starts: Tensor
    """``(L, C)`` bool: the step's observation is the first of an episode (the policy resets its state there)."""
    start_states: tuple[Tensor, ...]
    """The policy's state at each chunk's first step, before that step's reset: ``(C, ...)`` each."""
    mask: Tensor
    """``(L, C)`` bool: True at the chunk's real transitions, False at padding and autoreset steps."""
    positions: Tensor
    """Indices into the ``L * C`` flattened steps of the masked ones: where the transitions' outputs are."""


class RolloutBatch(NamedTuple):
    """A minibatch of a rollout: what the policy saw and did, and the targets of the update."""

    observations: Observations
    """A tensor, or a dict or tuple of tensors (one per key) for ``Dict`` and ``Tuple`` observation spaces."""
    actions: Tensor
    """The actions as sampled (unclipped for a Box), so that ``log_probs`` is their probability."""
    log_probs: Tensor
    """Log-probability of the action under the policy that collected the rollout."""
    values: Tensor
    """``V(s)`` of the critic that collected the rollout."""
    advantages: Tensor
    returns: Tensor
    """Targets of the critic: ``advantages + values``."""
    action_masks: Tensor | None = None
    """The valid-action masks the policy acted under (bool, ``(batch, n)``), where the env gives masks."""
    sequences: Sequences | None = None
    """For a recurrent policy: the chunks the transitions belong to (None: the transitions stand alone)."""


class RolloutBuffer:
    """``n_steps`` steps of ``num_envs`` environments in preallocated ``(n_steps, num_envs, ...)`` tensors.

    Steps are added one vector step at a time; :meth:`compute_returns_and_advantages` then computes the
    GAE(lambda) advantages of Schulman et al. (2016), vectorized over envs:
    ``delta_t = r_t + gamma * V(next_t) - V(s_t)`` and ``A_t = delta_t + gamma * lambda * A_{t+1}``, where

    - a **termination** at step t ends the episode: no bootstrap (``V(next_t) = 0``) and no ``A_{t+1}``;
    - a **truncation** at step t ends the episode too, but bootstraps from the value of the true final
      observation, given to :meth:`add` as ``final_values``;
    - otherwise ``V(next_t)`` is the value of the next step's observation (``last_values`` after the last step).

    The vector env's autoreset step (``valid`` False: the step after an episode end, which only resets
    that env) is no transition. It follows an episode end, so no advantage reaches it; its own advantage is
    set to 0 and :meth:`valid_indices` leaves it out of every minibatch.

    The done flags are stored where they come from: host arrays (a numpy env's) stay on the host until the rollout
    is complete, tensors (a torch env's) stay on their device, so adding a step never waits for the device. With
    device flags ``final_values`` is given at every step, since whether an env was truncated is not read back.
    Finding the valid steps at the rollout's end costs one host sync, none when every step was valid (``valid``
    None, as in SAME_STEP autoreset).

    Args:
        n_steps: steps of each env per rollout.
        num_envs: environments stepped together.
        observation_shape / observation_dtype: one observation as stored; for a ``Dict`` or ``Tuple`` observation
            space, a dict or tuple of the keys' shapes and dtypes (each key in a tensor of its own).
        action_shape / action_dtype: one action as sampled (``()`` and ``torch.long`` for ``Discrete``).
        gamma: discount factor.
        gae_lambda: GAE's bias-variance trade-off (1: Monte-Carlo advantages, 0: one-step TD errors).
        device: where the tensors live.
        action_mask_size: entries of the env's valid-action masks, if it gives them: each step then keeps the
            masks the policy acted under (given to :meth:`add`), so that the update's distribution has them too.
        state_shapes: for a recurrent policy, the shape of each part of one env's state (batch dimension left
            out). Each step then keeps the state the policy acted from and its episode starts, and minibatches are
            whole chunks of ``sequence_length`` steps (:meth:`sequence_batch`).
        sequence_length: steps per chunk (with ``state_shapes``): each env's rollout is cut every
            ``sequence_length`` steps, the last chunk padded if ``n_steps`` is not a multiple.
    """

    def __init__(
        self,
        n_steps: int,
        num_envs: int,
        observation_shape: Sequence[int] | dict[str, Sequence[int]] | tuple[Sequence[int], ...],
        observation_dtype: torch.dtype | dict[str, torch.dtype] | tuple[torch.dtype, ...],
        action_shape: Sequence[int],
        action_dtype: torch.dtype,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        device: torch.device | str = "cpu",
        action_mask_size: int | None = None,
        state_shapes: Sequence[Sequence[int]] | None = None,
        sequence_length: int | None = None,
    ) -> None:
        self.n_steps, self.num_envs, self.gamma, self.gae_lambda = n_steps, num_envs, gamma, gae_lambda
        self.device = torch.device(device)

        def zeros(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.zeros((n_steps, num_envs, *shape), dtype=dtype, device=self.device)

        self.observations = tree.zeros(observation_shape, observation_dtype, (n_steps, num_envs), self.device)
        self.actions = zeros(*action_shape, dtype=action_dtype)
        self.rewards, self.values, self.log_probs = zeros(), zeros(), zeros()
        self.final_values = zeros()  # V(true final observation), read only where the env was truncated
        self.advantages, self.returns = zeros(), zeros()
        self.action_masks = None if action_mask_size is None else zeros(action_mask_size, dtype=torch.bool)
        # The batch's fields flattened over (step, env): views, valid for the buffer's life (it is written in place).
        fields = (self.observations, self.actions, self.log_probs, self.values, self.advantages, self.returns)
        self._flat = RolloutBatch(*(tree_map(lambda field: field.flatten(0, 1), field) for field in fields))
        if self.action_masks is not None:
            self._flat = self._flat._replace(action_masks=self.action_masks.flatten(0, 1))
        self.terminations = torch.zeros((n_steps, num_envs), dtype=torch.bool)
        self.truncations = torch.zeros((n_steps, num_envs), dtype=torch.bool)
        self.valid = torch.zeros((n_steps, num_envs), dtype=torch.bool)
        self.step = 0
        self._every_step_valid = True  # every add() of the rollout had valid=None
        self._all_indices = torch.arange(n_steps * num_envs, device=self.device)
        self._valid_indices = self._all_indices
        self._device_valid = self.valid  # the valid flags on self.device, from compute_returns_and_advantages
        self.sequence_length = None if state_shapes is None else (sequence_length or n_steps)
        self.states = None if state_shapes is None else [zeros(*shape) for shape in state_shapes]
        self.episode_starts = None if state_shapes is None else zeros(dtype=torch.bool)
        if self.sequence_length is not None:
            chunks_per_env = -(-n_steps // self.sequence_length)
            self._all_chunks = torch.arange(num_envs * chunks_per_env, device=self.device)
            self._chunk_indices = self._all_chunks

    @property
    def full(self) -> bool:
        return self.step == self.n_steps

    def reset(self) -> None:
        """Start a new rollout (the tensors are overwritten in place)."""
        self.step = 0
        self._every_step_valid = True

    def add(
        self,
        observations: Observations,
        actions: Tensor,
        rewards: Tensor,
        values: Tensor,
        log_probs: Tensor,
        terminations: np.ndarray | Tensor,
        truncations: np.ndarray | Tensor,
        valid: np.ndarray | Tensor | None,
        final_values: Tensor | None = None,
        action_masks: Tensor | None = None,
        policy_state: Sequence[Tensor] | None = None,
        episode_starts: np.ndarray | Tensor | None = None,
    ) -> None:
        """Store one step of every env.

        Args:
            observations / actions: what each env's policy saw and sampled.
            rewards: the rewards of the step.
            values / log_probs: ``V(s)`` and ``log pi(a | s)`` at collection.
            terminations / truncations / valid: flags of the step as the collector gives them (host arrays, or
                tensors on a torch env's device); ``valid`` None: every env's step is a transition.
            final_values: ``(num_envs,)`` values of the true next observations; required when an env was
                truncated, and at every step with device flags (only the truncated envs' entries are read).
            action_masks: the valid-action masks the policy acted under; exactly when the buffer keeps masks.
            policy_state / episode_starts: the recurrent state the policy acted from (before its reset where an
                episode starts) and those starts; exactly when the buffer keeps states.
        """
        if self.full:
            raise RuntimeError(f"the rollout buffer holds {self.n_steps} steps already; call reset() first")
        if (action_masks is None) != (self.action_masks is None):
            raise ValueError("give action_masks exactly when the buffer was made with an action_mask_size")
        if (policy_state is None) != (self.states is None):
            raise ValueError("give policy_state exactly when the buffer was made with state_shapes")
        on_device = isinstance(truncations, Tensor)
        if on_device:
            if final_values is None:
                raise ValueError("final_values is required at every step when the flags are tensors")
        else:
            truncations = np.asarray(truncations, dtype=bool)
        t = self.step
        tree.assign(self.observations, t, observations)
        self.actions[t] = actions.reshape(self.actions.shape[1:])
        self.rewards[t] = rewards
        self.values[t] = values
        self.log_probs[t] = log_probs
        if action_masks is not None:
            self.action_masks[t] = action_masks
        if policy_state is not None:
            for stored, part in zip(self.states, policy_state, strict=True):
                stored[t] = part
            self.episode_starts[t] = torch.as_tensor(episode_starts).to(self.device, non_blocking=True)
        if on_device:
            self.final_values[t] = final_values
        elif truncations.any():
            if final_values is None:
                raise ValueError("final_values is required at a step where an env was truncated")
            self.final_values[t] = final_values
        self._store_flags(t, terminations, truncations, valid)
        self.step += 1

    def _store_flags(
        self,
        t: int,
        terminations: np.ndarray | Tensor,
        truncations: np.ndarray | Tensor,
        valid: np.ndarray | Tensor | None,
    ) -> None:
        """Store step ``t``'s flags where they come from: the flag tensors follow the first device flags seen."""
        if isinstance(terminations, Tensor) and self.terminations.device != terminations.device:
            device = terminations.device
            self.terminations, self.truncations, self.valid = (
                flags.to(device) for flags in (self.terminations, self.truncations, self.valid)
            )
        self.terminations[t] = torch.as_tensor(terminations)
        self.truncations[t] = torch.as_tensor(truncations)
        if valid is None:
            self.valid[t] = True
        else:
            self.valid[t] = torch.as_tensor(valid)
            self._every_step_valid = False

    def compute_returns_and_advantages(self, last_values: Tensor) -> None:
        """GAE(lambda) advantages and critic targets of the full rollout.

        Args:
            last_values: ``(num_envs,)`` values of the observations after the rollout's last step.
        """
        if not self.full:
            raise RuntimeError(f"the rollout holds {self.step} of {self.n_steps} steps; fill it before computing GAE")
        flags = torch.stack([self.terminations, self.truncations, self.valid]).to(self.device)
        terminated, truncated, valid = flags.float()
        self._device_valid = flags[2]
        next_values = torch.cat([self.values[1:], last_values.reshape(1, self.num_envs)])
        next_values = torch.where(flags[1], self.final_values, next_values)
        deltas = self.rewards + self.gamma * (1.0 - terminated) * next_values - self.values
        continues = self.gamma * self.gae_lambda * (1.0 - torch.maximum(terminated, truncated))
        advantages = self.advantages
        advantages[-1] = deltas[-1]
        for t in range(self.n_steps - 2, -1, -1):
            torch.addcmul(deltas[t], continues[t], advantages[t + 1], out=advantages[t])
        advantages.mul_(valid)
        torch.add(advantages, self.values, out=self.returns)
        valid_flat = self.valid.reshape(-1)
        self._valid_indices = (
            self._all_indices
            if self._every_step_valid or bool(valid_flat.all())
            else valid_flat.nonzero().squeeze(1).to(self.device, non_blocking=True)
        )
        if self.sequence_length is not None:
            self._chunk_indices = self._chunks_with_transitions()

    def _chunks_with_transitions(self) -> Tensor:
        """The chunks holding at least one transition: one of autoreset steps and padding only would make a
        minibatch of nothing. One host sync, none when every step was valid."""
        if self.all_valid:
            return self._all_chunks
        length = self.sequence_length
        valid = torch.zeros(len(self._all_chunks) // self.num_envs * length, self.num_envs, dtype=torch.bool)
        valid = valid.to(self.device)
        valid[: self.n_steps] = self._device_valid
        holds = valid.reshape(-1, length, self.num_envs).any(dim=1).T.flatten()  # in chunk order: env-major
        return self._all_chunks[holds]

    def valid_indices(self) -> Tensor:
        """Flat indices (into ``n_steps * num_envs``) of the rollout's real transitions, autoreset steps left out."""
        return self._valid_indices

    @property
    def all_valid(self) -> bool:
        """Whether every step of the rollout is a real transition (no autoreset step in it)."""
        return self._valid_indices is self._all_indices

    def batch(self, indices: Tensor | None = None) -> RolloutBatch:
        """The transitions at flat ``indices``; None: the whole rollout, as views of the buffer (no copy)."""
        if indices is None:
            return self._flat
        return RolloutBatch(
            *(None if field is None else tree_map(lambda leaf: leaf[indices], field) for field in self._flat)
        )

    def chunk_indices(self) -> Tensor:
        """Indices of the rollout's chunks that hold a transition (with ``state_shapes``): chunk ``c`` is env
        ``c // k``'s ``c % k``-th chunk of ``sequence_length`` steps, ``k = ceil(n_steps / sequence_length)``."""
        return self._chunk_indices

    def sequence_batch(self, chunks: Tensor) -> RolloutBatch:
        """The whole chunks ``chunks`` (see :meth:`chunk_indices`): the transitions in them, and the chunks
        themselves as :class:`Sequences`, with the state each starts from. Finding the masked steps' positions costs
        one host sync per minibatch."""
        length = self.sequence_length
        chunks_per_env = len(self._all_chunks) // self.num_envs
        envs = chunks // chunks_per_env
        starts = chunks % chunks_per_env * length
        steps = starts + torch.arange(length, device=self.device)[:, None]  # (L, C)
        padding = steps >= self.n_steps
        steps = steps.clamp(max=self.n_steps - 1)  # padding repeats the last step: it comes after, and is masked

        mask = self._device_valid[steps, envs] & ~padding
        positions = mask.flatten().nonzero().squeeze(1)
        observations = tree_map(lambda part: part[steps, envs], self.observations)
        sequences = Sequences(
            observations,
            self.episode_starts[steps, envs],
            tuple(state[starts, envs] for state in self.states),
            mask,
            positions,
        )

        def transitions(field: Tensor) -> Tensor:
            return field[steps, envs].flatten(0, 1)[positions]

        fields = (self.actions, self.log_probs, self.values, self.advantages, self.returns)
        masks = None if self.action_masks is None else transitions(self.action_masks)
        return RolloutBatch(
            tree_map(lambda part: part.flatten(0, 1)[positions], observations),
            *(transitions(field) for field in fields),
            masks,
            sequences,
        )

    def explained_variance(self) -> Tensor:
        """``1 - Var(returns - values) / Var(returns)`` over the rollout's transitions: how much the critic explains.

        1 is a perfect critic, 0 one no better than a constant, negative one worse; NaN when the returns
        do not vary.
        """
        indices = self._valid_indices
        returns, values = self.returns.flatten()[indices], self.values.flatten()[indices]
        returns_var = returns.var(correction=0)
        explained = 1.0 - (returns - values).var(correction=0) / returns_var
        return torch.where(returns_var > 0, explained, torch.nan)
