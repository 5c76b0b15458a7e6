"""Helpers of the experiment-tracking tests: W&B cut off from the developer's account and the network, and an
env that renders frames whose content and count are known."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
import wandb

from rl_lightning.loggers import WandbOfflineRun, read_wandb_offline_run
from tests.toy_envs import CountingEnv

PAINTED_ID = "RLLightningPainted-v0"
PAINTED_EPISODE = 5
"""Every episode of ``PaintedEnv`` terminates at its 5th step, so its video has 6 frames."""


class PaintedEnv(CountingEnv):
    """``CountingEnv`` terminating at step 5 that renders a 15 x 17 frame (odd sides) whose gray level is ``20 t``."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(terminate_at=PAINTED_EPISODE, render_mode=render_mode)

    def render(self) -> np.ndarray:
        return np.full((15, 17, 3), 20 * self.t, dtype=np.uint8)


if PAINTED_ID not in gym.registry:
    gym.register(PAINTED_ID, entry_point=PaintedEnv)


def isolate_wandb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str = "offline") -> Path:
    """Point every W&B setting into ``tmp_path`` (no netrc, no API key, no settings files); return the run root.

    ``wandb`` keeps its settings in a process-wide singleton loaded once: it is torn down so that this
    test's environment is read.
    """
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    for name, value in {
        "HOME": home,
        "NETRC": home / ".netrc",
        "WANDB_DIR": tmp_path,
        "WANDB_CONFIG_DIR": home / "config",
        "WANDB_CACHE_DIR": home / "cache",
        "WANDB_DATA_DIR": home / "data",
        "WANDB_MODE": mode,
        "WANDB_CONSOLE": "off",
        "WANDB_SILENT": "true",
    }.items():
        monkeypatch.setenv(name, str(value))
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.delenv(name, raising=False)
    wandb.teardown()
    return tmp_path


def finish_wandb(run_root: Path, timeout: float = 30.0) -> WandbOfflineRun:
    """Finish the current W&B run and read it back once W&B has written its exit record."""
    wandb.finish()
    deadline = time.monotonic() + timeout
    while True:
        run_dirs = sorted(run_root.glob("wandb/offline-run-*"))
        if run_dirs:
            run = read_wandb_offline_run(run_dirs[-1])
            if run.finished or time.monotonic() > deadline:
                return run
        elif time.monotonic() > deadline:
            raise AssertionError(f"no offline W&B run under {run_root}")
        time.sleep(0.05)


def metric_rows(run: WandbOfflineRun, key: str) -> list[dict[str, Any]]:
    """The history rows of ``run`` that hold ``key``."""
    return [row for row in run.history if key in row]
