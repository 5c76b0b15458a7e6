"""Non-finite values stop a run with one message naming the source, and never reach a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from rl_lightning import DQN, PPO, RunFault
from tests.helpers import DQN_SMALL, PPO_SMALL, trainer
from tests.toy_envs import NON_FINITE_ID, TORCH_NON_FINITE_ID


@pytest.mark.parametrize("nan_in", ["observation", "reward"])
def test_a_nan_from_the_env_stops_the_fit_before_any_checkpoint(tmp_path: Path, nan_in: str) -> None:
    """30 env steps: the NaN comes at the 30th step of the first episode, before learning starts."""
    dqn = DQN(NON_FINITE_ID, env_kwargs={"nan_at": 30, "nan_in": nan_in}, **DQN_SMALL)
    checkpoints = [
        ModelCheckpoint(dirpath=tmp_path, filename="last"),
        ModelCheckpoint(dirpath=tmp_path, filename="best", monitor="val/return_mean", mode="max"),
    ]
    with pytest.raises(RunFault, match=rf"^env 0 returned a non-finite {nan_in} at vector step 30 "):
        trainer(enable_checkpointing=True, callbacks=checkpoints).fit(dqn)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("algorithm", "options", "nan_in"),
    [(PPO, PPO_SMALL, "observation"), (DQN, {**DQN_SMALL, "num_envs": 2}, "reward")],
    ids=["ppo-rollout-end", "dqn-epoch-end"],
)
def test_a_nan_from_a_torch_env_stops_the_fit_at_the_next_check_before_any_checkpoint(
    tmp_path: Path, algorithm: type, options: dict, nan_in: str
) -> None:
    """Env 1's 5th step: PPO reads it back at the end of its first rollout, DQN at the end of its first epoch."""
    model = algorithm(
        TORCH_NON_FINITE_ID,
        vectorization="torch",
        env_kwargs={"nan_env": 1, "nan_at": 5, "nan_in": nan_in, "max_episode_steps": 50},
        **options,
    )
    checkpoints = [ModelCheckpoint(dirpath=tmp_path, filename="last")]
    message = rf"^env 1 returned a non-finite {nan_in} at vector step 5; it was replaced by zeros until the run stopped"
    with pytest.raises(RunFault, match=message):
        trainer(enable_checkpointing=True, callbacks=checkpoints).fit(model)
    assert model.env_steps == (PPO_SMALL["n_steps"] * 2 if algorithm is PPO else DQN_SMALL["steps_per_epoch"])
    assert list(tmp_path.iterdir()) == []


def test_a_non_finite_loss_is_named() -> None:
    ppo = PPO("CartPole-v1", **PPO_SMALL)
    ppo.update_stats.add(policy_loss=torch.tensor(0.5), value_loss=torch.tensor(0.5))
    ppo.refuse_non_finite_updates()  # all finite: nothing to say
    ppo.update_stats.add(policy_loss=torch.tensor(0.5), value_loss=torch.tensor(float("inf")))
    with pytest.raises(RunFault, match=r"^train/value_loss became non-finite \(NaN or infinite\) in epoch 0"):
        ppo.refuse_non_finite_updates()


def test_no_checkpoint_is_written_from_non_finite_parameters() -> None:
    dqn = DQN("CartPole-v1", **DQN_SMALL)
    checkpoint: dict = {}
    dqn.on_save_checkpoint(checkpoint)
    assert "rl_lightning" in checkpoint
    with torch.no_grad():
        next(dqn.q_net.parameters())[0, 0] = float("nan")
    message = r"^q_net\.torso\.0\.weight holds NaN or infinite values: no checkpoint is written"
    with pytest.raises(RunFault, match=message):
        dqn.on_save_checkpoint({})


def test_check_finite_false_turns_the_checks_off() -> None:
    dqn = DQN("CartPole-v1", check_finite=False, **DQN_SMALL)
    with torch.no_grad():
        next(dqn.q_net.parameters())[0, 0] = float("nan")
    checkpoint: dict = {}
    dqn.on_save_checkpoint(checkpoint)
    assert "rl_lightning" in checkpoint
