"""Proportional prioritized replay (Schaul et al., 2016): transitions drawn in proportion to their TD errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from rl_lightning.buffers.frame_stack import FrameStackReplayBuffer
from rl_lightning.buffers.replay import ReplayBatch, ReplayBuffer
from rl_lightning.buffers.sum_tree import SumTree
from rl_lightning.errors import ConfigurationError, check_hyperparameters
from rl_lightning.tree import Observations


class _PrioritizedSampling:
    """Proportional prioritization over a replay buffer's ring (the buffer after it in the class's bases): a sum tree
    of the priorities beside the storage, drawing, importance weights and the priority write-back.

    Composed with :class:`ReplayBuffer` (:class:`PrioritizedReplayBuffer`) and with
    :class:`~rl_lightning.buffers.FrameStackReplayBuffer` (:class:`PrioritizedFrameStackReplayBuffer`): it takes the
    buffer's arguments as they are (``device`` by name), and relies only on its ``_write`` (every stored row passes
    there), ``_gather`` and ``size``.
    """

    def __init__(
        self,
        *args: Any,
        device: torch.device | str = "cpu",
        alpha: float = 0.6,
        beta: float = 0.4,
        epsilon: float = 1e-6,
        **kwargs: Any,
    ) -> None:
        # Checked before the storage (gigabytes, for pixels) is allocated.
        check_hyperparameters(alpha=alpha)
        self.alpha = float(alpha)
        self.beta = beta
        if not epsilon > 0.0:
            raise ConfigurationError(f"epsilon={epsilon!r} must be > 0, so that no transition has probability 0.")
        if (
            torch.device(device).type == "cuda"
            and torch.are_deterministic_algorithms_enabled()
            and not torch.is_deterministic_algorithms_warn_only_enabled()
        ):  # else the first draw, long after the start, would fail in torch.cumsum
            raise ConfigurationError(
                "Prioritized replay on a GPU draws with torch.cumsum, which has no deterministic CUDA kernel, and "
                "deterministic algorithms are enforced (Trainer(deterministic=True)): keep the buffer on the CPU "
                "(buffer_device='cpu') or let them warn instead (Trainer(deterministic='warn'))."
            )
        self.epsilon = float(epsilon)
        super().__init__(*args, device=device, **kwargs)
        self.tree = SumTree(self.capacity, device=self.device)
        # The largest p^alpha seen so far, on the device so that keeping it up to date reads nothing back.
        self.max_priority = torch.ones((), device=self.device)
        self._max_priority_slot = self.max_priority.view(1)
        self._max_slots = torch.zeros(0, dtype=torch.long, device=self.device)

    @property
    def beta(self) -> float:
        """The importance-sampling exponent of :meth:`sample` when it is given none, in [0, 1]."""
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        check_hyperparameters(beta=value)
        self._beta = float(value)

    def _write(self, envs: Tensor | None, already_selected: tuple[str, ...] = (), **fields: Observations) -> int:
        start = self.position
        count = super()._write(envs, already_selected, **fields)
        if count:
            self.tree.fill(start, count, self.max_priority)
        return count

    def sample(self, batch_size: int, beta: float | None = None) -> ReplayBatch:
        """``batch_size`` transitions drawn in proportion to their priorities, with their ``indices`` and
        importance ``weights``.

        Args:
            batch_size: transitions drawn (with replacement).
            beta: the importance-sampling exponent, in [0, 1]; default :attr:`beta`.
        """
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        if beta is None:
            beta = self._beta
        else:
            check_hyperparameters(beta=beta)
        # A draw that rounding carried past the last priority in use may end there: clamped to it.
        index = self.tree.sample(batch_size, self.generator, below=self.size)
        priorities = self.tree.levels[0].index_select(0, index)
        # (N * P(i))^-beta / max_j (N * P(j))^-beta = (min_j p_j / p_i)^beta: N and the total cancel out. Made
        # outside inference mode, as the loss keeps the weights for its backward pass.
        weights = (priorities.min() / priorities).pow_(beta)
        return ReplayBatch(**self._gather(index), indices=index, weights=weights)

    def update_priorities(self, indices: Tensor | None, priorities: Tensor) -> None:
        """Set the priorities of the transitions at ``indices`` (those of a batch just learned from).

        Where an index repeats (a transition drawn twice in one batch), the largest of its priorities is kept.

        Args:
            indices: the batch's ``indices``, a 1-dim long tensor on the buffer's device.
            priorities: one per index: the magnitudes of the transitions' TD errors (the sign is ignored; no
                gradient flows).
        """
        if indices is None:
            raise ValueError("update_priorities needs the indices of a batch of this buffer (batch.indices)")
        with torch.inference_mode():  # as the tree's own ops: nothing here needs autograd's bookkeeping
            priorities = priorities.abs().to(torch.float32).add_(self.epsilon).pow_(self.alpha)
            # The running maximum in one op: every value reduced into the one element.
            if len(self._max_slots) != len(priorities):
                self._max_slots = torch.zeros(len(priorities), dtype=torch.long, device=self.device)
            self._max_priority_slot.scatter_reduce_(0, self._max_slots, priorities, "amax")
            self.tree.set(indices, priorities)

    def state_dict(self, include_storage: bool = True) -> dict[str, Any]:
        """:meth:`ReplayBuffer.state_dict` and the priorities (a full tree's leaves handed over uncopied as well)."""
        state = super().state_dict(include_storage)
        state["priorities"] = {"max": self.max_priority.clone(), "beta": self._beta}
        if include_storage:
            state["priorities"]["tree"] = self.tree.state_dict(self.size)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the state of a uniform :class:`ReplayBuffer` gets the priority 1 for all."""
        super().load_state_dict(state)
        saved = state.get("priorities", {})
        self.max_priority.fill_(saved.get("max", 1.0))
        self.beta = saved.get("beta", self._beta)
        if "tree" in saved:
            self.tree.load_state_dict(saved["tree"])
        else:
            self.tree.clear()
            self.tree.fill(0, self.size, self.max_priority)


class PrioritizedReplayBuffer(_PrioritizedSampling, ReplayBuffer):
    """Replay that draws transition ``i`` with probability ``P(i) = p_i^alpha / sum_k p_k^alpha`` (proportional
    prioritization), and weights it by ``w_i = (N * P(i))^-beta / max_j w_j`` to correct the bias of the draws.

    ``p_i`` is the magnitude of the transition's last TD error plus ``epsilon`` (so that none is left
    with probability 0), handed back by :meth:`update_priorities` after each update; a new transition gets the largest
    priority seen so far, so that it is drawn soon. A batch takes one draw from each of ``batch_size`` equal
    slices of the total priority (stratified, as in the paper), with the buffer's seeded generator. The
    normaliser ``max_j w_j`` is the batch's, so the weights only ever scale losses down.

    The priorities ``p_i^alpha`` live in a :class:`SumTree` (float32 leaves, float64 sums) on the buffer's
    device: drawing and updating take a fixed number of batched tensor ops, with nothing read back to the host.
    Everything else (n-step returns, several envs, the ring) is :class:`ReplayBuffer`'s, and :meth:`state_dict`
    adds the tree, so that a restored buffer draws the same batches.

    Args:
        capacity / observation_shape / observation_dtype / action_shape / action_dtype / num_envs / n_step /
            gamma / device / seed / action_mask_size: as for :class:`ReplayBuffer`.
        alpha: how much the priorities count, in [0, 1]: 0 draws uniformly, 1 in proportion to the priorities
            (the paper: 0.6).
        beta: the importance-sampling exponent ``sample`` uses unless given one, in [0, 1]: 0 leaves the bias
            uncorrected, 1 corrects it fully. The paper anneals it from 0.4 to 1 over training: assign
            ``buffer.beta`` as it goes, or pass ``beta`` to each ``sample``.
        epsilon: added to every priority (> 0).
    """

    def __init__(
        self,
        capacity: int,
        observation_shape: Sequence[int],
        observation_dtype: torch.dtype,
        action_shape: Sequence[int],
        action_dtype: torch.dtype,
        num_envs: int = 1,
        n_step: int = 1,
        gamma: float = 0.99,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        action_mask_size: int | None = None,
        alpha: float = 0.6,
        beta: float = 0.4,
        epsilon: float = 1e-6,
    ) -> None:
        super().__init__(
            capacity, observation_shape, observation_dtype, action_shape, action_dtype, num_envs, n_step, gamma,
            device=device, seed=seed, action_mask_size=action_mask_size, alpha=alpha, beta=beta, epsilon=epsilon,
        )  # fmt: skip


class PrioritizedFrameStackReplayBuffer(_PrioritizedSampling, FrameStackReplayBuffer):
    """:class:`~rl_lightning.buffers.FrameStackReplayBuffer` (each frame stored once) drawing as
    :class:`PrioritizedReplayBuffer` does: the same prioritization, composed with the frame-stack storage.

    A transition that leaves the buffer early (its first frame overwritten in the frame ring) gets the priority 0, so
    that draws skip it as the uniform frame-stack buffer's do. (Only a draw that floating-point rounding carries past
    the end of a block of the sum tree could still end on such a zero leaf, as :meth:`SumTree.find` says: the odds
    are those of a rounding error in float64 sums, and the batch is then built from since-overwritten frames.)

    Args:
        capacity / frame_shape / frame_dtype / stack_size / padding / action_shape / action_dtype / num_envs /
            n_step / gamma / device / seed / episode_length: as for :class:`FrameStackReplayBuffer`.
        alpha / beta / epsilon: as for :class:`PrioritizedReplayBuffer`.
    """

    def _rows_left(self, start: int, count: int) -> None:
        self.tree.fill(start, count, 0.0)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the state of a uniform frame-stack buffer gets the priority 1 for the rows
        it can draw, 0 for those that left early."""
        super().load_state_dict(state)
        if "tree" not in state.get("priorities", {}):
            self._rows_left((self.position - self.size) % self.capacity, self.size - self.sampleable)
