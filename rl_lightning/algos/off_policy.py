"""The shared base of off-policy algorithms: a replay buffer filled by the collector, sampled in rounds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader

from rl_lightning.algos.base import DEFAULT_EPOCH_STEPS, RLAlgorithm, torch_dtype
from rl_lightning.buffers import ReplayBuffer
from rl_lightning.data import ReplayDataset
from rl_lightning.envs import EnvSpec
from rl_lightning.envs.factory import Vectorization, Wrapper
from rl_lightning.errors import ConfigurationError, check_fraction, check_positive


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


class OffPolicyAlgorithm(RLAlgorithm):
    """An algorithm learning from a replay buffer: play ``train_freq`` env steps, take ``gradient_steps`` updates.

    Args (besides those of :class:`RLAlgorithm`):
        buffer_size: transitions the replay buffer keeps (per process).
        learning_starts: env steps played before the first update.
        batch_size: transitions per update (per process: under DDP an update averages ``world_size`` batches).
        gamma: discount factor.
        train_freq: env steps played between rounds of updates, over all processes (a multiple of
            ``num_envs * world_size``).
        gradient_steps: updates per round; -1 for one per env step of the round.
        n_step: rewards summed into each transition's return (1 is the one-step TD target).
        buffer_device: where the buffer's tensors live; default the module's device.
        save_buffer: keep the replay buffer in checkpoints, so a resumed run continues exactly. Its size is
            reported when training starts; without it, a resumed run starts with an empty buffer.
    """

    def __init__(
        self,
        env: EnvSpec,
        num_envs: int,
        *,
        buffer_size: int,
        learning_starts: int,
        batch_size: int,
        gamma: float,
        train_freq: int,
        gradient_steps: int,
        n_step: int,
        buffer_device: str | None,
        save_buffer: bool,
        seed: int,
        total_timesteps: int,
        steps_per_epoch: int | None,
        vectorization: Vectorization,
        env_kwargs: dict[str, Any] | None,
        wrappers: Sequence[Wrapper],
        eval_episodes: int,
        eval_envs: int,
    ) -> None:
        check_positive(
            num_envs=num_envs, buffer_size=buffer_size, batch_size=batch_size, train_freq=train_freq
        )
        check_positive(n_step=n_step)
        check_fraction(gamma=gamma)
        if buffer_size < num_envs * n_step:
            raise ConfigurationError(
                f"buffer_size={buffer_size} cannot hold one step of {num_envs} envs for n_step={n_step}; "
                f"use buffer_size >= {num_envs * n_step}."
            )
        if learning_starts < 0:
            raise ConfigurationError(f"learning_starts={learning_starts} must be >= 0.")
        if gradient_steps == 0 or gradient_steps < -1:
            raise ConfigurationError(
                f"gradient_steps={gradient_steps} must be positive, or -1 for one per env step."
            )
        check_train_freq(train_freq, num_envs)
        if steps_per_epoch is None:
            steps_per_epoch = train_freq * math.ceil(DEFAULT_EPOCH_STEPS / train_freq)
        if steps_per_epoch % train_freq:
            raise ConfigurationError(
                f"steps_per_epoch={steps_per_epoch} must be a multiple of train_freq={train_freq}, e.g. "
                f"{train_freq * max(1, round(steps_per_epoch / train_freq))}."
            )
        first_update_size = min(buffer_size, max(learning_starts, train_freq))
        if batch_size > first_update_size:
            raise ConfigurationError(
                f"batch_size={batch_size} is larger than the {first_update_size} transitions the buffer holds "
                f"at the first update (buffer_size={buffer_size}, learning_starts={learning_starts}, "
                f"train_freq={train_freq}). Raise learning_starts to at least {batch_size}, or lower batch_size."
            )
        super().__init__(
            env,
            num_envs,
            seed=seed,
            total_timesteps=total_timesteps,
            steps_per_epoch=steps_per_epoch,
            vectorization=vectorization,
            env_kwargs=env_kwargs,
            wrappers=wrappers,
            eval_episodes=eval_episodes,
            eval_envs=eval_envs,
        )
        self.buffer_size, self.learning_starts, self.batch_size = buffer_size, learning_starts, batch_size
        self.gamma, self.train_freq, self.gradient_steps, self.n_step = (
            gamma,
            train_freq,
            gradient_steps,
            n_step,
        )
        self.buffer_device, self.save_buffer = buffer_device, save_buffer
        self.buffer: ReplayBuffer | None = None

    def action_shape(self) -> tuple[int, ...]:
        space = self.action_space
        return () if isinstance(space, gym.spaces.Discrete) else tuple(space.shape)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit":
            check_train_freq(self.train_freq, self.num_envs, self.world_size)  # env steps count every process's
        if stage == "fit" and self.buffer is None:
            self.buffer = ReplayBuffer(
                self.buffer_size,
                self.observation_space.shape,
                torch_dtype(self.observation_space),
                self.action_shape(),
                torch_dtype(self.action_space),
                num_envs=self.num_envs,
                n_step=self.n_step,
                gamma=self.gamma,
                device=self.buffer_device or self.trainer.strategy.root_device,
                seed=self.seed + self.global_rank,
            )

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
        state = super().rl_state_dict()
        if self.buffer is not None:
            state["buffer"] = self.buffer.state_dict(include_storage=self.save_buffer)
        return state

    def load_rl_state_dict(self, state: dict[str, Any]) -> None:
        super().load_rl_state_dict(state)
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
