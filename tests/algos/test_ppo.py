"""PPO: its losses on known values, schedules, target_kl, bad input, the Trainer features, learning tests."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn

from rl_lightning import PPO, ConfigurationError
from rl_lightning.buffers import RolloutBatch
from tests.helpers import PPO_SMALL as SMALL
from tests.helpers import Constant, TupleObservations, parameters, trainer

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


class TutorialActor(nn.Module):
    """The kind of network tutorials write: sizes in, plain layers."""

    def __init__(self, obs_dim: int, n_outputs: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(obs_dim, 16), nn.Tanh(), nn.Linear(16, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


# ---------------------------------------------------------------------------------------------- the math
def known_batch(old_values: list[float]) -> RolloutBatch:
    """Four transitions with probability ratios (1.5, 0.5, 1.1, 0.7) under a uniform two-action policy."""
    ratios = torch.tensor([1.5, 0.5, 1.1, 0.7])
    return RolloutBatch(
        observations=torch.zeros(4, 4),
        actions=torch.tensor([0, 1, 0, 1]),
        log_probs=math.log(0.5) - ratios.log(),  # pi_old(a|s) = pi(a|s) / ratio
        values=torch.tensor(old_values),
        advantages=torch.tensor([1.0, 1.0, -1.0, -1.0]),
        returns=torch.tensor([3.0, 1.0, 2.0, 2.0]),
    )


def test_clipped_surrogate_value_loss_and_entropy_on_known_values():
    ppo = PPO(
        actor=Constant(0.0, 0.0),  # uniform policy: pi(a|s) = 0.5, entropy log 2
        critic=Constant(2.0),  # V(s) = 2
        normalize_advantage=False,
        clip_range=0.2,
        ent_coef=0.1,
        vf_coef=0.5,
        **SMALL,
    )
    loss = ppo.update(known_batch([2.0, 2.0, 2.0, 2.0]))
    # min(r A, clip(r, 0.8, 1.2) A): A = 1, r = 1.5 -> 1.2; A = 1, r = 0.5 -> 0.5; A = -1, r = 1.1 -> -1.1;
    # A = -1, r = 0.7 -> min(-0.7, -0.8) = -0.8. Policy loss = -(1.2 + 0.5 - 1.1 - 0.8) / 4 = 0.05.
    policy_loss = 0.05
    value_loss = ((2 - 3) ** 2 + (2 - 1) ** 2 + 0 + 0) / 4  # 0.5
    assert loss.item() == pytest.approx(policy_loss + 0.5 * value_loss - 0.1 * math.log(2.0), abs=1e-6)
    stats = {name: value.item() for name, value in ppo.update_stats.pop().items()}
    assert stats["policy_loss"] == pytest.approx(policy_loss, abs=1e-6)
    assert stats["value_loss"] == pytest.approx(value_loss)
    assert stats["entropy"] == pytest.approx(math.log(2.0))
    assert stats["clip_fraction"] == pytest.approx(0.75)  # |r - 1| > 0.2 for 1.5, 0.5 and 0.7
    ratios = np.array([1.5, 0.5, 1.1, 0.7])
    assert stats["approx_kl"] == pytest.approx(np.mean((ratios - 1) - np.log(ratios)), rel=1e-5)


def test_value_clipping_keeps_the_update_near_the_old_values():
    ppo = PPO(actor=Constant(0.0, 0.0), critic=Constant(2.0), clip_range_vf=0.5, vf_coef=1.0, **SMALL)
    ppo.update(known_batch([0.0, 4.0, 2.0, 2.0]))
    # V = 2 is clipped to old +- 0.5: (0.5, 3.5, 2, 2) against returns (3, 1, 2, 2).
    assert ppo.update_stats.pop()["value_loss"].item() == pytest.approx((2.5**2 + 2.5**2) / 4)


def test_advantages_are_standardized_per_minibatch():
    ppo = PPO(actor=Constant(0.0, 0.0), critic=Constant(0.0), **SMALL)
    advantages = torch.tensor([1.0, 2.0, 3.0, 6.0])
    normalized = ppo.normalized_advantages(advantages)
    assert normalized.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert normalized.std().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(ppo.normalized_advantages(torch.tensor([5.0])), torch.tensor([5.0]))


def test_entropy_has_a_gradient_only_when_it_is_in_the_loss():
    logits = torch.zeros(3, 2, requires_grad=True)
    silent = PPO(actor=Constant(0.0, 0.0), critic=Constant(0.0), ent_coef=0.0, **SMALL)
    bonus = PPO(actor=Constant(0.0, 0.0), critic=Constant(0.0), ent_coef=0.01, **SMALL)
    distribution = silent.action_head(logits)
    assert not silent.entropy(distribution).requires_grad
    assert bonus.entropy(distribution).requires_grad


def test_linear_schedules_follow_env_steps():
    ppo = PPO(learning_rate="lin_1e-3", clip_range="lin_0.2", **{**SMALL, "total_timesteps": 1000})
    for env_steps, fraction in [(0, 1.0), (250, 0.75), (1000, 0.0), (1200, 0.0)]:
        ppo.env_steps = env_steps
        assert ppo.lr_schedule(ppo.progress_remaining) == pytest.approx(1e-3 * fraction)
        assert ppo.clip_schedule(ppo.progress_remaining) == pytest.approx(0.2 * fraction)


def test_learning_rate_schedule_reaches_the_optimizer():
    seen = []

    class Recording(PPO):
        def on_before_optimizer_step(self, optimizer):
            super().on_before_optimizer_step(optimizer)
            if any(p.grad is not None for p in self.parameters()):  # not the epoch's last call, which has no loss
                seen.append((self.env_steps, optimizer.param_groups[0]["lr"]))

    trainer().fit(Recording(learning_rate="lin_1e-3", **SMALL))
    # 4 rollouts of 64 env steps, each followed by 2 passes of 4 minibatches at the lr of that step count.
    assert [steps for steps, _ in seen] == [64] * 8 + [128] * 8 + [192] * 8 + [256] * 8
    assert all(lr == pytest.approx(1e-3 * (1 - steps / 256)) for steps, lr in seen)


def test_target_kl_skips_the_rest_of_the_rollout():
    stepped = []  # for each update the dataset hands out: did the parameters change?

    class Recording(PPO):
        def take_updates(self, batch):
            before = torch.nn.utils.parameters_to_vector(self.parameters()).clone()
            super().take_updates(batch)
            stepped.append(not torch.equal(before, torch.nn.utils.parameters_to_vector(self.parameters())))

    # The first minibatch of a rollout is played by the collecting policy itself (KL 0) and is applied;
    # after one gradient step the KL exceeds 1.5 * 1e-9, so that minibatch is not applied and the rest of the
    # rollout's minibatches are never handed out.
    ppo = Recording(target_kl=1e-9, **{**SMALL, "total_timesteps": 128})
    trainer().fit(ppo)
    assert stepped == [True, False, True, False]
    assert ppo.trainer.global_step == 2  # optimizer steps taken
    stepped.clear()
    trainer().fit(Recording(**{**SMALL, "total_timesteps": 128}))
    assert stepped == [True] * 16  # 2 rollouts of 2 passes of 4 minibatches


# ---------------------------------------------------------------------------------------------- bad input
class TupleActions(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(3)))


def test_unsupported_spaces_are_named_with_what_is_supported():
    with pytest.raises(ConfigurationError, match=r"PPO cannot handle the observation key 1 of Tuple.*nested Tuple"):
        PPO(TupleObservations, **SMALL)
    with pytest.raises(ConfigurationError, match=r"PPO takes Discrete or .*MultiBinary or Box .*Tuple.*No algorithm"):
        PPO(TupleActions, **SMALL)


def test_batch_size_that_does_not_divide_the_rollout_names_values_that_fit():
    message = (
        r"n_steps \* num_envs = 32 \* 8 = 256 transitions per rollout is not a multiple of batch_size=100\. "
        r"Use a batch_size that divides 256 \(e\.g\. 64 or 128\), or n_steps such that n_steps \* 8 is a "
        r"multiple of 100 \(e\.g\. 25 or 50\)\."
    )
    with pytest.raises(ConfigurationError, match=message):
        PPO(num_envs=8, n_steps=32, batch_size=100)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"actor": TutorialActor(4, 3)}, r"actor returned shape \(2, 3\); expected \(2, 2\) = \(batch, 2\) logits"),
        ({"critic": TutorialActor(4, 2)}, r"critic returned shape \(2, 2\); expected \(2, 1\)"),
        ({"learning_rate": "linear"}, r"learning_rate='linear' must be a positive number, or 'lin_<initial value>'"),
        ({"clip_range": -0.1}, r"clip_range=-0.1 must be a positive number"),
        ({"gae_lambda": 1.5}, r"gae_lambda=1.5 must lie in \[0, 1\]"),
        ({"steps_per_epoch": 100}, r"steps_per_epoch=100 must be a whole number of rollouts of .* 64 env steps"),
        ({"shared_network": True, "actor": TutorialActor(4, 2)}, "Drop shared_network=True"),
        ({"target_kl": 0.0}, "target_kl=0.0 must be a positive number"),
        ({"batch_size": 1, "n_steps": 1, "num_envs": 1, "steps_per_epoch": None}, "normalize_advantage=True needs"),
    ],
)
def test_impossible_hyperparameters_are_refused(overrides, message):
    with pytest.raises(ConfigurationError, match=message):
        PPO(**{**SMALL, **overrides})


def test_gaussian_actor_shape_is_checked_against_the_action_dim():
    with pytest.raises(ConfigurationError, match=r"expected \(2, 1\) = \(batch, action_dim\) Gaussian means"):
        PPO("Pendulum-v1", actor=TutorialActor(3, 2), **SMALL)


def test_normalizing_discrete_observations_is_refused():
    with pytest.raises(ConfigurationError, match="normalize_observations=True normalizes vector"):
        PPO("FrozenLake-v1", normalize_observations=True, **SMALL)


def test_user_networks_as_modules_or_factories():
    ppo = PPO(actor=TutorialActor(4, 2), critic=lambda obs, act: TutorialActor(obs.shape[0], 1), **SMALL)
    assert isinstance(ppo.policy.actor, TutorialActor) and isinstance(ppo.policy.critic, TutorialActor)
    # Giving one network keeps the default of the other.
    assert isinstance(PPO(actor=TutorialActor(4, 2), **SMALL).policy.critic, nn.Sequential)


# ---------------------------------------------------------------------------------------------- with the Trainer
def test_training_counts_env_steps_and_logs_epoch_metrics():
    ppo = PPO(**SMALL)
    run = trainer()
    run.fit(ppo)
    assert ppo.env_steps == 256 and run.current_epoch == 2
    for key in (
        "val/return_mean",
        "train/episode_return",
        "train/policy_loss",
        "train/value_loss",
        "train/entropy",
        "train/approx_kl",
        "train/clip_fraction",
        "train/explained_variance",
        "train/learning_rate",
        "train/clip_range",
    ):
        assert key in run.callback_metrics, key


def test_same_seed_gives_the_same_run_and_another_seed_does_not():
    runs = []
    for seed in (3, 3, 4):
        ppo = PPO(seed=seed, **SMALL)
        trainer().fit(ppo)
        runs.append(parameters(ppo))
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], runs[2], strict=True))


def test_shared_network_trains():
    ppo = PPO(shared_network=True, **SMALL)
    run = trainer()
    run.fit(ppo)
    assert torch.isfinite(run.callback_metrics["train/loss"])


def test_bf16_mixed_precision_on_cpu():
    ppo = PPO(**SMALL)
    run = trainer(precision="bf16-mixed")
    run.fit(ppo)
    assert torch.isfinite(run.callback_metrics["train/loss"])


def test_box_actions_are_clipped_for_the_env_but_not_in_the_buffer():
    sent = []

    class Recording(PPO):
        def explore(self, observations, state, episode_starts):
            step = super().explore(observations, state, episode_starts)
            sent.append((step.actions.clone(), step.env_actions.clone()))
            return step

    ppo = Recording("Pendulum-v1", log_std_init=1.0, **{**SMALL, "total_timesteps": 64, "steps_per_epoch": 64})
    trainer().fit(ppo)
    actions = torch.cat([a for a, _ in sent])
    env_actions = torch.cat([e for _, e in sent])
    assert (actions.abs() > 2.0).any()  # std e^1 around a mean near 0: some samples leave [-2, 2]
    assert torch.equal(env_actions, actions.clamp(-2.0, 2.0))
    assert torch.equal(ppo.buffer.actions.flatten(), actions[-32 * 2 :].flatten())


def test_discrete_observations_are_one_hot_and_stored_as_indices():
    ppo = PPO("FrozenLake-v1", **{**SMALL, "total_timesteps": 128, "steps_per_epoch": 128})
    run = trainer()
    run.fit(ppo)
    assert ppo.buffer.observations.dtype == torch.long and ppo.buffer.observations.shape == (32, 2)
    assert torch.isfinite(run.callback_metrics["train/loss"])


def test_image_observations_stay_uint8_in_the_buffer():
    def pixels() -> gym.Env:
        env = gym.make("CartPole-v1")
        space = gym.spaces.Box(0, 255, (1, 36, 36), dtype="uint8")
        return gym.wrappers.TransformObservation(
            env,
            lambda obs: (abs(obs[:1, None, None]) * 100).clip(0, 255).astype("uint8").repeat(36, 1).repeat(36, 2),
            space,
        )

    ppo = PPO(pixels, shared_network=True, **{**SMALL, "total_timesteps": 128, "steps_per_epoch": 128})
    trainer().fit(ppo)
    assert ppo.buffer.observations.dtype == torch.uint8 and ppo.buffer.observations.shape == (32, 2, 1, 36, 36)


class PickTheCode(gym.Env):
    """MultiDiscrete([3, 2]) actions; reward 1 for the action (2, 1), else 0; episodes of 4 steps."""

    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.MultiDiscrete([3, 2])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        reward = float(action[0] == 2 and action[1] == 1)
        return np.zeros(1, np.float32), reward, False, self.t == 4, {}


def test_multi_discrete_actions_are_learned():
    ppo = PPO(PickTheCode, learning_rate=3e-3, **{**SMALL, "total_timesteps": 2048, "steps_per_epoch": 1024})
    run = trainer()
    run.fit(ppo)
    assert run.callback_metrics["val/return_mean"] == 4.0
    assert ppo.act(torch.zeros(1, 1), deterministic=True).tolist() == [[2, 1]]


def test_normalization_statistics_are_checkpointed_and_frozen_in_evaluation(tmp_path):
    options = {**SMALL, "total_timesteps": 128, "steps_per_epoch": 128}
    ppo = PPO("Pendulum-v1", normalize_observations=True, normalize_rewards=True, **options)
    run = trainer()
    run.fit(ppo)
    # Every collected observation entered the statistics: 64 vector steps of 2 envs (plus the initial 1e-4).
    assert ppo.observation_normalizer.count.item() == pytest.approx(128, abs=1e-3)
    assert ppo.reward_normalizer.count.item() == pytest.approx(128, abs=1e-3)
    statistics = {name: t.clone() for name, t in ppo.state_dict().items() if "normalizer" in name}
    assert set(statistics) == {
        f"{which}_normalizer.{stat}" for which in ("observation", "reward") for stat in ("mean", "var", "count")
    }
    run.save_checkpoint(tmp_path / "ppo.ckpt")
    restored = PPO.load_from_checkpoint(tmp_path / "ppo.ckpt")
    for name, value in statistics.items():
        assert torch.equal(restored.state_dict()[name], value)
    assert torch.load(tmp_path / "ppo.ckpt", weights_only=False)["rl_lightning"]["reward_returns"].shape == (2,)
    trainer().validate(restored)
    for name, value in statistics.items():
        assert torch.equal(restored.state_dict()[name], value), f"{name} changed in evaluation"


# ---------------------------------------------------------------------------------------------- learning
def learn(config_name: str, target: float) -> tuple[PPO, float]:
    """Train with an experiment's configuration until the deterministic evaluation reaches ``target``."""
    config = yaml.safe_load((EXPERIMENTS / config_name).read_text())["model"]["init_args"]
    ppo = PPO(**config)
    run = trainer(callbacks=[EarlyStopping("val/return_mean", mode="max", stopping_threshold=target, patience=1000)])
    run.fit(ppo)
    return ppo, run.callback_metrics["val/return_mean"].item()


@pytest.mark.learning
def test_ppo_solves_cartpole_within_100k_env_steps():
    """experiments/ppo_cartpole.yaml (RL Zoo's tuned set): deterministic eval >= 475 within 100,000 env steps.

    Evaluated every 10,240 env steps; training stops at the first evaluation that reaches 475 (seed 0: 500
    at 20,480).
    """
    ppo, eval_return = learn("ppo_cartpole.yaml", target=475)
    assert eval_return >= 475 and ppo.env_steps <= 100_000


@pytest.mark.learning
def test_ppo_swings_up_the_pendulum_within_100k_env_steps():
    """experiments/ppo_pendulum.yaml: deterministic eval >= -400 within 100,000 env steps, continuous actions.

    Evaluated every 8,192 env steps; training stops at the first evaluation that reaches -400 (seeds 0, 1, 2:
    at 40,960).
    """
    ppo, eval_return = learn("ppo_pendulum.yaml", target=-400)
    assert eval_return >= -400 and ppo.env_steps <= 100_000
