"""The fault suite: what ``rl-lightning`` does when things go wrong, run as a user runs it.

Every case runs the real command (``python -m rl_lightning.cli``) in a subprocess on a tiny run (DQN on
CartPole, 4 epochs of 256 env steps, 1024 in all; the bad-input cases stop before any env step) and asserts
the exit status, the first line of the message, and what is left on disk. The faults injected into a running
fit come from :class:`tests.faults.probe.FaultProbe`. The README's reliability section has the table of cases.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.faults.probe import FAULT

REPO = Path(__file__).resolve().parents[2]
STEPS_PER_EPOCH, TOTAL = 256, 1024
DQN = {
    "class_path": "rl_lightning.DQN",
    "init_args": dict(
        env="CartPole-v1",
        hidden_sizes=[32],
        learning_starts=128,
        batch_size=32,
        train_freq=4,
        gradient_steps=1,
        target_update_interval=100,
        total_timesteps=TOTAL,
        steps_per_epoch=STEPS_PER_EPOCH,
        eval_episodes=1,
        eval_envs=1,
        seed=3,
    ),
}


def write_config(folder: Path, model: dict[str, Any] = DQN, **init_args: Any) -> Path:
    """A config of ``model`` (with ``init_args`` overridden), logging nothing, with the fault probe."""
    config = {
        "seed_everything": 0,
        "model": {"class_path": model["class_path"], "init_args": {**model["init_args"], **init_args}},
        "trainer": {
            "accelerator": "cpu",
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "callbacks": [{"class_path": "tests.faults.probe.FaultProbe"}],
        },
    }
    path = folder / "config.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def cli(cwd: Path, *arguments: str, fault: str | None = None) -> subprocess.CompletedProcess:
    """``python -m rl_lightning.cli ARGUMENTS`` in ``cwd``, with ``fault`` injected (see ``FaultProbe``)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    environment.pop(FAULT, None)
    if fault is not None:
        environment[FAULT] = fault
    return subprocess.run(
        [sys.executable, "-m", "rl_lightning.cli", *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def message(result: subprocess.CompletedProcess) -> str:
    """The first line of what rl-lightning said (``rl-lightning: ...``), or of the traceback's last line."""
    lines = result.stderr.splitlines()
    ours = [line for line in lines if line.startswith("rl-lightning:")]
    return ours[0] if ours else (lines[-1] if lines else "")


def files(folder: Path) -> list[str]:
    """Every file under ``folder``, relative to it, sorted."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def checkpoint(root: Path) -> dict[str, Any]:
    return torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
