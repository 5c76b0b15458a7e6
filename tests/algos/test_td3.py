"""TD3 and DDPG: target smoothing and TD targets on known values, delays, bad input, and a learning test."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn

from rl_lightning import DDPG, TD3, ConfigurationError
from rl_lightning.algos.td3 import smooth_target_actions
from rl_lightning.buffers import PrioritizedReplayBuffer, ReplayBatch
from rl_lightning.cli import load_algorithm
from rl_lightning.nets import example_observations
from tests.helpers import CONTINUOUS_SMALL as SMALL
from tests.helpers import trainer

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


class HalfActor(nn.Module):
    """A parameter-free actor of Pendulum: pi(s) = 0.5 everywhere."""

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return torch.full((observations.shape[0], 1), 0.5)


class TwoQ(nn.Module):
    """A parameter-free critic of Pendulum: Q_1 = sum(s) + a, Q_2 = 2 sum(s) - a."""

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        total = observations.sum(dim=1, keepdim=True)
        return torch.cat([total + actions, 2 * total - actions], dim=1)


# ---------------------------------------------------------------------------------------------- the math
def test_target_smoothing_noise_is_clipped_and_actions_stay_in_bounds():
    generator = torch.Generator().manual_seed(0)
    actions = torch.zeros(10_000, 2)
    smoothed = smooth_target_actions(actions, noise_std=10.0, noise_clip=0.5, generator=generator)
    # With std 10 nearly every draw is clipped: the noise is +-0.5 and never beyond.
    assert smoothed.abs().max() == 0.5 and (smoothed.abs() == 0.5).float().mean() > 0.95
    near_bound = smooth_target_actions(torch.full((10_000, 1), 0.9), 0.2, 0.5, generator)
    assert near_bound.max() == 1.0 and near_bound.min() >= 0.4 - 1e-6  # 0.9 - 0.5 in float32
    small = smooth_target_actions(actions, noise_std=1e-3, noise_clip=0.5, generator=generator)
    assert 0 < small.abs().max() < 0.01  # rarely clipped: plain Gaussian noise
    again = smooth_target_actions(actions, 0.2, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(again, smooth_target_actions(actions, 0.2, 0.5, torch.Generator().manual_seed(1)))


def test_clipped_double_q_target_on_known_values():
    batch = ReplayBatch(
        observations=torch.zeros(2, 3),
        actions=torch.zeros(2, 1),
        rewards=torch.tensor([1.0, 2.0]),
        next_observations=torch.tensor([[1.0, 0.0, 0.5], [0.2, 0.3, 0.0]]),
        terminations=torch.tensor([0.0, 1.0]),
        discounts=torch.tensor([0.9, 0.9]),
    )
    td3 = TD3(actor=HalfActor(), critic=TwoQ(), target_policy_noise=0.0, **SMALL)
    # a' = 0.5: Q = (1.5 + 0.5, 3 - 0.5) = (2, 2.5) and (0.5 + 0.5, 1 - 0.5) = (1, 0.5).
    assert torch.allclose(td3.td_target(batch), torch.tensor([1.0 + 0.9 * 2.0, 2.0]))

    td3 = TD3(actor=HalfActor(), critic=TwoQ(), target_policy_noise=0.2, target_noise_clip=0.5, **SMALL)
    td3.generator = torch.Generator().manual_seed(3)
    smoothed = smooth_target_actions(torch.full((2, 1), 0.5), 0.2, 0.5, torch.Generator().manual_seed(3))
    a = smoothed[0, 0]
    assert td3.td_target(batch)[0].item() == pytest.approx(1.0 + 0.9 * min(1.5 + a, 3.0 - a).item())


@pytest.mark.parametrize("algorithm", [TD3, DDPG])
def test_prioritized_replay_weights_the_critic_losses_and_hands_back_the_largest_critic_td_error(algorithm):
    model = algorithm(prioritized_replay=True, **SMALL)
    model.buffer = PrioritizedReplayBuffer(4, (3,), torch.float32, (1,), torch.float32, alpha=1.0, epsilon=0.01)
    batch = ReplayBatch(
        observations=torch.zeros(2, 3), actions=torch.zeros(2, 1), rewards=torch.zeros(2),
        next_observations=torch.zeros(2, 3), terminations=torch.zeros(2), discounts=torch.ones(2),
        indices=torch.tensor([2, 0]), weights=torch.tensor([1.0, 0.5]),
    )  # fmt: skip
    q, target = torch.tensor([[1.0, 2.0], [0.0, -1.0]]), torch.tensor([0.5, 1.0])  # TD errors (0.5, 1.5), (-1, -2)
    if algorithm is DDPG:  # one critic: its own TD errors 0.5 and -1
        loss = model.critic_loss(batch, q[:, :1], target)
        assert loss.item() == pytest.approx((0.25 + 0.5 * 1.0) / 2)
        assert model.buffer.tree.leaves.tolist() == pytest.approx([1.01, 0.0, 0.51, 0.0])
    else:  # squares (0.25, 2.25), (1, 4) weighted 1 and 0.5, batch means 0.375 and 2.125, summed over critics
        loss = model.critic_loss(batch, q, target)
        assert loss.item() == pytest.approx(0.375 + 2.125)
        assert model.buffer.tree.leaves.tolist() == pytest.approx([2.01, 0.0, 1.51, 0.0])  # max |TD| + epsilon


def test_exploration_noise_and_warm_up():
    td3 = TD3(action_noise=0.1, **{**SMALL, "learning_starts": 100})
    td3.generator = torch.Generator().manual_seed(0)
    observations = torch.randn(4096, 3)
    warmup = td3.act(observations)
    assert warmup.min() >= -2.0 and warmup.max() <= 2.0 and warmup.std() > 1.0  # uniform on [-2, 2]
    td3.env_steps = 100
    deterministic = td3.act(observations, deterministic=True)
    exploring = td3.act(observations)
    # Noise of std 0.1 in units of the half-range (2 for Pendulum), clipped to the bounds.
    assert (exploring - deterministic).std().item() == pytest.approx(0.2, rel=0.1)
    assert exploring.abs().max() <= 2.0
    quiet = TD3(action_noise=0.0, **SMALL)
    quiet.env_steps = 100
    assert torch.equal(quiet.act(observations), quiet.act(observations, deterministic=True))


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("algorithm", [TD3, DDPG])
def test_discrete_actions_are_refused_naming_the_space_and_suggesting_dqn_ppo_or_a2c(algorithm):
    name = algorithm.__name__
    with pytest.raises(ConfigurationError, match=rf"{name} takes bounded Box .*Discrete\(2\)\. Use DQN, PPO, A2C,"):
        algorithm("CartPole-v1", **SMALL)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"action_noise": -0.1}, r"action_noise=-0.1 must be >= 0"),
        ({"target_noise_clip": -1}, r"target_noise_clip=-1 must be >= 0"),
        ({"policy_delay": 0}, "policy_delay=0 must be a positive number"),
        ({"tau": 0.0}, r"tau=0.0 must lie in \(0, 1\]: 0 would never move the target networks"),
        ({"actor": nn.Linear(3, 2)}, r"actor returned shape \(2, 2\); expected \(2, 1\) = \(batch, action_dim\)"),
    ],
)
def test_impossible_settings_are_refused(overrides, message):
    with pytest.raises(ConfigurationError, match=message):
        TD3(**{**SMALL, **overrides})


# ---------------------------------------------------------------------------------------------- with the Trainer
def test_policy_and_targets_update_every_policy_delay_critic_updates():
    steps = []

    class Recording(TD3):
        def minimize(self, optimizer, loss):
            steps.append("actor" if optimizer.optimizer is self.trainer.optimizers[0] else "critic")
            super().minimize(optimizer, loss)

    td3 = Recording(policy_delay=3, **SMALL)
    target_before = [p.detach().clone() for p in td3.actor_target.parameters()]
    run = trainer()
    run.fit(td3)
    assert td3.updates == steps.count("critic") == 512 - 64
    assert steps[:8] == ["critic", "critic", "critic", "actor"] * 2
    assert steps.count("actor") == (512 - 64) // 3
    assert not any(torch.equal(a, b) for a, b in zip(target_before, td3.actor_target.parameters()))
    for key in ("val/return_mean", "train/critic_loss", "train/actor_loss", "train/q_mean"):
        assert key in run.callback_metrics


def test_ddpg_is_td3_with_one_critic_no_delay_no_smoothing_and_reloads_from_its_checkpoint(tmp_path):
    ddpg = DDPG(**SMALL)
    assert (ddpg.policy_delay, ddpg.target_policy_noise) == (1, 0.0)
    assert ddpg.critic.n_critics == 1 and ddpg.critic(torch.zeros(3, 3), torch.zeros(3, 1)).shape == (3, 1)
    assert "n_critics" not in ddpg.hparams and "policy_delay" not in ddpg.hparams
    run = trainer(precision="bf16-mixed")
    run.fit(ddpg)
    assert torch.isfinite(run.callback_metrics["train/critic_loss"])
    run.save_checkpoint(tmp_path / "ddpg.ckpt")
    loaded = load_algorithm(str(tmp_path / "ddpg.ckpt"))
    assert type(loaded) is DDPG
    observations = torch.randn(5, 3)
    assert torch.equal(loaded.act(observations, deterministic=True), ddpg.act(observations, deterministic=True))


@pytest.mark.parametrize("name", ['td3_pendulum', 'ddpg_pendulum', 'td3_hopper'])
def test_experiment_configs_build(name, tmp_path, monkeypatch):
    config = yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())["model"]
    if config["init_args"]["env"].endswith("-v5"):
        pytest.importorskip("mujoco", reason="the MuJoCo configs need rl-lightning[mujoco]")
        monkeypatch.chdir(tmp_path)  # MuJoCo writes its warnings to MUJOCO_LOG.TXT in the working directory
    algorithm = {"rl_lightning.TD3": TD3, "rl_lightning.DDPG": DDPG}[config["class_path"]](**config["init_args"])
    observations = example_observations(algorithm.observation_space)
    actions = algorithm.act(observations, deterministic=True).numpy()
    assert all(algorithm.action_space.contains(action) for action in actions)


# ---------------------------------------------------------------------------------------------- learning
@pytest.mark.learning
def test_td3_reaches_minus_250_on_pendulum_within_20k_env_steps():
    """experiments/td3_pendulum.yaml with [64, 64] networks: deterministic eval >= -250 within 20,000 steps.

    The Zoo's [400, 300] networks make each of the 10,000 updates matmul-bound on the development
    machine's CPU; [64, 64] networks learn Pendulum as well, far cheaper.
    Training stops at the first validation (every 2,000 env steps) that reaches -250.
    """
    config = yaml.safe_load((EXPERIMENTS / "td3_pendulum.yaml").read_text())["model"]["init_args"]
    assert config["total_timesteps"] == 20_000
    td3 = TD3(**{**config, "hidden_sizes": (64, 64)})
    run = trainer(callbacks=[EarlyStopping("val/return_mean", mode="max", stopping_threshold=-250, patience=100)])
    started = time.perf_counter()
    run.fit(td3)
    final = run.callback_metrics["val/return_mean"].item()
    print(f"TD3 Pendulum: {final:.1f} after {td3.env_steps} env steps, {time.perf_counter() - started:.0f} s")
    assert run.callback_metrics["val/return_mean"] >= -250
