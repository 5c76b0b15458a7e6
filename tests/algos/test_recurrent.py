"""Recurrent PPO and A2C: states carried per env and reset at episode starts, chunked minibatches, a user's module."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping
from torch import Tensor, nn

from rl_lightning import A2C, PPO, ConfigurationError
from rl_lightning.buffers import RolloutBatch
from rl_lightning.envs import CARTPOLE_NO_VELOCITY
from tests.helpers import trainer
from tests.toy_envs import DictEnv

COUNTING = "tests.toy_envs:RLLightningCounting-v0"  # truncated at its 3rd step; NEXT_STEP autoreset
SMALL = dict(num_envs=2, hidden_sizes=(16,), rnn_hidden_size=8, eval_episodes=1, eval_envs=1)


class StepsSinceStart(nn.Module):
    """A user's own recurrent actor-critic: its state counts the observations seen since the episode started, and
    that count is its value; its policy is a learned preference, whatever it saw."""

    def __init__(self, observation_space: gym.Space, action_space: gym.spaces.Discrete) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(int(action_space.n)))

    def initial_state(self, batch_size: int, device: torch.device | str) -> tuple[Tensor]:
        return (torch.zeros(batch_size, 1, device=device),)

    def forward(self, observations: Tensor, state: tuple[Tensor], episode_starts: Tensor) -> tuple[Tensor, ...]:
        (count,) = state
        counts = []
        for starts in episode_starts:
            count = torch.where(starts[:, None], 0.0, count) + 1.0
            counts.append(count)
        counts = torch.stack(counts).squeeze(-1)
        return self.logits.expand(*counts.shape, -1), counts, (count,)


def test_a_users_module_gets_its_state_reset_where_episodes_start_and_not_at_the_autoreset_step():
    ppo = PPO(
        COUNTING, recurrent=StepsSinceStart, n_steps=8, batch_size=16, n_epochs=1, gamma=0.5, gae_lambda=1.0,
        total_timesteps=16, steps_per_epoch=16, **SMALL,
    )
    trainer().fit(ppo)
    rollout = ppo.buffer
    # Observations 0, 1, 2; the 3rd step is truncated; the autoreset step acts on the final observation [3] within
    # the episode (count 4), and the next episode's first observation starts from a reset state (count 1).
    assert rollout.values.T.tolist() == [[1, 2, 3, 4, 1, 2, 3, 4]] * 2
    assert rollout.episode_starts.T.tolist() == [[True, False, False, False, True, False, False, False]] * 2
    # The truncated episode's bootstrap: the value of the final observation [3] from the state of its last step.
    assert rollout.final_values[2].tolist() == [4.0, 4.0]
    assert rollout.returns[2].tolist() == [3.0 + 0.5 * 4.0] * 2  # reward 3 + gamma * V(final observation)


class FirstUpdateRecorder(PPO):
    """Records, at each update, how far the re-run chunks are from what collection computed (with one update per
    rollout, the parameters are still those that collected it)."""

    def update(self, batch: RolloutBatch) -> Tensor | None:
        with torch.no_grad():
            distribution, values = self.evaluate_batch(batch)
            log_prob_gap = (distribution.log_prob(batch.actions) - batch.log_probs).abs().max()
            self.gaps.append((log_prob_gap.item(), (values - batch.values).abs().max().item(), len(batch.actions)))
        return super().update(batch)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize(
    ("env", "options", "transitions"),
    [
        # NEXT_STEP: each env's 8 steps hold 2 autoreset steps; chunks of 3 steps, the last padded.
        (COUNTING, {}, 12),
        # SAME_STEP torch CartPole: episodes end anywhere, every step is a transition.
        ("CartPole-v1", {"vectorization": "torch", "num_envs": 8}, 64),
        # Dict observations (a uint8 image, a normalized float flag, a Discrete key), truncated at the 3rd step.
        (DictEnv, {"env_kwargs": {"max_steps": 3}, "normalize_observations": True}, 12),
    ],
    ids=["counting", "torch-cartpole", "dict"],
)
def test_chunks_run_again_give_the_log_probs_and_values_of_collection(cell, env, options, transitions):
    ppo = FirstUpdateRecorder(
        env, recurrent=cell, n_steps=8, sequence_length=3, batch_size=8 * options.get("num_envs", 2), n_epochs=1,
        total_timesteps=64 * 8, steps_per_epoch=64 * 8 if "num_envs" in options else 64, **{**SMALL, **options},
    )
    ppo.gaps = []
    trainer().fit(ppo)
    assert len(ppo.gaps) >= 4
    for log_prob_gap, value_gap, count in ppo.gaps:
        assert log_prob_gap < 1e-5 and value_gap < 1e-5
        assert count == transitions


class PaddedAgainstWhole(PPO):
    """At its first update (still with the parameters that collected the rollout), poisons the autoreset steps and
    computes the loss twice: from the padded chunks, and from each env's whole rollout as one unpadded sequence on
    the real transitions only."""

    def update(self, batch: RolloutBatch) -> Tensor | None:
        if self.losses:
            return super().update(batch)
        rollout = self.buffer
        valid = rollout.valid.to(rollout.device)
        self.valid = valid.T.tolist()
        rollout.advantages[~valid], rollout.returns[~valid], rollout.log_probs[~valid] = 1e3, -1e3, 5.0
        padded = super().update(rollout.sequence_batch(rollout.chunk_indices()))

        with torch.no_grad():
            start = tuple(state[0] for state in rollout.states)
            outputs, values, _ = self.policy(rollout.observations, start, rollout.episode_starts)
            distribution = self.distribution(outputs[valid])
            advantages = rollout.advantages[valid]
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            ratio = (distribution.log_prob(rollout.actions[valid]) - rollout.log_probs[valid]).exp()
            policy_loss = -torch.min(advantages * ratio, advantages * ratio.clamp(0.8, 1.2)).mean()
            value_loss = (values[valid] - rollout.returns[valid]).square().mean()
            whole = policy_loss + 0.5 * value_loss - 0.01 * distribution.entropy().mean()
        self.losses = (padded.detach(), whole)
        return padded


def test_padding_and_autoreset_steps_count_in_no_loss_or_mean():
    # 7 steps of 2 envs: 3 steps, the autoreset step, 3 steps; chunks of 3 steps, the last of one step and 2 pads.
    ppo = PaddedAgainstWhole(
        COUNTING, recurrent="lstm", n_steps=7, sequence_length=3, batch_size=14, n_epochs=1, ent_coef=0.01,
        total_timesteps=14, steps_per_epoch=14, **SMALL,
    )
    ppo.losses = ()
    trainer().fit(ppo)
    assert ppo.valid == [[True, True, True, False, True, True, True]] * 2
    padded, whole = ppo.losses
    torch.testing.assert_close(padded, whole, rtol=1e-6, atol=1e-6)


def test_recurrent_a2c_learns_from_its_rollout_and_acts_through_the_state():
    a2c = A2C("rl_lightning/CartPoleNoVel-v1", recurrent="gru", n_steps=8, total_timesteps=64, steps_per_epoch=32,
              **SMALL)
    before = [p.detach().clone() for p in a2c.parameters()]
    trainer().fit(a2c)
    assert any(not torch.equal(b, p) for b, p in zip(before, a2c.parameters(), strict=True))
    observations = torch.zeros(3, 2)
    actions, state = a2c.policy_step(observations, None, torch.ones(3, dtype=torch.bool), deterministic=True)
    assert actions.shape == (3,) and [tuple(part.shape) for part in state] == [(3, 1, 8)]
    with pytest.raises(RuntimeError, match="policy_step"):
        a2c.act(observations)


class NoInitialState(nn.Module):
    def forward(self, observations: Tensor, state: Any, episode_starts: Tensor) -> Any:
        return observations


class StateNotBatchFirst(StepsSinceStart):
    def initial_state(self, batch_size: int, device: torch.device | str) -> tuple[Tensor]:
        return (torch.zeros(1, 1, device=device),)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(recurrent="lstm", shared_network=True), "recurrent= gives the policy its networks"),
        (dict(recurrent="rnn"), "recurrent='rnn' must be 'lstm' or 'gru'"),
        (dict(recurrent="gru", sequence_length=65), "sequence_length=65 is longer than a rollout of n_steps=64"),
        (dict(recurrent="gru", sequence_length=0), "sequence_length=0 must be a positive number"),
        (dict(recurrent="lstm", rnn_layers=0), "rnn_layers=0 must be a positive number"),
        (dict(recurrent=lambda o, a: NoInitialState()), "has no initial_state(batch_size, device)"),
        (dict(recurrent=StateNotBatchFirst), "state must be a tuple of float tensors with the batch first"),
    ],
)
def test_bad_recurrent_settings_are_refused_with_the_fix(options, message):
    with pytest.raises(ConfigurationError) as error:
        PPO("CartPole-v1", n_steps=64, **options)
    assert message in str(error.value)


# experiments/ppo_lstm_cartpole_novel.yaml (RL-Zoo's RecurrentPPO set for CartPoleNoVel-v1, rewards normalized) on a
# budget of 32,768 env steps, evaluated (5 deterministic episodes) every 2,048.
NO_VELOCITY = dict(
    num_envs=8, n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8, learning_rate="lin_0.001",
    clip_range="lin_0.2", normalize_observations=True, normalize_rewards=True, hidden_sizes=(64,), ortho_init=False,
    total_timesteps=32_768, steps_per_epoch=2048, eval_episodes=5, eval_envs=5, seed=0,
)


def evaluations_until_solved(**options: Any) -> list[float]:
    """The evaluations of PPO on CartPole without velocities (``NO_VELOCITY`` and ``options``), until one reaches 475
    or the budget is spent."""
    returns = []

    class Record(Callback):
        def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            returns.append(trainer.callback_metrics["val/return_mean"].item())

    solved = EarlyStopping(
        "val/return_mean", mode="max", stopping_threshold=475.0, patience=10**6, check_on_train_epoch_end=False
    )
    trainer(callbacks=[Record(), solved]).fit(PPO(CARTPOLE_NO_VELOCITY, **{**NO_VELOCITY, **options}))
    return returns


@pytest.mark.learning
def test_memory_solves_cartpole_without_velocities_where_a_feed_forward_policy_does_not():
    recurrent = evaluations_until_solved(recurrent="lstm")
    assert recurrent[-1] >= 475.0, recurrent
    feed_forward = evaluations_until_solved()
    assert len(feed_forward) == 16 and max(feed_forward) < 475.0, feed_forward

