"""SAC: its math on known values, its checks of bad input, the Trainer features, and a learning test."""

from __future__ import annotations

import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn

from rl_lightning import SAC, ConfigurationError
from rl_lightning.algos.schedules import parse_ent_coef
from rl_lightning.buffers import PrioritizedReplayBuffer, ReplayBatch
from rl_lightning.nets import example_observations, sample_squashed_gaussian
from tests.helpers import CONTINUOUS_SMALL as SMALL
from tests.helpers import trainer

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


class TwoQ(nn.Module):
    """A parameter-free critic of Pendulum: Q_1 = sum(s) + a, Q_2 = 2 sum(s) - a."""

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        total = observations.sum(dim=1, keepdim=True)
        return torch.cat([total + actions, 2 * total - actions], dim=1)


class TutorialCritic(nn.Module):
    """The kind of critic tutorials write: sizes in, (s, a) concatenated, one output per critic."""

    def __init__(self, obs_dim: int, action_dim: int, n_critics: int = 2) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(obs_dim + action_dim, 16), nn.ReLU(), nn.Linear(16, n_critics))

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.cat([observations, actions], dim=1))


class UnboundedActions(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


# ---------------------------------------------------------------------------------------------- the math
def test_soft_td_target_on_known_values():
    sac = SAC(critic=TwoQ(), ent_coef=0.5, **SMALL)
    sac.generator = torch.Generator().manual_seed(1)
    batch = ReplayBatch(
        observations=torch.zeros(2, 3),
        actions=torch.zeros(2, 1),
        rewards=torch.tensor([1.0, 2.0]),
        next_observations=torch.tensor([[1.0, 0.0, 0.5], [0.2, 0.3, 0.0]]),
        terminations=torch.tensor([0.0, 1.0]),
        discounts=torch.tensor([0.9, 0.9]),
    )
    target = sac.td_target(batch, torch.tensor(0.5))
    # The same draw of a' ~ pi(.|s'), from the same generator state.
    noise = torch.randn(2, 1, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        next_actions, log_prob = sample_squashed_gaussian(sac.actor(batch.next_observations), noise)
    total = batch.next_observations.sum(dim=1)
    min_q = torch.minimum(total + next_actions[:, 0], 2 * total - next_actions[:, 0])
    assert target[0].item() == pytest.approx(1.0 + 0.9 * (min_q[0] - 0.5 * log_prob[0]).item(), rel=1e-6)
    assert target[1].item() == pytest.approx(2.0)  # terminated: no bootstrap


def test_prioritized_replay_anneals_beta_and_moves_the_priorities_of_the_critics_batches():
    sac = SAC(prioritized_replay=True, **SMALL)
    trainer().fit(sac)
    assert isinstance(sac.buffer, PrioritizedReplayBuffer)
    assert sac.buffer.beta > sac.prioritized_beta  # annealed toward 1 as env steps pass
    # Each update wrote back max |TD error| + epsilon; the first 64 transitions were stored at priority 1.
    assert (sac.buffer.tree.leaves[: len(sac.buffer)] != 1.0).sum() > 100


def test_actions_are_uniform_before_learning_starts_then_from_the_policy_within_the_bounds():
    run = {**SMALL, "learning_starts": 1000, "total_timesteps": 2048}
    sac = SAC(**run)
    sac.generator = torch.Generator().manual_seed(0)
    observations = torch.randn(4096, 3)
    warmup = sac.act(observations)
    assert warmup.shape == (4096, 1) and warmup.min() >= -2.0 and warmup.max() <= 2.0
    assert warmup.mean().abs() < 0.1 and warmup.std() == pytest.approx(4 / np.sqrt(12), rel=0.05)
    deterministic = sac.act(observations, deterministic=True)
    with torch.no_grad():
        assert torch.allclose(deterministic, 2.0 * torch.tanh(sac.actor(observations)[:, :1]))
    sac.env_steps = 1000
    sampled = sac.act(observations)
    assert sampled.abs().max() <= 2.0 and not torch.allclose(sampled, deterministic)


@pytest.mark.parametrize(
    ("ent_coef", "expected"), [("auto", (1.0, True)), ("auto_0.1", (0.1, True)), (0.2, (0.2, False))]
)
def test_ent_coef_is_fixed_or_learned_from_an_initial_value(ent_coef, expected):
    assert parse_ent_coef(ent_coef) == pytest.approx(expected)


def test_entropy_coefficient_settings():
    learned = SAC(ent_coef="auto_0.1", **SMALL)
    assert learned.log_ent_coef.exp().item() == pytest.approx(0.1) and learned.log_ent_coef.requires_grad
    assert learned.target_entropy == -1.0  # -dim(A) of Pendulum's actions
    assert len(learned.configure_optimizers()) == 3
    fixed = SAC(ent_coef=0.05, target_entropy=-3.5, **SMALL)
    assert not fixed.log_ent_coef.requires_grad and fixed.target_entropy == -3.5
    assert len(fixed.configure_optimizers()) == 2
    assert "log_ent_coef" in fixed.state_dict()


# ---------------------------------------------------------------------------------------------- bad input
def test_discrete_actions_are_refused_naming_the_space_and_suggesting_dqn_ppo_or_a2c():
    with pytest.raises(ConfigurationError, match=r"SAC takes bounded Box .*Discrete\(2\)\. Use DQN, PPO, A2C, which"):
        SAC("CartPole-v1", **SMALL)


def test_unbounded_box_actions_are_refused():
    message = r"SAC takes bounded Box .*\(unbounded: .*squashed.*\)\. Use PPO, A2C, which"
    with pytest.raises(ConfigurationError, match=message):
        SAC(UnboundedActions, **SMALL)


@pytest.mark.parametrize("ent_coef", ["auto_x", "fixed", 0.0, -0.1])
def test_impossible_ent_coef_is_refused(ent_coef):
    with pytest.raises(ConfigurationError, match=r"must be a positive number .*, 'auto'"):
        SAC(ent_coef=ent_coef, **SMALL)


def test_networks_of_the_wrong_shape_are_refused_naming_the_expected_shape():
    with pytest.raises(ConfigurationError, match=r"actor returned shape \(2, 1\); expected \(2, 2\) = \(batch, 2 \*"):
        SAC(actor=nn.Linear(3, 1), **SMALL)
    expected = r"critic returned shape \(2, 1\); expected \(2, 2\) = \(batch, n_critics\)"
    with pytest.raises(ConfigurationError, match=expected):
        SAC(critic=TutorialCritic(3, 1, n_critics=1), **SMALL)


# ---------------------------------------------------------------------------------------------- with the Trainer
def test_training_with_user_networks_updates_actor_critics_and_entropy_coefficient():
    updates = []

    class Counting(SAC):
        def update(self, batch):
            updates.append(self.env_steps)
            return super().update(batch)

    sac = Counting(
        actor=lambda observation_space, action_space: nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 2)),
        critic=TutorialCritic(3, 1),
        **SMALL,
    )
    actor_before = [p.detach().clone() for p in sac.actor.parameters()]
    target_before = [p.detach().clone() for p in sac.critic_target.parameters()]
    run = trainer()
    run.fit(sac)
    assert sac.env_steps == 512 and sac.updates == len(updates) == 512 - 64
    assert updates == list(range(65, 513))
    assert not any(torch.equal(a, b) for a, b in zip(actor_before, sac.actor.parameters()))
    assert not any(torch.equal(a, b) for a, b in zip(target_before, sac.critic_target.parameters()))
    assert sac.log_ent_coef.item() != 0.0  # learned, from log(1.0)
    for key in ("val/return_mean", "train/critic_loss", "train/actor_loss", "train/ent_coef", "train/entropy"):
        assert key in run.callback_metrics


