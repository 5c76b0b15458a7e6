"""Loggers: W&B runs recorded offline (config, env-step x-axis, final evaluation, checkpoint artifacts), no hang
without network or credentials, and TensorBoard/CSV with the same metric names on the same x-axis."""

from __future__ import annotations

import csv
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import pytest
import wandb
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from rl_lightning import DQN, ConfigurationError
from rl_lightning.loggers import WandbLogger, read_wandb_offline_run
from tests.tracking import finish_wandb, isolate_wandb, metric_rows

TINY = dict(
    hidden_sizes=(32,),
    learning_starts=256,
    train_freq=4,
    gradient_steps=1,
    total_timesteps=1024,
    steps_per_epoch=512,
    eval_episodes=2,
    eval_envs=2,
    seed=7,
)
METRICS = {"env_steps", "env_steps_per_sec", "train/episode_return", "train/loss", "val/return_mean"}


def fit(loggers: list, callbacks: list | None = None) -> DQN:
    agent = DQN("CartPole-v1", **TINY)
    trainer = L.Trainer(
        max_epochs=-1,
        logger=loggers,
        callbacks=callbacks,
        enable_checkpointing=bool(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(agent)
    return agent


@pytest.fixture
def wandb_root(monkeypatch, tmp_path) -> Iterator[Path]:
    yield isolate_wandb(monkeypatch, tmp_path)
    wandb.finish()
    wandb.teardown()


def test_wandb_offline_run_holds_config_env_step_metrics_final_eval_and_checkpoints(wandb_root, tmp_path):
    best = ModelCheckpoint(dirpath=tmp_path / "checkpoints", monitor="val/return_mean", mode="max", save_last=True)
    fit([WandbLogger(log_checkpoints=True)], callbacks=[best])
    run = finish_wandb(wandb_root)

    assert (run.name, run.group, run.tags) == ("DQN-CartPole-v1-s7", "DQN-CartPole-v1", ["DQN", "CartPole-v1"])
    assert run.config["env_id"] == "CartPole-v1"
    assert run.config["num_envs"] == 1
    assert run.config["networks"]["q_net"] == "rl_lightning.nets.q.QNetwork"
    assert run.config["algorithm"] == "DQN"
    assert run.config["steps_per_epoch"] == 512  # the hyperparameters beside the description

    # Every metric is plotted against env steps, and Lightning's step is the env step count too.
    assert run.step_metrics["*"] == "env_steps"
    logged = set().union(*run.history)
    assert logged >= METRICS
    evaluations = metric_rows(run, "val/return_mean")
    assert [row["env_steps"] for row in evaluations] == [512, 1024]
    assert all(row["trainer/global_step"] == row["env_steps"] for row in run.history)
    assert [row["env_steps"] for row in metric_rows(run, "train/episode_return")] == [512, 1024]

    # The final deterministic evaluation is the summary.
    assert run.summary["val/return_mean"] == evaluations[-1]["val/return_mean"]
    assert run.summary["val/env_steps"] == 1024

    # Checkpoints are artifacts carrying the evaluation they were written after.
    assert run.artifacts, "no checkpoint artifact"
    for artifact in run.artifacts:
        assert artifact["type"] == "model"
        assert artifact["metadata"]["val/env_steps"] in (512, 1024)
        assert "val/return_mean" in artifact["metadata"]
    assert "latest" in run.artifacts[-1]["aliases"]
    best_artifacts = [a for a in run.artifacts if "best" in a["aliases"]]
    assert [a["metadata"]["original_filename"] for a in best_artifacts] == [Path(best.best_model_path).name]


def test_wandb_logger_refuses_log_model():
    with pytest.raises(ConfigurationError, match="log_checkpoints=True"):
        WandbLogger(log_model=True)


def test_a_wandb_run_says_nothing_of_the_anonymous_setting_unless_asked_for(wandb_root, monkeypatch, capfd):
    """wandb warns of ``anonymous`` whenever it is passed, and Lightning passed None on every run."""
    monkeypatch.delenv("WANDB_SILENT")
    wandb.teardown()
    WandbLogger(project="demo").experiment.finish()
    assert "anonymous" not in capfd.readouterr().err
    WandbLogger(project="demo", anonymous=True).experiment.finish()
    assert "The anonymous setting has no effect" in capfd.readouterr().err  # the check can fail


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def answering_server() -> Iterator[str]:
    """An HTTP server on localhost that answers every request with 404."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize(
    ("api_key", "server", "reason"),
    [
        (None, "closed", "no answer from"),  # no credentials, no network
        ("0" * 40, "closed", "no answer from"),  # credentials, no network: wandb alone waits ~100 s
        (None, "answering", "could not start"),  # network, no credentials: wandb refuses to start
    ],
)
def test_online_without_network_or_credentials_falls_back_to_offline_within_seconds(
    monkeypatch, tmp_path, request, api_key, server, reason
):
    root = isolate_wandb(monkeypatch, tmp_path, mode="online")
    url = request.getfixturevalue("answering_server") if server == "answering" else f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("WANDB_BASE_URL", url)
    if api_key is not None:
        monkeypatch.setenv("WANDB_API_KEY", api_key)
    wandb.teardown()
    started = time.monotonic()
    try:
        with pytest.warns(UserWarning, match=f"{reason}.*recording this run offline instead.*wandb sync"):
            run = WandbLogger().experiment
        assert run.settings.mode == "offline"
        assert time.monotonic() - started < 30
        assert finish_wandb(root).finished
    finally:
        wandb.finish()
        wandb.teardown()


def test_tensorboard_and_csv_log_the_same_metrics_against_env_steps(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    csv_logger, tensorboard = CSVLogger(tmp_path, name="csv"), TensorBoardLogger(tmp_path, name="tb")
    fit([csv_logger, tensorboard])

    with open(Path(csv_logger.log_dir) / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert set(rows[0]) >= METRICS | {"step"}
    assert all(float(row["step"]) == float(row["env_steps"]) for row in rows)
    assert sorted({int(row["step"]) for row in rows if row["val/return_mean"]}) == [512, 1024]
    hparams = yaml.safe_load((Path(csv_logger.log_dir) / "hparams.yaml").read_text())
    assert (hparams["algorithm"], hparams["env_id"], hparams["num_envs"]) == ("DQN", "CartPole-v1", 1)

    events = EventAccumulator(tensorboard.log_dir)
    events.Reload()
    assert set(events.Tags()["scalars"]) >= METRICS
    assert [event.step for event in events.Scalars("val/return_mean")] == [512, 1024]
    assert [event.step for event in events.Scalars("train/episode_return")] == [512, 1024]


def test_offline_run_reader_joins_records_across_blocks_and_stops_at_a_torn_end(wandb_root):
    run = wandb.init(project="reader", config={"env_id": "Toy-v0"})
    long_text = "x" * 100_000  # one record over four 32 KiB blocks
    run.log({"env_steps": 1, "note": long_text})
    run.log({"env_steps": 2, "val/return_mean": 3.5})
    recorded = finish_wandb(wandb_root)
    assert recorded.config["env_id"] == "Toy-v0"
    assert [row["env_steps"] for row in recorded.history] == [1, 2]
    assert recorded.history[0]["note"] == long_text

    torn = wandb_root / "torn.wandb"
    data = recorded.path.read_bytes()
    torn.write_bytes(data[: len(data) // 2])  # inside the first logged record (the 100,000-character note)
    partial = read_wandb_offline_run(torn)
    assert not partial.finished and partial.history == []
    torn.write_bytes(data[:-8])  # every record but the last (the run's exit record)
    partial = read_wandb_offline_run(torn)
    assert not partial.finished
    assert [row["env_steps"] for row in partial.history] == [1, 2]
