"""The fault suite: what ``rl-lightning`` does when things go wrong, run as a user runs it.

Every case runs the real command (``python -m rl_lightning.cli``, or the installed ``rl-lightning`` script)
in a subprocess on a tiny run (DQN on CartPole, 4 epochs of 256 env steps, 1024 in all; the bad-input cases
stop before any env step) and asserts the exit status, the first line of the message, and what is left on
disk. The faults injected into a running fit come from :class:`tests.faults.probe.FaultProbe`. The README's
reliability section has the table of cases.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
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

PPO = {
    "class_path": "rl_lightning.PPO",
    "init_args": dict(
        env="CartPole-v1",
        num_envs=2,
        hidden_sizes=[16],
        n_steps=32,
        batch_size=16,
        n_epochs=2,
        total_timesteps=256,
        steps_per_epoch=128,
        eval_episodes=1,
        eval_envs=1,
    ),
}


def write_config(folder: Path, model: dict[str, Any] = DQN, **init_args: Any) -> Path:
    """A config of ``model`` (with ``init_args`` overridden), logging nothing, with the fault probe."""
    config = {
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


def start(cwd: Path, *command: str, fault: str | None = None) -> subprocess.Popen:
    """``python -m rl_lightning.cli COMMAND`` started in ``cwd`` (or ``command`` itself when it starts with a path
    to an executable), with ``fault`` injected (see ``FaultProbe``); its output goes to ``cwd/stdout-<n>.txt`` and
    ``cwd/stderr-<n>.txt``."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    environment.pop(FAULT, None)
    if fault is not None:
        environment[FAULT] = fault
    if not Path(command[0]).is_absolute():
        command = (sys.executable, "-m", "rl_lightning.cli", *command)
    cwd.mkdir(parents=True, exist_ok=True)
    index = len(list(cwd.glob("stderr-*.txt")))
    with open(cwd / f"stdout-{index}.txt", "w") as stdout, open(cwd / f"stderr-{index}.txt", "w") as stderr:
        return subprocess.Popen(command, cwd=cwd, env=environment, stdout=stdout, stderr=stderr)


def cli(cwd: Path, *command: str) -> tuple[int, str]:
    """Run ``command`` (see :func:`start`) in ``cwd``: its exit status and stderr."""
    process = start(cwd, *command)
    code = process.wait(timeout=600)
    return code, output_of(cwd, -1)


def output_of(cwd: Path, index: int, stream: str = "stderr") -> str:
    """What the ``index``-th command started in ``cwd`` (-1: the latest) wrote to ``stream`` (stderr or stdout)."""
    paths = sorted(cwd.glob(f"{stream}-*.txt"), key=lambda path: int(path.stem.split("-")[1]))
    return paths[index].read_text()


def message(stderr: str) -> str:
    """The first error or stop line rl-lightning or its parser wrote (``rl-lightning: error: ...``,
    ``rl-lightning: received SIGTERM ...``, ``error: ...``; not the run's start-up and summary lines), else the last
    line (a traceback's exception)."""
    lines = stderr.splitlines()
    ours = [line for line in lines if line.startswith(("rl-lightning: error:", "rl-lightning: received", "error:"))]
    return ours[0] if ours else (lines[-1] if lines else "")


def files(folder: Path) -> list[str]:
    """Every file under ``folder`` but the commands' output, relative to it, sorted."""
    paths = (path for path in folder.rglob("*") if path.is_file() and not path.name.startswith(("stdout-", "stderr-")))
    return sorted(str(path.relative_to(folder)) for path in paths)


def checkpoint(root: Path) -> dict[str, Any]:
    """The ``checkpoints/last.ckpt`` of the run in ``root``."""
    return torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)