def test_checkpoint_holds_optimizers_entropy_coefficient_and_update_count(tmp_path):
    sac = SAC(**SMALL)
    run = trainer()
    run.fit(sac)
    run.save_checkpoint(tmp_path / "sac.ckpt")
    checkpoint = torch.load(tmp_path / "sac.ckpt", weights_only=False)
    assert len(checkpoint["optimizer_states"]) == 3
    assert torch.equal(checkpoint["state_dict"]["log_ent_coef"], sac.log_ent_coef.detach())
    assert checkpoint["rl_lightning"]["updates"] == sac.updates

    resumed = SAC(**{**SMALL, "total_timesteps": 768})
    trainer().fit(resumed, ckpt_path=tmp_path / "sac.ckpt")
    assert resumed.env_steps == 768 and resumed.updates == sac.updates + 256


def test_bf16_mixed_precision_and_max_grad_norm():
    clip_values = []

    class Recording(SAC):
        def clip_gradients(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
            clip_values.append(gradient_clip_val)
            super().clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    sac = Recording(max_grad_norm=0.5, **SMALL)
    run = trainer(precision="bf16-mixed")
    run.fit(sac)
    assert torch.isfinite(run.callback_metrics["train/critic_loss"])
    assert set(clip_values) == {0.5} and len(clip_values) == 3 * sac.updates
    assert all(p.dtype == torch.float32 for p in sac.parameters())


def test_trainer_gradient_clip_val_wins_over_max_grad_norm_and_is_given_back():
    # Lightning refuses gradient_clip_val under manual optimization; the module applies it itself instead.
    clip_values = []

    class Recording(SAC):
        def clip_gradients(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
            clip_values.append((gradient_clip_val, gradient_clip_algorithm))
            super().clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    run = trainer(gradient_clip_val=1.5, gradient_clip_algorithm="value")
    sac = Recording(max_grad_norm=0.5, **SMALL)
    run.fit(sac)
    assert len(clip_values) == 3 * sac.updates > 0
    assert set(clip_values) == {(1.5, "value")}  # GradClipAlgorithmType is a str enum
    assert run.gradient_clip_val == 1.5  # the Trainer's setting, back after the fit


@pytest.mark.parametrize("name", ['sac_pendulum', 'sac_halfcheetah'])
def test_experiment_configs_build(name, tmp_path, monkeypatch):
    config = yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())["model"]
    if config["init_args"]["env"].endswith("-v5"):
        pytest.importorskip("mujoco", reason="the MuJoCo configs need rl-lightning[mujoco]")
        monkeypatch.chdir(tmp_path)  # MuJoCo writes its warnings to MUJOCO_LOG.TXT in the working directory
    algorithm = {"rl_lightning.SAC": SAC}[config["class_path"]](**config["init_args"])
    observations = example_observations(algorithm.observation_space)
    actions = algorithm.act(observations, deterministic=True).numpy()
    assert all(algorithm.action_space.contains(action) for action in actions)


# ---------------------------------------------------------------------------------------------- learning
@pytest.mark.learning
def test_sac_reaches_minus_250_on_pendulum_within_20k_env_steps():
    """experiments/sac_pendulum.yaml with [64, 64] networks: deterministic eval >= -250 within 20,000 steps.

    The Zoo's [256, 256] networks cost 20-30 ms per (matmul-bound) update on one shared core of the
    development machine, 7-10 minutes for the run; [64, 64] networks learn Pendulum as well, far cheaper.
    Training stops at the first validation (every 2,000 env steps) that reaches -250.
    """
    config = yaml.safe_load((EXPERIMENTS / "sac_pendulum.yaml").read_text())["model"]["init_args"]
    assert config["total_timesteps"] == 20_000
    sac = SAC(**{**config, "hidden_sizes": (64, 64)})
    run = trainer(callbacks=[EarlyStopping("val/return_mean", mode="max", stopping_threshold=-250, patience=100)])
    started = time.perf_counter()
    run.fit(sac)
    final = run.callback_metrics["val/return_mean"].item()
    print(f"SAC Pendulum: {final:.1f} after {sac.env_steps} env steps, {time.perf_counter() - started:.0f} s")
    assert run.callback_metrics["val/return_mean"] >= -250
