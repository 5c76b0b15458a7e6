"""Helpers of the many-seeds and report tests: the rl-lightning command run in this process, and real runs of several
seeds made once per test session by ``rl-lightning fit --seeds`` (each seed a ``fit`` subprocess on a tiny budget)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import torch

PPO_CONFIG = str(Path(__file__).resolve().parents[1] / "experiments" / "ppo_cartpole.yaml")
TINY_PPO = [
    "--model.init_args.num_envs=2",
    "--model.init_args.n_steps=64",
    "--model.init_args.batch_size=64",
    "--model.init_args.n_epochs=1",
    "--model.init_args.steps_per_epoch=256",
    "--model.init_args.eval_episodes=2",
    "--model.init_args.hidden_sizes=[16]",
    "--trainer.enable_model_summary=false",
]
"""PPO on CartPole in epochs of 256 env steps, each seed's process done in a few seconds."""

FIRST_TOTAL = 512
RESUMED_TOTAL = 768
"""The first launch trains each seed for 512 env steps; the resumed launch goes on to 768."""


@dataclass(frozen=True)
class CliResult:
    status: int
    out: str
    err: str


def run_cli(*argv: str) -> CliResult:
    """``rl-lightning ARGV`` in this process: its exit status, standard output and standard error."""
    from rl_lightning.cli import main  # here: conftest imports this module for every test

    out, err = io.StringIO(), io.StringIO()
    status = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else 1
    return CliResult(status, out.getvalue(), err.getvalue())


def fit_seeds(root: Path, total_timesteps: int, *extra: str) -> CliResult:
    """``rl-lightning fit --config ppo_cartpole.yaml <tiny budget> --trainer.default_root_dir ROOT EXTRA...``."""
    return run_cli(
        "fit",
        "--config",
        PPO_CONFIG,
        *TINY_PPO,
        f"--model.init_args.total_timesteps={total_timesteps}",
        "--trainer.default_root_dir",
        str(root),
        *extra,
    )


@dataclass(frozen=True)
class SeededRuns:
    """``root/seed_0`` and ``root/seed_1`` trained to 512 env steps, then resumed to 768, while seed 2 failed."""

    root: Path
    first: CliResult
    """``--seeds 0-1 --parallel 2``."""
    first_checkpoints: dict[int, int]
    """The env steps of each seed's ``last.ckpt`` after the first launch."""
    resumed: CliResult
    """``--seeds 0-2 --parallel 2 --ckpt_path last`` with 768 env steps, seed 2's folder holding a corrupt last.ckpt."""


def make_seeded_runs(root: Path) -> SeededRuns:
    first = fit_seeds(root, FIRST_TOTAL, "--seeds", "0-1", "--parallel", "2")
    first_checkpoints = {}
    for seed in (0, 1):
        path = root / f"seed_{seed}" / "checkpoints" / "last.ckpt"
        if path.is_file():
            first_checkpoints[seed] = torch.load(path, weights_only=True)["rl_lightning"]["env_steps"]
    corrupt = root / "seed_2" / "checkpoints" / "last.ckpt"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"not a checkpoint")
    resumed = fit_seeds(root, RESUMED_TOTAL, "--seeds=0-2", "--parallel=2", "--ckpt_path", "last")
    return SeededRuns(root, first, first_checkpoints, resumed)
