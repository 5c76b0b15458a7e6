"""What several test modules need: a quiet Trainer, small run settings, toy networks, envs and policies."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import lightning as L
import numpy as np
import torch
from torch import nn

# Runs short enough for unit tests, per algorithm (a few hundred env steps, two epochs).
DQN_SMALL = dict(
    hidden_sizes=(32,), learning_starts=256, batch_size=32, train_freq=4, gradient_steps=1, target_update_interval=100,
    total_timesteps=1024, steps_per_epoch=512, eval_episodes=2, eval_envs=2,
)
"""2 epochs of 512 env steps, updates from step 256."""
PPO_SMALL = dict(
    num_envs=2, hidden_sizes=(16,), n_steps=32, batch_size=16, n_epochs=2, total_timesteps=256, steps_per_epoch=128,
    eval_episodes=2, eval_envs=2,
)
"""2 epochs of 2 rollouts of 32 steps of 2 envs."""
A2C_SMALL = dict(
    num_envs=2, n_steps=8, hidden_sizes=(16,), total_timesteps=64, steps_per_epoch=32, eval_episodes=2, eval_envs=2
)
CONTINUOUS_SMALL = dict(
    hidden_sizes=(32,), learning_starts=64, batch_size=32, total_timesteps=512, steps_per_epoch=256, eval_episodes=1,
    eval_envs=1,
)
"""SAC, TD3 and DDPG."""


def trainer(**overrides: Any) -> L.Trainer:
    """A CPU Trainer without logger, checkpoints, progress bar, summary or sanity check, run to total_timesteps."""
    options = dict(
        max_epochs=-1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    return L.Trainer(**{**options, **overrides})


def parameters(module: nn.Module) -> list[torch.Tensor]:
    """Copies of ``module``'s parameters, to compare before and after."""
    return [p.detach().clone() for p in module.parameters()]


class Constant(nn.Module):
    """A network whose output ignores the observations: ``values`` repeated over the batch."""

    def __init__(self, *values: float) -> None:
        super().__init__()
        self.values = nn.Parameter(torch.tensor(values))

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.values.expand(observations.shape[0], -1)


class TupleObservations(gym.Env):
    """An env with a nested Tuple observation space, which the algorithms refuse (one level deep is taken)."""

    observation_space = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Tuple((gym.spaces.Discrete(3),))))
    action_space = gym.spaces.Discrete(2)


class ZeroPolicy:
    """A memoryless policy (the policy contract's case without state): always action 0.

    Remembers whether gradients were on whenever it acted, and plays the module's part of a dataset's learner
    (an ``env_steps`` clock).
    """

    def __init__(self) -> None:
        self.env_steps = 0
        self.acted_with_grad = False

    def policy_step(
        self, observations: torch.Tensor, state: Any, episode_starts: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, Any]:
        self.acted_with_grad |= torch.is_grad_enabled()
        return torch.zeros(len(observations), dtype=torch.long), state


class StepsSinceStartPolicy(ZeroPolicy):
    """A policy with memory: its state counts, per env, the observations seen since its episode started.

    Records the state it was given at every call, so a test can check where the collector reset it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[np.ndarray] = []

    def policy_step(
        self, observations: torch.Tensor, state: Any, episode_starts: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, Any]:
        actions, _ = super().policy_step(observations, state, episode_starts, deterministic)
        counts = torch.zeros(len(observations), dtype=torch.long) if state is None else state
        counts = torch.where(episode_starts, 0, counts) + 1
        self.seen.append(counts.numpy().copy())
        return actions, counts
