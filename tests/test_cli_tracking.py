"""What ``rl-lightning fit`` records without extra code: a CSV log and epoch lines by default, W&B with one flag."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import wandb

from rl_lightning.cli import main
from tests.tracking import finish_wandb, isolate_wandb

CONFIG = str(Path(__file__).resolve().parents[1] / "experiments" / "dqn_cartpole.yaml")
TINY = [
    "--model.init_args.total_timesteps=1024",
    "--model.init_args.steps_per_epoch=512",
    "--model.init_args.learning_starts=256",
    "--model.init_args.train_freq=4",
    "--model.init_args.gradient_steps=1",
    "--model.init_args.hidden_sizes=[32]",
    "--model.init_args.eval_episodes=2",
    "--trainer.enable_model_summary=false",
]


@pytest.fixture(autouse=True)
def wandb_root(tmp_path, monkeypatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield isolate_wandb(monkeypatch, tmp_path)
    wandb.finish()
    wandb.teardown()


def test_fit_without_a_logger_writes_a_csv_log_and_one_line_per_epoch(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    main(["fit", "--config", CONFIG, *TINY])
    with open(tmp_path / "runs" / "dqn_cartpole" / "lightning_logs" / "version_0" / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert [float(row["env_steps"]) for row in rows if row["val/return_mean"]] == [512, 1024]
    assert not (tmp_path / "wandb").exists()
    # pytest's output is no terminal: epoch lines instead of a bar.
    lines = [message for message in caplog.messages if message.startswith("epoch ")]
    assert [line.split(" env steps")[0] for line in lines] == ["epoch 0: 512/1,024", "epoch 1: 1,024/1,024"]


def test_one_flag_logs_the_run_to_wandb(wandb_root):
    main(
        [
            "fit",
            "--config",
            CONFIG,
            *TINY,
            "--trainer.logger=rl_lightning.loggers.WandbLogger",
            "--trainer.logger.project=demo",
        ]
    )
    run = finish_wandb(wandb_root)
    assert run.name == "DQN-CartPole-v1-s0"
    assert run.config["env_id"] == "CartPole-v1"
    assert run.config["networks"]["q_net"] == "rl_lightning.nets.q.QNetwork"
    assert run.summary["val/env_steps"] == 1024


def test_wandb_files_go_to_the_runs_folder_unless_a_folder_is_chosen(wandb_root, monkeypatch):
    """Without save_dir, dir or $WANDB_DIR, the offline run is recorded under default_root_dir, not the working
    directory; with save_dir, there."""
    monkeypatch.delenv("WANDB_DIR")
    wandb.teardown()
    fit = ["fit", "--config", CONFIG, *TINY, "--trainer.logger=rl_lightning.loggers.WandbLogger"]
    main([*fit, "--trainer.default_root_dir=runs/first"])
    run = finish_wandb(wandb_root / "runs" / "first")
    assert run.summary["val/env_steps"] == 1024
    assert run.config["env_id"] == "CartPole-v1"
    assert not (wandb_root / "wandb").exists()

    main([*fit, "--trainer.default_root_dir=runs/second", "--trainer.logger.save_dir=chosen"])
    assert finish_wandb(wandb_root / "chosen").summary["val/env_steps"] == 1024
    assert not (wandb_root / "runs" / "second" / "wandb").exists()
