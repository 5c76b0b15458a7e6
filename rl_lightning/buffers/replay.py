"""A circular replay buffer of preallocated tensors, with n-step returns computed at insertion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from rl_lightning import tree
from rl_lightning.tree import Observations, tree_leaves, tree_map


class ReplayBatch(NamedTuple):
    """A batch of (n-step) transitions; the TD target is ``rewards + discounts * (1 - terminations) * V(next)``."""

    observations: Observations
    """A tensor, or a dict or tuple of tensors (one per key) for ``Dict`` and ``Tuple`` observation spaces."""
    actions: Tensor
    rewards: Tensor
    """Discounted sum of the (up to n) rewards that follow the action."""
    next_observations: Observations
    """The observation n steps later, or the true final observation if the episode ended sooner."""
    terminations: Tensor
    """1.0 where the episode terminated within those steps (no bootstrap), else 0.0."""
    discounts: Tensor
    """``gamma ** k``, k the number of rewards summed: the factor of the bootstrap value."""
    next_action_masks: Tensor | None = None
    """The valid-action masks of ``next_observations`` (bool, ``(batch, n)``), where the env gives masks."""
    indices: Tensor | None = None
    """Where the transitions are stored, to hand their new priorities back (prioritized replay; else None)."""
    weights: Tensor | None = None
    """Importance-sampling weights of the transitions, at most 1, to scale their losses by (prioritized replay;
    else None: all weights are 1)."""


def _bool_flags(flags: Tensor | np.ndarray | None, num_envs: int, default: bool) -> Tensor:
    """``(num_envs,)`` bool flags where they are (host arrays on the CPU, tensors on their device)."""
    if flags is None:
        return torch.full((num_envs,), default, dtype=torch.bool)
    return torch.as_tensor(flags).to(dtype=torch.bool).reshape(num_envs)


class ReplayBuffer:
    """Uniform replay over the last ``capacity`` transitions of ``num_envs`` parallel environments.

    ``add`` takes one step of every environment at once. With ``n_step > 1`` each environment's last
    ``n_step`` steps wait in a small window until their n-step return is complete; an episode end
    (termination or truncation) flushes the window with shorter returns, so no return ever reaches
    across an episode boundary. Which steps are flushed is decided on the host from the env's done
    flags; the data tensors stay on ``device`` and are never read back.

    Flags may be host arrays or tensors on the env's device (a torch env's). With ``n_step=1`` and every step a
    transition (``valid`` None, as in SAME_STEP autoreset) adding never waits for the device. Device flags cost one
    host sync per ``add`` where steps must be picked: with ``n_step > 1`` (the window's bookkeeping is on the host)
    and with NEXT_STEP ``valid`` flags (the number of stored transitions decides the ring's position).

    Args:
        capacity: number of transitions kept; older ones are overwritten.
        observation_shape / observation_dtype: one observation (uint8 images stay uint8); for a ``Dict`` or
            ``Tuple`` observation space, a dict or tuple of the keys' shapes and dtypes: each key is then stored in a
            tensor of its own, and observations are added and sampled as dicts or tuples of tensors.
        action_shape / action_dtype: one action (``()`` and ``torch.long`` for a Discrete space).
        num_envs: environments stepped together in each ``add``.
        n_step: number of rewards summed into each transition's return.
        gamma: discount factor of those returns.
        device: where the tensors live (``"cpu"`` or ``"cuda"``); batches are sampled there.
        seed: seed of the buffer's own sampling generator.
        action_mask_size: entries of the env's valid-action masks, if it gives them: each transition then keeps
            the mask of its next observation (given to :meth:`add` as ``next_action_masks``), for the target's
            maximum over valid next actions.
    """

    def __init__(
        self,
        capacity: int,
        observation_shape: Sequence[int] | dict[str, Sequence[int]] | tuple[Sequence[int], ...],
        observation_dtype: torch.dtype | dict[str, torch.dtype] | tuple[torch.dtype, ...],
        action_shape: Sequence[int],
        action_dtype: torch.dtype,
        num_envs: int = 1,
        n_step: int = 1,
        gamma: float = 0.99,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        action_mask_size: int | None = None,
    ) -> None:
        if capacity < num_envs * n_step:
            raise ValueError(
                f"capacity={capacity} must hold at least num_envs * n_step = {num_envs * n_step}."
            )
        self.capacity, self.num_envs, self.n_step, self.gamma = capacity, num_envs, n_step, gamma
        self.device = torch.device(device)
        act_shape = tuple(action_shape)

        def zeros(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.zeros(shape, dtype=dtype, device=self.device)

        def empty(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.empty(shape, dtype=dtype, device=self.device)

        # The ring is left uninitialised, so that its pages become resident only as transitions are written (a pixel
        # buffer is gigabytes): nothing reads a row before it is written, as draws, gathers and state_dict take the
        # first ``size`` rows only (all of them once the ring has wrapped).
        self.storage: dict[str, Observations] = {
            "observations": tree.empty(observation_shape, observation_dtype, (capacity,), self.device),
            "actions": empty(capacity, *act_shape, dtype=action_dtype),
            "rewards": empty(capacity),
            "next_observations": tree.empty(observation_shape, observation_dtype, (capacity,), self.device),
            "terminations": empty(capacity),
            "discounts": empty(capacity),
        }
        if action_mask_size is not None:
            self.storage["next_action_masks"] = empty(capacity, action_mask_size, dtype=torch.bool)
        # The n-step window, a ring over slots shared by all envs (slot of age a: (head - a) % n_step); saved whole.
        self.window: dict[str, Observations] = {
            "observations": tree.zeros(observation_shape, observation_dtype, (n_step, num_envs), self.device),
            "actions": zeros(n_step, num_envs, *act_shape, dtype=action_dtype),
            "returns": zeros(n_step, num_envs),
            "discounts": zeros(n_step, num_envs),
        }
        self._head = n_step - 1
        self._pending = torch.zeros(num_envs, dtype=torch.long)  # steps waiting per env, on the host
        self._ages = torch.arange(n_step)
        self.position = 0
        self.size = 0
        self.generator = torch.Generator(device=self.device)
        # The discount of every one-step transition, made once: add() would otherwise build it (and, on a GPU,
        # copy it over) at every env step.
        self._one_step_discounts = torch.full((num_envs,), gamma, device=self.device)
        if seed is not None:
            self.generator.manual_seed(seed)

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        observations: Observations,
        actions: Tensor,
        rewards: Tensor,
        next_observations: Observations,
        terminations: Tensor | np.ndarray,
        truncations: Tensor | np.ndarray,
        valid: Tensor | np.ndarray | None = None,
        next_action_masks: Tensor | None = None,
    ) -> int:
        """Add one step of every env; return how many transitions entered the buffer.

        ``next_observations`` must be the true next observations (the final one at an episode end), and
        ``next_action_masks`` their valid-action masks when the buffer keeps masks (``action_mask_size``).
        Envs where ``valid`` is False (the vector env's autoreset step) contribute nothing.
        """
        if (next_action_masks is None) == ("next_action_masks" in self.storage):
            raise ValueError("give next_action_masks exactly when the buffer was made with an action_mask_size")
        # Like next_observations, the masks are those of the step that closes each transition: no window needed.
        masks = {} if next_action_masks is None else {"next_action_masks": next_action_masks}
        terminated = _bool_flags(terminations, self.num_envs, False)
        actions = actions.reshape(self.window["actions"].shape[1:])
        rewards = torch.as_tensor(rewards, dtype=torch.float32).reshape(self.num_envs)
        if self.n_step == 1:
            # The window would hold each step for no time at all: write the valid steps straight away.
            if valid is None:
                envs = None
            else:
                valid = _bool_flags(valid, self.num_envs, True)
                envs = None if bool(valid.all()) else valid.nonzero().squeeze(1)
            return self._write(
                envs,
                observations=observations,
                actions=actions,
                rewards=rewards,
                next_observations=next_observations,
                terminations=terminated.float(),
                discounts=self._one_step_discounts,
                **masks,
            )

        # The window's bookkeeping is on the host: device flags come over here (one sync).
        terminated = terminated.cpu()
        done = terminated | _bool_flags(truncations, self.num_envs, False).cpu()
        valid = _bool_flags(valid, self.num_envs, True).cpu()
        n, window = self.n_step, self.window
        self._head = (self._head + 1) % n
        tree.assign(window["observations"], self._head, observations)
        window["actions"][self._head] = actions
        window["returns"][self._head] = 0.0
        window["discounts"][self._head] = 1.0
        self._pending = torch.where(valid, self._pending + 1, 0)

        slot_ages = (self._head - self._ages) % n  # age of the entry in each slot
        active = slot_ages[:, None] < self._pending[None, :]  # (slot, env), on the host
        active_dev = active.to(self.device, non_blocking=True)
        window["returns"] += active_dev * window["discounts"] * rewards.to(self.device).reshape(1, -1)
        window["discounts"].mul_(torch.where(active_dev, self.gamma, 1.0))

        ready = active & ((slot_ages[:, None] == n - 1) | done[None, :])
        slots, envs = ready.nonzero(as_tuple=True)
        count = 0
        if len(envs):
            slots_dev, envs_dev = slots.to(self.device), envs.to(self.device)
            count = self._write(
                envs_dev,
                observations=tree_map(lambda stored: stored[slots_dev, envs_dev], window["observations"]),
                actions=window["actions"][slots_dev, envs_dev],
                rewards=window["returns"][slots_dev, envs_dev],
                next_observations=next_observations,
                terminations=terminated.float(),
                discounts=window["discounts"][slots_dev, envs_dev],
                already_selected=("observations", "actions", "rewards", "discounts"),
                **masks,
            )
        self._pending = torch.where(done, 0, self._pending.clamp(max=n - 1))
        return count

    def _write(self, envs: Tensor | None, already_selected: tuple[str, ...] = (), **fields: Observations) -> int:
        """Store the rows ``envs`` of each field (all rows if None) at the next positions of the ring."""
        count = self.num_envs if envs is None else len(envs)
        if count == 0:
            return 0
        start = self.position
        contiguous = start + count <= self.capacity
        index = None if contiguous else ((torch.arange(count) + start) % self.capacity).to(self.device)

        def write(stored: Tensor, values: Tensor, select: bool) -> None:
            values = values.to(self.device, non_blocking=True)
            if select:
                values = values[envs.to(self.device)]
            if contiguous:
                stored[start : start + count] = values
            else:
                stored[index] = values.to(stored.dtype)

        for name, values in fields.items():
            select = envs is not None and name not in already_selected
            if isinstance(values, Tensor):  # the common case, without the tree walk
                write(self.storage[name], values, select)
            else:
                tree_map(lambda stored, value, select=select: write(stored, value, select), self.storage[name], values)
        self.position = (start + count) % self.capacity
        self.size = min(self.size + count, self.capacity)
        return count

    def sample(self, batch_size: int, beta: float | None = None) -> ReplayBatch:
        """``batch_size`` transitions drawn uniformly, with replacement, from the stored ones.

        Args:
            batch_size: transitions drawn.
            beta: ignored. Uniform draws need no importance weights: the batch's ``indices`` and ``weights`` are
                None. (Prioritized replay's exponent, taken here too so that callers need not know which buffer
                they sample.)
        """
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        index = torch.randint(self.size, (batch_size,), device=self.device, generator=self.generator)
        return ReplayBatch(**self._gather(index))

    def _gather(self, index: Tensor) -> dict[str, Observations]:
        """The stored transitions at ``index``, field by field (key by key for structured observations)."""
        # index_select, not tensor[index]: the same gather at a fraction of the per-call overhead on small batches.
        return {
            name: stored.index_select(0, index)
            if isinstance(stored, Tensor)
            else tree_map(lambda key_stored: key_stored.index_select(0, index), stored)
            for name, stored in self.storage.items()
        }

    def update_priorities(self, indices: Tensor | None, priorities: Tensor) -> None:
        """Do nothing: uniform replay has no priorities. (Taken so that an algorithm can always hand back the new
        priorities of a batch, ``update_priorities(batch.indices, td_errors)``, whichever buffer it samples.)

        Args:
            indices: the batch's ``indices`` (None for a uniform batch).
            priorities: the new priorities of those transitions.
        """

    def state_dict(self, include_storage: bool = True) -> dict[str, Any]:
        """Everything needed to continue exactly: stored transitions, the n-step window, the sampler.

        Without ``include_storage`` the stored transitions are left out (the state is then that of an empty
        buffer). A full buffer's tensors are handed over themselves, not copies, so that saving a large buffer
        does not need its size again in memory: write the state out before the buffer changes.
        """
        state: dict[str, Any] = {
            "position": self.position,
            "size": self.size if include_storage else 0,
            "head": self._head,
            "pending": self._pending.clone(),
            "window": {name: tree_map(Tensor.clone, t) for name, t in self.window.items()},
            "generator": self.generator.get_state(),
        }
        if include_storage:
            full = self.size == self.capacity
            kept = (lambda t: t) if full else (lambda t: t[: self.size].clone())
            state["storage"] = {name: tree_map(kept, t) for name, t in self.storage.items()}
        else:
            state["position"] = 0
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        size = state["size"]
        if size > self.capacity:
            raise ValueError(f"the saved buffer holds {size} transitions, more than capacity={self.capacity}")
        for name, saved in state.get("storage", {}).items():
            tree.assign(self.storage[name], slice(None, size), tree.to_device(saved, self.device))
        for name, saved in state["window"].items():
            tree_map(Tensor.copy_, self.window[name], saved)
        self.position, self.size, self._head = state["position"], size, state["head"]
        self._pending = state["pending"].clone()
        self.generator.set_state(state["generator"])

    def drop_unfinished(self) -> None:
        """Forget the n-step window's steps still waiting for their return: their episodes were cut off (the envs
        were reset without a final observation), so they can never be completed."""
        self._pending.zero_()

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored transitions."""
        return sum(t.numel() * t.element_size() for _, t in tree_leaves(self.storage))
