"""Algorithms on torch-native vector envs (``vectorization="torch"``): built on the module's device, trained, evaluated
and logged as with gymnasium envs; bad input refused; a learning test on the torch CartPole config."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping

from rl_lightning import DQN, PPO, SAC, ConfigurationError
from rl_lightning.envs import CartPole, TorchVectorEnv
from tests.helpers import CONTINUOUS_SMALL, DQN_SMALL, PPO_SMALL, trainer
from tests.toy_envs import TorchCountingEnv

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.mark.parametrize(
    ("algorithm", "env", "small"),
    [(PPO, "CartPole-v1", PPO_SMALL), (DQN, "CartPole-v1", DQN_SMALL), (SAC, "Pendulum-v1", CONTINUOUS_SMALL)],
    ids=["ppo", "dqn", "sac"],
)
def test_a_torch_env_is_trained_evaluated_and_logged(algorithm: type, env: str, small: dict[str, Any]) -> None:
    module = algorithm(env, vectorization="torch", seed=1, **small)
    run = trainer()
    run.fit(module)
    metrics = run.callback_metrics
    assert module.env_steps == small["total_timesteps"]
    assert math.isfinite(metrics["val/return_mean"].item()) and math.isfinite(metrics["val/length_mean"].item())
    # Random policies end CartPole episodes within a few dozen steps; Pendulum's last 200 steps.
    episode_length = metrics["train/episode_length"].item()
    assert (episode_length == 200) if env == "Pendulum-v1" else (5 <= episode_length < 100)


def test_the_envs_are_built_on_the_modules_device_and_kept_there() -> None:
    module = PPO("CartPole-v1", vectorization="torch", **PPO_SMALL)
    seen: list[torch.device] = []

    class Spy(EarlyStopping):
        def on_train_epoch_end(self, trainer: Any, pl_module: PPO) -> None:
            seen.append(pl_module.collector.env.device)
            seen.append(pl_module.collector.observations.device)

    trainer(callbacks=[Spy("val/return_mean")]).fit(module)
    assert isinstance(module.observation_space, type(CartPole(1).single_observation_space))
    assert seen and all(device == torch.device("cpu") for device in seen)


def test_vectorization_torch_is_refused_for_an_env_without_a_torch_implementation() -> None:
    with pytest.raises(ConfigurationError, match="has no torch implementation"):
        PPO("LunarLander-v3", vectorization="torch", **PPO_SMALL)


def test_a_factory_building_another_number_of_envs_is_refused() -> None:
    def factory(num_envs: int, device: Any = None) -> TorchVectorEnv:
        return TorchCountingEnv(num_envs + 1, device=device)

    # Refused when the module probes the spaces with one env.
    with pytest.raises(ConfigurationError, match=r"built 2 envs where num_envs=1 was asked for"):
        PPO(factory, vectorization="torch", **PPO_SMALL)


@pytest.mark.learning
def test_ppo_solves_torch_cartpole_within_50k_env_steps() -> None:
    """experiments/ppo_cartpole_torch.yaml: deterministic eval >= 475 within 49,152 env steps (12 epochs of 4,096).

    Evaluated every 4,096 env steps; training stops at the first evaluation that reaches 475 (seed 1: at 28,672).
    Seeds 0-11 solved within 49,152 env steps 9 times (the env's random stream as drawn since its state is kept
    column by column; 11 times with the stream of before, where seed 0 solved at 24,576 and is now at 353).
    """
    config = yaml.safe_load((EXPERIMENTS / "ppo_cartpole_torch.yaml").read_text())["model"]["init_args"]
    ppo = PPO(**{**config, "total_timesteps": 49_152, "seed": 1})
    run = trainer(callbacks=[EarlyStopping("val/return_mean", mode="max", stopping_threshold=475, patience=1000)])
    run.fit(ppo)
    assert run.callback_metrics["val/return_mean"].item() >= 475
