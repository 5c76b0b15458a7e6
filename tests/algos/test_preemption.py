"""Pre-emption: SIGTERM or SIGUSR1 mid-epoch ends the run at the epoch's end with a checkpoint and a non-zero exit
status, and ``--ckpt_path last`` then ends bitwise identical to a run never stopped.

Three ``rl-lightning fit`` subprocesses of one tiny DQN config (4 epochs of 256 CartPole steps, 1024 in all): one
straight through, one that sends itself a signal at the third training step of epoch 1 (:class:`SignalProbe`,
told which by an environment variable), and that one resumed. A fourth, with SIGUSR1, checks only where it
stops. The straight and signalled runs go concurrently.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from rl_lightning.algos.preemption import exit_status

REPO = Path(__file__).resolve().parents[2]
SIGNAL = "RL_LIGHTNING_TEST_SIGNAL"
TOTAL, STEPS_PER_EPOCH = 1024, 256


class SignalProbe(Callback):
    """With ``RL_LIGHTNING_TEST_SIGNAL=<name>``, the process sends itself that signal at epoch 1's third step."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        name = os.environ.get(SIGNAL)
        if name and trainer.current_epoch == 1 and trainer.fit_loop.epoch_loop.batch_idx == 2:
            os.kill(os.getpid(), signal.Signals[name])


def write_config(folder: Path) -> Path:
    config = {
        "model": {
            "class_path": "rl_lightning.DQN",
            "init_args": dict(
                env="CartPole-v1", hidden_sizes=[32], learning_starts=128, batch_size=32, train_freq=4,
                gradient_steps=1, target_update_interval=100, total_timesteps=TOTAL, steps_per_epoch=STEPS_PER_EPOCH,
                eval_episodes=1, eval_envs=1, seed=3,
            ),
        },
        "trainer": {
            "accelerator": "cpu",
            "deterministic": True,
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "callbacks": [{"class_path": "tests.algos.test_preemption.SignalProbe"}],
        },
    }
    path = folder / "dqn.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_fit(config: Path, root: Path, *extra: str, signal_name: str | None = None) -> subprocess.Popen:
    root.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    environment.pop(SIGNAL, None)
    if signal_name:
        environment[SIGNAL] = signal_name
    with open(root / f"output-{len(list(root.glob('output-*')))}.txt", "w") as output:
        command = [sys.executable, "-m", "rl_lightning.cli", "fit", "--config", str(config)]
        return subprocess.Popen(
            [*command, f"--trainer.default_root_dir={root}", *extra],
            cwd=root, env=environment, stdout=output, stderr=subprocess.STDOUT,
        )


def output(root: Path) -> str:
    return "\n".join(path.read_text()[-3000:] for path in sorted(root.glob("output-*.txt")))


def last_checkpoint(root: Path) -> dict[str, Any]:
    return torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("preemption")
    config = write_config(folder)
    roots = {name: folder / name for name in ("straight", "SIGTERM", "SIGUSR1")}
    first = {
        "straight": start_fit(config, roots["straight"]),
        "SIGTERM": start_fit(config, roots["SIGTERM"], signal_name="SIGTERM"),
        "SIGUSR1": start_fit(config, roots["SIGUSR1"], signal_name="SIGUSR1"),
    }
    results: dict[str, Any] = {"roots": roots}
    results["codes"] = {name: process.wait(timeout=600) for name, process in first.items()}
    results["left"] = {
        name: last_checkpoint(roots[name]) for name in ("SIGTERM", "SIGUSR1") if (roots[name] / "checkpoints").exists()
    }
    results["resumed_code"] = start_fit(config, roots["SIGTERM"], "--ckpt_path=last").wait(timeout=600)
    return results


@pytest.mark.parametrize("name", ["SIGTERM", "SIGUSR1"])
def test_a_signal_stops_at_the_epoch_end_with_a_checkpoint_and_exit_128_plus_signum(runs, name: str) -> None:
    root = runs["roots"][name]
    assert runs["codes"][name] == exit_status(signal.Signals[name]) == 128 + signal.Signals[name], output(root)
    assert f"rl-lightning: received {name}: stopping at the end of this epoch" in output(root)
    left = runs["left"][name]
    assert left["epoch"] == 1  # the epoch the signal came in, played to its end
    assert left["rl_lightning"]["env_steps"] == 2 * STEPS_PER_EPOCH
    assert sorted(p.name for p in (root / "checkpoints").iterdir()) == ["last.ckpt"]


def test_a_run_stopped_by_a_signal_resumes_bitwise_identical(runs) -> None:
    straight, signalled = runs["roots"]["straight"], runs["roots"]["SIGTERM"]
    assert runs["codes"]["straight"] == 0, output(straight)
    assert runs["resumed_code"] == 0, output(signalled)
    expected, got = last_checkpoint(straight), last_checkpoint(signalled)
    assert got["rl_lightning"]["env_steps"] == expected["rl_lightning"]["env_steps"] == TOTAL
    assert got["global_step"] == expected["global_step"]
    assert got["state_dict"].keys() == expected["state_dict"].keys()
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(got["state_dict"][name], tensor), name
    for got_optimizer, optimizer in zip(got["optimizer_states"], expected["optimizer_states"], strict=True):
        for key, state in optimizer["state"].items():
            for name, value in state.items():
                assert torch.equal(torch.as_tensor(got_optimizer["state"][key][name]), torch.as_tensor(value))
