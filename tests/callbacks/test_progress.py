"""The progress bar: env steps done / total, steps per second and returns; epoch lines where there is no terminal."""

from __future__ import annotations

import logging

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

from rl_lightning import DQN
from rl_lightning.callbacks import RLProgressBar
from tests.tracking import PAINTED_ID

TINY = dict(
    hidden_sizes=(16,),
    buffer_size=10_000,
    learning_starts=128,
    train_freq=4,
    gradient_steps=1,
    total_timesteps=512,
    steps_per_epoch=256,
    eval_episodes=2,
    eval_envs=1,
)


def fit(progress_bar: TQDMProgressBar | None) -> L.Trainer:
    """A DQN fit of 512 env steps with ``progress_bar``, or with Lightning's default where None."""
    agent = DQN(f"tests.tracking:{PAINTED_ID}", **TINY)
    trainer = L.Trainer(
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[] if progress_bar is None else [progress_bar],
    )
    trainer.fit(agent)
    return trainer


def test_without_a_terminal_one_line_per_epoch(caplog):
    caplog.set_level(logging.INFO)
    fit(RLProgressBar(interactive=False))
    lines = [message for message in caplog.messages if message.startswith("epoch ")]
    assert len(lines) == 2
    assert lines[0].startswith("epoch 0: 256/512 env steps (50%), ")
    assert lines[1].startswith("epoch 1: 512/512 env steps (100%), ")
    # The painted env pays t at step t and ends at step 5: every episode returns 15.
    for line in lines:
        assert " env steps/s, return 15.0, eval return 15.0" in line


def test_in_a_terminal_one_bar_counts_env_steps_to_the_total(capsys):
    progress_bar = RLProgressBar(refresh_rate=8, interactive=True)
    fit(progress_bar)
    bar = progress_bar.train_progress_bar
    assert (bar.n, bar.total) == (512, 512)
    final = capsys.readouterr().out.replace("\r", "\n").strip().splitlines()[-1]
    assert "Epoch 1: 100%" in final
    assert "512/512" in final
    assert "env steps/s" in final
    assert "return=15.00, eval=15.00" in final


def test_without_a_terminal_a_line_within_the_epoch_every_report_interval(caplog):
    caplog.set_level(logging.INFO)
    fit(RLProgressBar(interactive=False, report_interval=0.0))  # every batch is past the interval
    running = [message for message in caplog.messages if "(running)" in message]
    steps = [int(line.split(": ")[1].split("/")[0].replace(",", "")) for line in running]
    assert running[0].startswith("epoch 0 (running): ") and running[-1].startswith("epoch 1 (running): ")
    assert all(line.endswith(" env steps/s") and "/512 env steps (" in line for line in running)
    assert steps == sorted(steps) and 0 < steps[0] < 256 < steps[-1] <= 512


def test_a_trainer_from_python_counts_env_steps_unless_given_another_bar():
    default = fit(None).progress_bar_callback
    assert type(default) is RLProgressBar
    configured = TQDMProgressBar(refresh_rate=4)
    assert fit(configured).progress_bar_callback is configured
