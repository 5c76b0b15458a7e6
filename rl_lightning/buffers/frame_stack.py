"""Replay of frame-stacked observations that stores each frame once and stacks at sampling time (as Dopamine does).

An Atari observation is a stack of the last 4 frames, and consecutive observations share 3 of them: storing
stacks, as the plain buffer does, keeps every frame 8 times (4 in ``observations``, 4 in
``next_observations``). Here each frame is kept once, in a ring of frames, and each transition keeps the
indices of its frames; a batch gathers them. For 1M Atari transitions that is about 7.3 GB instead of 56 GB.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from rl_lightning.buffers.replay import ReplayBatch, ReplayBuffer, _bool_flags


class FrameStackReplayBuffer(ReplayBuffer):
    """:class:`ReplayBuffer` for observations that are stacks of an env's last frames, each frame stored once.

    Takes and gives the same stacks as the plain buffer (``add`` the env's stacked observations, ``sample``
    stacked batches, identical for the same indices), with the same n-step returns and episode boundaries:
    the n-step logic is the plain buffer's, run on frame indices instead of frames. Each env step stores one
    frame per env, the newest of its next observation; the observation that starts an episode (after the
    vector env's autoreset step) is its newest frame padded as the env's stacker pads (``padding``), so no
    frame of the previous episode enters its stacks. Which frames go where is decided on the host from the
    done and valid flags, as in the plain buffer: the frames themselves are never read back.

    Frames outlive the transitions that use them by one per episode (an episode of L steps has L + 1 frames),
    so the frame ring holds ``capacity / episode_length`` frames beyond ``capacity``. Where the buffer's episodes
    are shorter than that on average, the oldest transitions leave the buffer before ``capacity`` is reached
    (only transitions whose frames are all kept are sampled).

    Args:
        capacity: number of transitions kept.
        frame_shape / frame_dtype: one frame, an observation being ``(stack_size, *frame_shape)``.
        stack_size: frames in one observation.
        padding: ``"reset"`` (a new episode's stack is its first frame repeated: gymnasium's
            ``FrameStackObservation`` default) or ``"zero"`` (zeros before the first frame).
        action_shape / action_dtype, num_envs, n_step, gamma, device, seed: as for :class:`ReplayBuffer`.
        episode_length: the shortest mean episode length (in env steps) at which ``capacity`` transitions fit.
    """

    def __init__(
        self,
        capacity: int,
        frame_shape: Sequence[int],
        frame_dtype: torch.dtype,
        stack_size: int,
        padding: Literal["reset", "zero"],
        action_shape: Sequence[int],
        action_dtype: torch.dtype,
        num_envs: int = 1,
        n_step: int = 1,
        gamma: float = 0.99,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        episode_length: int = 32,
    ) -> None:
        if padding not in ("reset", "zero"):
            raise ValueError(f"padding={padding!r} must be 'reset' or 'zero'")
        # The frame indices of each observation stand in for the observation in the plain buffer's storage.
        super().__init__(
            capacity, (stack_size,), torch.int32, action_shape, action_dtype, num_envs, n_step, gamma, device, seed
        )
        self.stack_size, self.padding = stack_size, padding
        # A transition written now uses frames stored during the last n_step + stack_size adds (one frame per env
        # each) or, for the first observation of an env, its whole stack stored at once.
        self._lag_adds = n_step + stack_size
        reach = self._lag_adds * num_envs + stack_size * num_envs
        self.frame_capacity = capacity + capacity // episode_length + reach
        # Uninitialised, as the plain buffer's ring (its pages resident only once written): a stack only ever names
        # frames stored since the ring began, or the padding frame. With zero padding, one more frame (after the ring)
        # is that zero frame.
        padding_frames = 1 if padding == "zero" else 0
        self.frames = torch.empty(
            (self.frame_capacity + padding_frames, *frame_shape), dtype=frame_dtype, device=self.device
        )
        self.frames[self.frame_capacity :] = 0
        self._frames_added = 0  # frames ever stored: frame number i lives in slot i % frame_capacity
        self._stacks = np.zeros((num_envs, stack_size), dtype=np.int64)  # frame numbers of each env's observation
        self._known = np.zeros(num_envs, dtype=bool)  # whether those frames are stored
        # The frame count when each of the last lag adds began: a transition written now uses no earlier frame.
        self._add_starts: deque[int] = deque([0], maxlen=self._lag_adds)
        self._row_first_frame = np.zeros(capacity, dtype=np.int64)  # on the host: no earlier frame is used
        self.sampleable = 0  # the newest transitions whose frames are all kept

    def _store_frames(self, frames: Tensor) -> np.ndarray:
        """Store ``frames`` (one per row) in the ring; return their frame numbers."""
        numbers = np.arange(self._frames_added, self._frames_added + len(frames))
        self._frames_added += len(frames)
        slots = torch.from_numpy(numbers % self.frame_capacity).to(self.device, non_blocking=True)
        self.frames[slots] = frames.to(self.device, non_blocking=True)
        return numbers

    def _slots(self, numbers: np.ndarray) -> Tensor:
        return torch.from_numpy((numbers % self.frame_capacity).astype(np.int32))

    def add(
        self,
        observations: Tensor,
        actions: Tensor,
        rewards: Tensor,
        next_observations: Tensor,
        terminations: Tensor | np.ndarray,
        truncations: Tensor | np.ndarray,
        valid: Tensor | np.ndarray | None = None,
    ) -> int:
        """Add one step of every env, as :meth:`ReplayBuffer.add` (stacked observations in, frames stored)."""
        self._add_starts.append(self._frames_added)
        unknown = np.flatnonzero(~self._known)
        if len(unknown):  # an env's first observation (after a restart): all its frames
            stacks = observations[torch.from_numpy(unknown).to(observations.device)]
            self._stacks[unknown] = self._store_frames(stacks.flatten(0, 1)).reshape(len(unknown), self.stack_size)
            self._known[unknown] = True
        newest = self._store_frames(next_observations[:, -1])
        next_stacks = np.concatenate([self._stacks[:, 1:], newest[:, None]], axis=1)
        # The autoreset step's next observation starts an episode: its newest frame, padded.
        starts = ~_bool_flags(valid, self.num_envs, True).cpu().numpy()
        if starts.any():
            padding = newest[starts, None] if self.padding == "reset" else -1
            next_stacks[starts, :-1] = padding
        observation_slots, next_slots = self._slots(self._stacks), self._slots(next_stacks)
        if self.padding == "zero":  # the zero frame after the ring, whatever the ring's size
            observation_slots[torch.from_numpy(self._stacks < 0)] = self.frame_capacity
            next_slots[torch.from_numpy(next_stacks < 0)] = self.frame_capacity
        self._stacks = next_stacks
        start = self.position
        count = super().add(observation_slots, actions, rewards, next_slots, terminations, truncations, valid)
        rows = (np.arange(count) + start) % self.capacity
        self._row_first_frame[rows] = self._add_starts[0]
        self.sampleable = min(self.sampleable + count, self.capacity)
        # Transitions whose first frame the ring has overwritten leave, oldest first.
        first_kept, kept = self._frames_added - self.frame_capacity, self.sampleable
        while self.sampleable and self._row_first_frame[(self.position - self.sampleable) % self.capacity] < first_kept:
            self.sampleable -= 1
        if self.sampleable < kept:
            self._rows_left((self.position - kept) % self.capacity, kept - self.sampleable)
        return count

    def _rows_left(self, start: int, count: int) -> None:
        """The ``count`` rows from ``start`` on (wrapping past the ring's end) left the sampleable ones early: nothing
        to do here (draws never reach them); a prioritized buffer zeroes their priorities."""

    def gather(self, index: Tensor) -> ReplayBatch:
        """The transitions at ``index`` (positions in the storage), their observations stacked from the frames."""
        return ReplayBatch(**self._gather(index))

    def _gather(self, index: Tensor) -> dict[str, Tensor]:
        rows = {name: tensor[index] for name, tensor in self.storage.items()}
        for name in ("observations", "next_observations"):
            rows[name] = self.frames[rows[name].long()]
        return rows

    def sample(self, batch_size: int) -> ReplayBatch:
        """``batch_size`` transitions drawn uniformly, with replacement, from those whose frames are all kept.

        Drawn as the plain buffer draws them while no transition has left early, so the same seed gives the
        same batches.
        """
        if self.sampleable == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        if self.sampleable == self.size:
            index = torch.randint(self.size, (batch_size,), device=self.device, generator=self.generator)
        else:
            draws = torch.randint(self.sampleable, (batch_size,), device=self.device, generator=self.generator)
            index = (draws + (self.position - self.sampleable)) % self.capacity
        return self.gather(index)

    def state_dict(self, include_storage: bool = True) -> dict[str, Any]:
        """As :meth:`ReplayBuffer.state_dict`, with the frames: all of them, or without ``include_storage`` those
        of the transitions still in the n-step window and of the envs' current observations."""
        state = super().state_dict(include_storage)
        first = max(0, self._frames_added - self.frame_capacity) if include_storage else self._add_starts[0]
        numbers = np.arange(first, self._frames_added)
        if include_storage and self._frames_added >= self.frame_capacity:
            frames = self.frames[: self.frame_capacity]  # the whole ring, handed over as the storage is
        else:
            frames = self.frames[torch.from_numpy(numbers % self.frame_capacity).to(self.device)]
        state["frames"] = {
            "first": first,
            "frames": frames,
            "added": self._frames_added,
            "stacks": torch.from_numpy(self._stacks.copy()),
            "known": torch.from_numpy(self._known.copy()),
            "add_starts": list(self._add_starts),
            "row_first_frame": torch.from_numpy(self._row_first_frame.copy()) if include_storage else None,
            "sampleable": self.sampleable if include_storage else 0,
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        saved = state["frames"]
        first, added, frames = saved["first"], saved["added"], saved["frames"]
        if added - first >= self.frame_capacity:
            self.frames[: self.frame_capacity] = frames.to(self.device)
        else:
            slots = torch.from_numpy(np.arange(first, added) % self.frame_capacity).to(self.device)
            self.frames[slots] = frames.to(self.device)
        self._frames_added = added
        self._stacks = saved["stacks"].numpy().copy()
        self._known = saved["known"].numpy().copy()
        self._add_starts = deque(saved["add_starts"], maxlen=self._lag_adds)
        if saved["row_first_frame"] is not None:
            self._row_first_frame = saved["row_first_frame"].numpy().copy()
        self.sampleable = saved["sampleable"]

    def drop_unfinished(self) -> None:
        super().drop_unfinished()
        self._known[:] = False  # the envs were reset: their next observations are stored whole

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored transitions and frames."""
        return super().nbytes + self.frames.numel() * self.frames.element_size() + self._row_first_frame.nbytes
