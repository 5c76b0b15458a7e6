"""The shared base of off-policy algorithms: a replay buffer filled by the collector, sampled in rounds."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader

from rl_lightning import seeding
from rl_lightning.algos.base import DEFAULT_EPOCH_STEPS, RLAlgorithm
from rl_lightning.buffers import (
    FrameStackReplayBuffer,
    PrioritizedFrameStackReplayBuffer,
    PrioritizedReplayBuffer,
    ReplayBatch,
    ReplayBuffer,
)
from rl_lightning.data import ReplayDataset
from rl_lightning.envs import EnvSpec, is_structured, observation_shape, torch_dtype
from rl_lightning.errors import ConfigurationError, check_hyperparameters


def check_train_freq(train_freq: int, num_envs: int, world_size: int = 1) -> None:
    """Refuse a ``train_freq`` that is not a whole number of steps of every env of every process."""
    step = num_envs * world_size
    if train_freq % step:
        envs, unit = f"the {num_envs} envs", "num_envs"
        if world_size > 1:
            envs, unit = f"{envs} of each of {world_size} processes", "num_envs * world_size"
        raise ConfigurationError(
            f"train_freq={train_freq} env steps is not a whole number of steps of {envs}; use a multiple of {unit} "
            f"such as {step * max(1, round(train_freq / step))}."
        )


def _batch_mean(losses: Tensor) -> Tensor:
    """The mean over the batch (dim 0), summed over any other dims (one per critic)."""
    mean = losses.mean(dim=0)
    return mean.sum() if mean.dim() else mean


class OffPolicyAlgorithm(RLAlgorithm):
    """An algorithm learning from a replay buffer: play ``train_freq`` env steps, take ``gradient_steps`` updates.

    A subclass passes its replay hyperparameters to ``super().__init__``, may replace the buffer through
    :meth:`make_buffer`, and reduces per-transition losses with :meth:`replay_loss` (which weights them and hands
    them back as priorities under prioritized replay). ``updates`` counts gradient updates, in checkpoints.

    Args:
        buffer_device: where the buffer's tensors live; default the module's device.
        save_buffer: keep the replay buffer in checkpoints, so a resumed run continues exactly. Its size is
            reported when training starts; without it, a resumed run starts with an empty buffer.
        prioritized_replay: proportional prioritized replay (Schaul et al., 2016): transitions are drawn with
            probability proportional to their last priority (``|TD error|``, or the loss the algorithm names) to
            the power ``prioritized_alpha``, and their losses weighted by importance weights
            ``(N * P(i))^-beta / max``, beta annealed linearly to 1.
        prioritized_alpha: how much the priorities count (0: uniform draws).
        prioritized_beta: the importance-weight exponent at the start (1 at ``total_timesteps``).
    """

    def __init__(
        self,
        env: EnvSpec,
        *,
        buffer_size: int,
        learning_starts: int,
        batch_size: int,
        gamma: float,
        train_freq: int,
        gradient_steps: int,
        n_step: int,
        buffer_device: str | None = None,
        save_buffer: bool = True,
        prioritized_replay: bool = False,
        prioritized_alpha: float = 0.6,
        prioritized_beta: float = 0.4,
        **run: Any,
    ) -> None:
        super().__init__(env, **run)
        check_hyperparameters(prioritized_alpha=prioritized_alpha, prioritized_beta=prioritized_beta)
        check_hyperparameters(buffer_size=buffer_size, batch_size=batch_size, train_freq=train_freq, n_step=n_step)
        check_hyperparameters(gamma=gamma, learning_starts=learning_starts, gradient_steps=gradient_steps)
        num_envs = self.num_envs
        if buffer_size < num_envs * n_step:
            raise ConfigurationError(
                f"buffer_size={buffer_size} cannot hold one step of {num_envs} envs for n_step={n_step}; "
                f"use buffer_size >= {num_envs * n_step}."
            )
        check_train_freq(train_freq, num_envs)
        if run.get("steps_per_epoch") is None:
            self.steps_per_epoch = train_freq * math.ceil(DEFAULT_EPOCH_STEPS / train_freq)
        if self.steps_per_epoch % train_freq:
            raise ConfigurationError(
                f"steps_per_epoch={self.steps_per_epoch} must be a multiple of train_freq={train_freq}, e.g. "
                f"{train_freq * max(1, round(self.steps_per_epoch / train_freq))}."
            )
        if learning_starts >= self.total_timesteps:
            raise ConfigurationError(
                f"learning_starts={learning_starts} is not below total_timesteps={self.total_timesteps}: training "
                f"would end before the first update. Lower learning_starts or raise total_timesteps."
            )
        if batch_size > buffer_size:
            raise ConfigurationError(
                f"batch_size={batch_size} is larger than buffer_size={buffer_size}, all the transitions the buffer "
                f"can hold. Raise buffer_size to at least {batch_size}, or lower batch_size."
            )
        first_update_size = max(learning_starts, train_freq)
        if batch_size > first_update_size:
            raise ConfigurationError(
                f"batch_size={batch_size} is larger than the {first_update_size} transitions the buffer holds "
                f"at the first update (learning_starts={learning_starts}, "
                f"train_freq={train_freq}). Raise learning_starts to at least {batch_size}, or lower batch_size."
            )
        self.buffer_size, self.learning_starts, self.batch_size = buffer_size, learning_starts, batch_size
        self.gamma, self.train_freq, self.gradient_steps, self.n_step = gamma, train_freq, gradient_steps, n_step
        self.buffer_device, self.save_buffer = buffer_device, save_buffer
        self.prioritized_replay, self.prioritized_alpha = prioritized_replay, prioritized_alpha
        self.prioritized_beta = prioritized_beta
        self.buffer: ReplayBuffer | None = None
        self.updates = 0  # gradient updates so far

    def action_shape(self) -> tuple[int, ...]:
        space = self.action_space
        return () if isinstance(space, gym.spaces.Discrete) else tuple(space.shape)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit":
            check_train_freq(self.train_freq, self.num_envs, self.world_size)  # env steps count every process's
        if stage == "fit" and self.buffer is None:
            self.buffer = self.make_buffer(self.buffer_device or self.trainer.strategy.root_device)

    def action_mask_size(self) -> int | None:
        """Entries of the training env's valid-action masks, or None if it gives none: what a buffer made by
        :meth:`make_buffer` keeps of each transition's next observation (``action_mask_size``)."""
        masks = None if self.collector is None else self.collector.action_masks
        return None if masks is None else masks.shape[-1]

    def make_buffer(self, device: torch.device | str) -> ReplayBuffer:
        """The replay buffer (called once, when fitting starts, after the training envs are reset): uniform or
        prioritized, storing each frame once where the observations are frame stacks
        (:class:`~rl_lightning.buffers.FrameStackReplayBuffer`; for single-tensor observations: a ``Dict``
        observation's stacks are stored whole, key by key); override for another kind, passing it
        :meth:`action_mask_size`."""
        space, stack = self.observation_space, self.env_traits.frame_stack
        replay = {
            "action_shape": self.action_shape(),
            "action_dtype": torch_dtype(self.action_space),
            "num_envs": self.num_envs,
            "n_step": self.n_step,
            "gamma": self.gamma,
            "device": device,
            "seed": seeding.stream_seed(self.seed, "replay", self.global_rank),
        }
        prioritized = {}
        if self.prioritized_replay:
            prioritized = {"alpha": self.prioritized_alpha, "beta": self.prioritized_beta}
        if stack is not None and stack.size > 1 and not is_structured(space):
            if self.action_mask_size() is not None:
                raise ConfigurationError(
                    "the frame-stack replay buffer (chosen for frame-stacked observations) takes no action masks yet: "
                    "drop the env's action masks, or its frame stacking."
                )
            kind = PrioritizedFrameStackReplayBuffer if self.prioritized_replay else FrameStackReplayBuffer
            frames = (space.shape[1:], torch_dtype(space), stack.size, stack.padding)
            return kind(self.buffer_size, *frames, **replay, **prioritized)
        replay["action_mask_size"] = self.action_mask_size()
        kind = PrioritizedReplayBuffer if self.prioritized_replay else ReplayBuffer
        return kind(self.buffer_size, observation_shape(space), torch_dtype(space), **replay, **prioritized)

    def replay_loss(self, batch: ReplayBatch, losses: Tensor, priorities: Tensor | None = None) -> Tensor:
        """The batch mean of per-transition ``losses`` (or ``losses`` if already a mean), importance-weighted under
        prioritized replay, where ``priorities`` (default: the losses) become the transitions' new priorities (and
        beta moves on for the next batch). ``losses`` of shape ``(batch, k)`` (one column per critic) are averaged
        over the batch and summed over ``k``; give their ``priorities`` then, one per transition."""
        if batch.weights is None:
            return losses if losses.dim() == 0 else _batch_mean(losses)
        self.buffer.update_priorities(batch.indices, losses.detach() if priorities is None else priorities)
        self.buffer.beta = self.prioritized_beta + min(1.0, self.env_steps / self.total_timesteps) * (
            1.0 - self.prioritized_beta
        )
        weights = batch.weights if losses.dim() == 1 else batch.weights.unsqueeze(1)
        return _batch_mean(weights * losses)

    def critic_loss(self, batch: ReplayBatch, q: Tensor, target: Tensor) -> Tensor:
        """``sum_i mean_batch (Q_i(s, a) - target)^2`` over the critics' values ``q`` ``(batch, n_critics)``, through
        :meth:`replay_loss`.

        Under prioritized replay a transition's new priority is the largest of its critics' ``|TD error|``, not
        their mean: every critic is trained on the transition, so it is learned only once the worst-fitting critic
        fits it, and a mean would let one critic's small error hide the other's large one. (LAP, Fujimoto et al.,
        2020, prioritises TD3 by the larger of its two critics' errors too.)
        """
        td_errors = q - target.unsqueeze(1)
        priorities = None if batch.weights is None else td_errors.detach().abs().amax(1)
        return self.replay_loss(batch, td_errors.square(), priorities)

    @torch.no_grad()
    def uniform_actions(self, batch: int, action_dim: int, device: torch.device) -> Tensor:
        """Actions uniform in [-1, 1]^action_dim from the exploration stream: the warm-up before learning starts."""
        return torch.empty(batch, action_dim, device=device).uniform_(-1.0, 1.0, generator=self.generator)

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.save_buffer and self.trainer.checkpoint_callbacks:
            rank_zero_info(
                f"Checkpoints hold the replay buffer: up to {self.buffer_size} transitions, "
                f"{self.buffer.nbytes / 2**20:.1f} MiB when full (save_buffer=False leaves it out)."
            )

    def train_dataloader(self) -> DataLoader:
        dataset = ReplayDataset(
            self,
            self.collector,
            self.buffer,
            batch_size=self.batch_size,
            train_freq=self.train_freq,
            gradient_steps=self.gradient_steps,
            learning_starts=self.learning_starts,
            steps_per_epoch=self.steps_per_epoch,
            total_timesteps=self.total_timesteps,
            world_size=self.world_size,
        )
        return DataLoader(dataset, batch_size=None, num_workers=0)

    def rl_state_dict(self) -> dict[str, Any]:
        state = {**super().rl_state_dict(), "updates": self.updates}
        if self.buffer is not None:
            state["buffer"] = self.buffer.state_dict(include_storage=self.save_buffer)
        return state

    def load_rl_state_dict(self, state: dict[str, Any]) -> None:
        super().load_rl_state_dict(state)
        self.updates = state.get("updates", 0)
        if self.buffer is not None and "buffer" in state:
            if "storage" not in state["buffer"]:
                rank_zero_warn(
                    "The checkpoint holds no replay buffer (it was saved with save_buffer=False): the resumed run "
                    "starts with an empty buffer, so it does not repeat the uninterrupted run."
                )
            self.buffer.load_state_dict(state["buffer"])

    def restart_episodes(self) -> None:
        super().restart_episodes()
        self.buffer.drop_unfinished()