# ---------------------------------------------------------------------------------------- bad input: exit 2
@pytest.mark.parametrize(
    ("model", "arguments", "first_line"),
    [
        (
            DQN,
            ["--model.init_args.env=CartPol-v1"],
            "rl-lightning: error: env='CartPol-v1' is not a registered "
            "gymnasium environment. Did you mean 'CartPole-v1'",
        ),
        (PPO, ["--model.init_args.num_envs=0"], "rl-lightning: error: num_envs=0 must be a positive number."),
        (
            DQN,
            ["--model.init_args.learning_starts=1024"],
            "rl-lightning: error: learning_starts=1024 is not below "
            "total_timesteps=1024: training would end before the first update.",
        ),
        (
            DQN,
            ["--model.init_args.buffer_size=16"],
            "rl-lightning: error: batch_size=32 is larger than buffer_size=16, "
            "all the transitions the buffer can hold. Raise buffer_size to at least 32, or lower batch_size.",
        ),
        (
            DQN,
            ["--model.init_args.learning_rat=0.1"],
            "error: rl_lightning.DQN does not accept option 'learning_rat'; did you mean 'learning_rate'?",
        ),
        (DQN, ["--ckpt_path=missing.ckpt"], "rl-lightning: error: checkpoint missing.ckpt: no such file."),
        pytest.param(
            DQN,
            ["--model.init_args.env=LunarLander-v3"],
            "rl-lightning: error: env='LunarLander-v3' needs a package that is not installed",
            marks=pytest.mark.skipif(importlib.util.find_spec("Box2D") is not None, reason="Box2D is installed"),
        ),
    ],
    ids=[
        "env-id-typo",
        "ppo-num-envs-0",
        "learning-starts-past-the-end",
        "batch-over-buffer",
        "unknown-key",
        "missing-checkpoint",
        "missing-extra",
    ],
)
def test_bad_input_exits_2_with_one_message_and_leaves_nothing(
    tmp_path: Path, model: dict[str, Any], arguments: list[str], first_line: str
) -> None:
    config = write_config(tmp_path, model)
    code, stderr = cli(
        tmp_path, "fit", "--config", str(config), f"--trainer.default_root_dir={tmp_path / 'run'}", *arguments
    )
    assert code == 2, stderr
    assert message(stderr).startswith(first_line), stderr
    assert "Traceback" not in stderr
    assert files(tmp_path) == ["config.yaml"]


def test_a_run_folder_that_cannot_be_created_is_refused_with_exit_2(tmp_path: Path) -> None:
    """The run folder's parent is a regular file: real for every user, root included (who ignores permissions)."""
    (tmp_path / "results").write_text("a file where a folder was meant\n")
    config = write_config(tmp_path)
    code, stderr = cli(tmp_path, "fit", "--config", str(config), "--trainer.default_root_dir=results/run")
    assert code == 2, stderr
    assert message(stderr) == (
        "rl-lightning: error: the run folder results/run cannot be created: results is a file, not a folder. "
        "Choose another folder (--trainer.default_root_dir, or the checkpoint callback's dirpath)."
    )
    assert "Traceback" not in stderr
    assert files(tmp_path) == ["config.yaml", "results"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_run_folder_is_refused_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir(mode=0o555)
    config = write_config(tmp_path)
    try:
        code, stderr = cli(tmp_path, "fit", "--config", str(config), "--trainer.default_root_dir=shared/run")
    finally:
        (tmp_path / "shared").chmod(0o755)
    assert code == 2, stderr
    assert message(stderr).startswith(
        "rl-lightning: error: the run folder shared/run cannot be created: shared is read-only for this user."
    ), stderr
    assert files(tmp_path) == ["config.yaml"]
    assert list((tmp_path / "shared").iterdir()) == []


@pytest.mark.parametrize("seed", [0, 2, 20], ids=["unpickling-error", "index-error", "key-error"])
def test_a_random_bytes_checkpoint_is_refused_with_exit_2(tmp_path: Path, seed: int) -> None:
    """4 KiB of random bytes; seeds 2 and 20 make torch's weights_only unpickler raise an IndexError and a
    KeyError, which once escaped as a traceback (about 7% of random files did)."""
    (tmp_path / "random.ckpt").write_bytes(random.Random(seed).randbytes(4096))
    config = write_config(tmp_path)
    code, stderr = cli(
        tmp_path,
        "fit",
        "--config",
        str(config),
        f"--trainer.default_root_dir={tmp_path / 'run'}",
        "--ckpt_path=random.ckpt",
    )
    assert code == 2, stderr
    assert message(stderr).startswith("rl-lightning: error: checkpoint random.ckpt is not a readable checkpoint")
    assert "Traceback" not in stderr
    assert files(tmp_path) == ["config.yaml", "random.ckpt"]


# ---------------------------------------------------------------------------------------- faults during a fit
LEFT_BY_A_STOPPED_RUN = ["checkpoints/last.ckpt", "config.yaml"]
"""A fit without a logger saves its config in default_root_dir when it starts, and checkpoints below."""
FAULTS = {
    "SIGTERM": "SIGTERM@1",
    "SIGUSR1": "SIGUSR1@1",
    "crash": "crash@1",
    "SIGINT": "SIGINT@1",
    "ENOSPC": "ENOSPC@1",
}
"""Each fault comes in epoch 1 (the second), at its third training step, or while its checkpoint is written."""


@dataclass
class Run:
    """A fit's folder (its ``--trainer.default_root_dir``), exit status and stderr."""

    root: Path
    code: int
    stderr: str


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Fits of the tiny DQN run: ``straight``; one per fault of :data:`FAULTS`; ``nan``, on an env whose reward is
    NaN at step 30; then ``SIGTERM-resumed`` and ``crash-resumed``, the SIGTERM and crash runs resumed with
    ``--ckpt_path last`` (their ``*-left`` copies hold what the fault left). Concurrent, in two waves."""
    folder = tmp_path_factory.mktemp("runs")
    config = write_config(folder / "config")
    nan_config = write_config(
        folder / "nan-config",
        env="tests.toy_envs:RLLightningNonFinite-v0",
        env_kwargs={"nan_at": 30, "nan_in": "reward"},
    )

    def fit(name: str, *extra: str, fault: str | None = None) -> tuple[str, subprocess.Popen]:
        root = folder / name.removesuffix("-resumed")
        process = start(
            root,
            "fit",
            "--config",
            str(nan_config if name == "nan" else config),
            f"--trainer.default_root_dir={root}",
            *extra,
            fault=fault,
        )
        return name, process

    def finish(wave: list[tuple[str, subprocess.Popen]]) -> dict[str, Run]:
        return {
            name: Run(folder / name, process.wait(timeout=600), output_of(folder / name.removesuffix("-resumed"), -1))
            for name, process in wave
        }

    results = finish([fit("straight"), fit("nan"), *(fit(name, fault=fault) for name, fault in FAULTS.items())])
    for name in ("SIGTERM", "crash"):
        shutil.copytree(folder / name, folder / f"{name}-left")  # before the resumed run writes over it
        results[name].root = folder / f"{name}-left"
    resumed = finish([fit(f"{name}-resumed", "--ckpt_path=last") for name in ("SIGTERM", "crash")])
    for name, run in resumed.items():
        run.root = folder / name.removesuffix("-resumed")
    return {**results, **resumed}


def assert_same_run(got: dict[str, Any], expected: dict[str, Any]) -> None:
    """Two checkpoints of the same point of the same run: equal env steps, parameters and optimizer states."""
    assert got["rl_lightning"]["env_steps"] == expected["rl_lightning"]["env_steps"]
    assert got["state_dict"].keys() == expected["state_dict"].keys()
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(got["state_dict"][name], tensor), name
    for got_optimizer, optimizer in zip(got["optimizer_states"], expected["optimizer_states"], strict=True):
        for key, state in optimizer["state"].items():
            for name, value in state.items():
                assert torch.equal(torch.as_tensor(got_optimizer["state"][key][name]), torch.as_tensor(value))


def test_the_straight_run_finishes(runs: dict[str, Run]) -> None:
    straight = runs["straight"]
    assert straight.code == 0, straight.stderr
    assert checkpoint(straight.root)["rl_lightning"]["env_steps"] == TOTAL
    assert "Traceback" not in straight.stderr


def test_sigterm_checkpoints_at_the_epoch_end_exits_143_and_resumes_exactly(runs: dict[str, Run]) -> None:
    stopped, resumed = runs["SIGTERM"], runs["SIGTERM-resumed"]
    assert stopped.code == 143, stopped.stderr
    assert message(stopped.stderr) == (
        "rl-lightning: received SIGTERM: stopping at the end of this epoch, after writing a checkpoint."
    )
    assert files(stopped.root) == LEFT_BY_A_STOPPED_RUN
    assert checkpoint(stopped.root)["rl_lightning"]["env_steps"] == 2 * STEPS_PER_EPOCH  # epoch 1 was finished
    assert resumed.code == 0, resumed.stderr
    assert_same_run(checkpoint(resumed.root), checkpoint(runs["straight"].root))


def test_sigusr1_outside_slurm_checkpoints_at_the_epoch_end_and_exits_138(runs: dict[str, Run]) -> None:
    warned = runs["SIGUSR1"]
    assert warned.code == 138, warned.stderr
    assert message(warned.stderr) == (
        "rl-lightning: received SIGUSR1: stopping at the end of this epoch, after writing a checkpoint."
    )
    assert files(warned.root) == LEFT_BY_A_STOPPED_RUN
    assert checkpoint(warned.root)["rl_lightning"]["env_steps"] == 2 * STEPS_PER_EPOCH


def test_a_crashing_env_leaves_the_last_epochs_checkpoint_which_resumes_exactly(runs: dict[str, Run]) -> None:
    crashed, resumed = runs["crash"], runs["crash-resumed"]
    assert crashed.code == 1, crashed.stderr
    assert message(crashed.stderr) == "RuntimeError: the simulator crashed"
    assert files(crashed.root) == LEFT_BY_A_STOPPED_RUN
    assert checkpoint(crashed.root)["rl_lightning"]["env_steps"] == STEPS_PER_EPOCH
    assert resumed.code == 0, resumed.stderr
    assert_same_run(checkpoint(resumed.root), checkpoint(runs["straight"].root))


def test_sigint_stops_at_once_keeping_the_last_epochs_checkpoint(runs: dict[str, Run]) -> None:
    interrupted = runs["SIGINT"]
    assert interrupted.code == 1, interrupted.stderr
    assert "Detected KeyboardInterrupt, attempting graceful shutdown" in interrupted.stderr
    assert files(interrupted.root) == LEFT_BY_A_STOPPED_RUN
    assert checkpoint(interrupted.root)["rl_lightning"]["env_steps"] == STEPS_PER_EPOCH


def test_a_full_disk_says_so_removes_the_partial_file_and_keeps_the_previous_checkpoint(runs: dict[str, Run]) -> None:
    full = runs["ENOSPC"]
    assert full.code == 1, full.stderr
    assert message(full.stderr).startswith(
        f"rl-lightning: error: no space left on device writing checkpoint {full.root / 'checkpoints' / 'last.ckpt'} "
        f"(about "
    ), full.stderr
    assert "Traceback" not in full.stderr
    assert files(full.root) == LEFT_BY_A_STOPPED_RUN  # no last.ckpt.part
    assert checkpoint(full.root)["rl_lightning"]["env_steps"] == STEPS_PER_EPOCH


def test_a_nan_reward_stops_the_run_naming_the_env_and_step_before_any_checkpoint(runs: dict[str, Run]) -> None:
    poisoned = runs["nan"]
    assert poisoned.code == 1, poisoned.stderr
    assert message(poisoned.stderr).startswith(
        "rl-lightning: error: env 0 returned a non-finite reward at vector step 30"
    ), poisoned.stderr
    assert "Traceback" not in poisoned.stderr
    assert files(poisoned.root) == ["config.yaml"]  # no checkpoints folder


@pytest.mark.parametrize("kept", [0.5, 0.9])
def test_a_truncated_checkpoint_is_refused_with_exit_2(runs: dict[str, Run], tmp_path: Path, kept: float) -> None:
    whole = (runs["straight"].root / "checkpoints" / "last.ckpt").read_bytes()
    (tmp_path / "truncated.ckpt").write_bytes(whole[: int(len(whole) * kept)])
    config = write_config(tmp_path)
    code, stderr = cli(
        tmp_path,
        "fit",
        "--config",
        str(config),
        f"--trainer.default_root_dir={tmp_path / 'run'}",
        "--ckpt_path=truncated.ckpt",
    )
    assert code == 2, stderr
    assert message(stderr).startswith("rl-lightning: error: checkpoint truncated.ckpt is not a readable checkpoint")
    assert files(tmp_path) == ["config.yaml", "truncated.ckpt"]


MY_MODULES = """
import gymnasium
from torch import nn

gymnasium.register("MyCartPole-v0", entry_point="gymnasium.envs.classic_control:CartPoleEnv", max_episode_steps=500)


class MyQNet(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(obs_dim, 16), nn.ReLU(), nn.Linear(16, n_actions))

    def forward(self, x):
        return self.layers(x)
"""


def test_the_console_script_finds_an_env_and_a_network_beside_the_config_and_evaluate_rebuilds_them(
    tmp_path: Path,
) -> None:
    """``rl-lightning`` (the installed script, not ``python -m``) with ``env: my_modules:MyCartPole-v0`` and
    ``q_net: {class_path: my_modules.MyQNet}`` from the current directory; one epoch of 256 env steps."""
    script = Path(sys.executable).with_name("rl-lightning")
    if not script.exists():
        pytest.skip(f"no rl-lightning script beside {sys.executable} (rl-lightning is not installed there)")
    (tmp_path / "my_modules.py").write_text(MY_MODULES)
    network = {"class_path": "my_modules.MyQNet", "init_args": {"obs_dim": 4, "n_actions": 2}}
    config = write_config(tmp_path, env="my_modules:MyCartPole-v0", q_net=network, total_timesteps=256)
    code, stderr = cli(tmp_path, str(script), "fit", "--config", str(config), "--trainer.default_root_dir=run")
    assert code == 0, stderr
    last = "run/checkpoints/last.ckpt"
    assert checkpoint(tmp_path / "run")["rl_lightning"]["env_steps"] == 256

    code, stderr = cli(tmp_path, str(script), "evaluate", "--ckpt_path", last, "--episodes", "1")
    assert code == 2, stderr
    assert message(stderr).startswith(f"rl-lightning: error: checkpoint {last} ")
    assert "my_modules.MyQNet (a class_path of its config)" in message(stderr)
    code, stderr = cli(
        tmp_path, str(script), "evaluate", "--ckpt_path", last, "--episodes", "1", "--weights_only", "false"
    )
    assert code == 0, stderr
    assert json.loads(output_of(tmp_path, -1, "stdout").splitlines()[-1])["episodes"] == 1
