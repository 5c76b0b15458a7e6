"""Checkpoint and resume: a run killed and resumed in a new process ends bitwise identical to one never stopped.

The exactness runs are ``rl-lightning fit`` subprocesses on tiny budgets. Each algorithm's config is used
unchanged by three processes: one straight through, one SIGKILLed mid-run (by :class:`ResumeProbe`, told so
by an environment variable), and one resumed from that in a new process with ``--ckpt_path last``. The
configs configure no checkpoint callback: the default one writes ``checkpoints/last.ckpt`` every epoch. The
other tests (defaults, bad input, what cannot be exact) run in this process.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import lightning as L
import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from rl_lightning import DQN, PPO, RAINBOW, ConfigurationError
from rl_lightning.algos.checkpointing import (
    AtomicCheckpointIO,
    global_rng_state,
    set_global_rng_state,
    use_resume_checkpoints,
)
from rl_lightning.cli import main
from tests.helpers import trainer as quiet_trainer
from tests.toy_envs import counting_env

REPO = Path(__file__).resolve().parents[2]
KILL_IN_EPOCH = "RL_LIGHTNING_TEST_KILL_IN_EPOCH"
KILL_IN_SAVE = "RL_LIGHTNING_TEST_KILL_IN_SAVE"


class _KillWhenPickled:
    """Kills the process when ``torch.save`` pickles it: a kill in the middle of writing a checkpoint."""

    def __reduce__(self) -> Any:
        os.kill(os.getpid(), signal.SIGKILL)


class ResumeProbe(Callback):
    """Instrumentation of the subprocesses: records every evaluation in ``<default_root_dir>/evaluations.jsonl``.

    With ``RL_LIGHTNING_TEST_KILL_IN_EPOCH=k`` it SIGKILLs the process at the third training step of epoch
    ``k``; with ``RL_LIGHTNING_TEST_KILL_IN_SAVE=k``, while the checkpoint of epoch ``k`` is being written.
    """

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        record = {
            "epoch": trainer.current_epoch,
            "env_steps": pl_module.env_steps,
            "return_mean": trainer.callback_metrics["val/return_mean"].item(),
            "return_std": trainer.callback_metrics["val/return_std"].item(),
        }
        with open(Path(trainer.default_root_dir) / "evaluations.jsonl", "a") as file:
            file.write(json.dumps(record) + "\n")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if str(trainer.current_epoch) == os.environ.get(KILL_IN_EPOCH) and trainer.fit_loop.epoch_loop.batch_idx == 2:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if str(trainer.current_epoch) == os.environ.get(KILL_IN_SAVE):
            checkpoint["kill"] = _KillWhenPickled()


# Tiny runs of four epochs; DQN with 2 envs and 3-step returns, Rainbow's DQN (prioritized replay's sum tree, noisy
# layers, C51) on an env with valid-action masks (kept by the collector and with each replayed transition), PPO with
# both normalizers and a learning-rate schedule, PPO on torch CartPole, SAC on Pendulum with prioritized replay (the
# critics' TD errors as priorities), DQN on Atari with sticky actions. Where each is killed: DQN while writing epoch
# 2's checkpoint, the others mid-epoch 2.
RUNS: dict[str, dict[str, Any]] = {
    "dqn": {
        "kill": {KILL_IN_SAVE: "2"},
        "class_path": "rl_lightning.DQN",
        "init_args": dict(
            env="CartPole-v1",
            num_envs=2,
            hidden_sizes=[32],
            learning_starts=256,
            batch_size=32,
            train_freq=4,
            gradient_steps=1,
            target_update_interval=100,
            n_step=3,
            total_timesteps=1536,
            steps_per_epoch=384,
            eval_episodes=2,
            eval_envs=2,
        ),
    },
    "rainbow-masked": {
        "kill": {KILL_IN_EPOCH: "2"},
        "class_path": "rl_lightning.DQN",
        "init_args": dict(
            env="tests.toy_envs:RLLightningInvalidAction-v0",
            num_envs=2,
            hidden_sizes=[32],
            learning_starts=128,
            batch_size=32,
            train_freq=4,
            gradient_steps=1,
            target_update_interval=100,
            total_timesteps=1024,
            steps_per_epoch=256,
            eval_episodes=2,
            eval_envs=2,
            **{**RAINBOW, "n_atoms": 11, "v_min": -1.0, "v_max": 10.0},
        ),
    },
    # Dict observations (an image, a flag, a discrete key): each key's storage, window and normalizer saved.
    "dqn-dict": {
        "kill": {KILL_IN_EPOCH: "2"},
        "class_path": "rl_lightning.DQN",
        "init_args": dict(
            env="tests.toy_envs:RLLightningDict-v0",
            num_envs=2,
            hidden_sizes=[32],
            learning_starts=128,
            batch_size=32,
            n_step=3,
            target_update_interval=100,
            total_timesteps=1024,
            steps_per_epoch=256,
            eval_episodes=2,
            eval_envs=2,
        ),
    },
    "ppo-dict": {
        "kill": {KILL_IN_EPOCH: "2"},
        "class_path": "rl_lightning.PPO",
        "init_args": dict(
            env="tests.toy_envs:RLLightningDict-v0",
            num_envs=2,
            hidden_sizes=[16],
            n_steps=16,
            batch_size=16,
            n_epochs=2,
            normalize_observations=True,
            total_timesteps=256,
            steps_per_epoch=64,
            eval_episodes=2,
            eval_envs=2,
        ),
    },
    "ppo": {
        "kill": {KILL_IN_EPOCH: "2"},
        "class_path": "rl_lightning.PPO",
        "init_args": dict(
            env="CartPole-v1",
            num_envs=2,
            hidden_sizes=[16],
            n_steps=32,
            batch_size=16,
            n_epochs=2,
            learning_rate="lin_0.001",
            normalize_observations=True,
            normalize_rewards=True,
            total_timesteps=512,
            steps_per_epoch=128,
            eval_episodes=2,
            eval_envs=2,
        ),
    },
    # Torch CartPole (SAME_STEP autoreset): the env's state_dict and the device episode sums in the checkpoint.
    "ppo_torch": {
        "kill": {KILL_IN_EPOCH: "2"},
        "class_path": "rl_lightning.PPO",
        "init_args": dict(
            env="CartPole-v1",
            vectorization="torch",
            num_envs=4,
            hidden_sizes=[16],
            n_steps=16,
            batch_size=32,
            n_epochs=2,
            normalize_rewards=True,
            total_timesteps=512,
            steps_per_epoch=128,
            eval_episodes=2,
            eval_envs=2,
        ),
    },
    # A recurrent policy (LSTM) on CartPole without velocities: its per-env hidden states are in the checkpoint, and
    # its minibatches are whole chunks (the last padded) shuffled on the saved generator.
    "ppo_lstm": {
        "kill": {KILL_IN_EPOCH: "2"},
        "class_path": "rl_lightning.PPO",
        "init_args": dict(
            env="rl_lightning/CartPoleNoVel-v1",
            recurrent="lstm",
            rnn_hidden_size=8,
            num_envs=2,
            hidden_sizes=[16],
            n_steps=32,
            batch_size=16,
            sequence_length=12,
            n_epochs=2,
            normalize_observations=True,
            total_timesteps=512,
            steps_per_epoch=128,
            eval_episodes=2,
            eval_envs=2,
        ),
    },
    # Atari with sticky actions (ALE/Breakout-v5): the emulators' states and held actions, the preset's frame stacks
    # and life counters, and the frame-stack replay buffer. Episodes and games end within 100 steps (400 frames).
    "dqn-atari": {
        "kill": {KILL_IN_EPOCH: "2"},
        "class_path": "rl_lightning.DQN",
        "init_args": dict(
            env="ALE/Breakout-v5",
            env_kwargs={"frameskip": 1, "max_num_frames_per_episode": 400},
            wrappers=[{"class_path": "rl_lightning.envs.AtariPreset"}],
            num_envs=2,
            hidden_sizes=[],
            buffer_size=1000,
            learning_starts=256,
            batch_size=16,
            train_freq=4,
            target_update_interval=100,
            total_timesteps=1024,
            steps_per_epoch=256,
            eval_episodes=2,
            eval_envs=2,
        ),
    },
    "sac": {
        "kill": {KILL_IN_EPOCH: "2"},
        "class_path": "rl_lightning.SAC",
        "init_args": dict(
            env="Pendulum-v1",
            hidden_sizes=[32],
            learning_starts=64,
            batch_size=32,
            prioritized_replay=True,
            total_timesteps=512,
            steps_per_epoch=128,
            eval_episodes=1,
            eval_envs=1,
        ),
    },
}


def write_config(folder: Path, algorithm: str) -> Path:
    run = RUNS[algorithm]
    config = {
        "model": {"class_path": run["class_path"], "init_args": {**run["init_args"], "seed": 3}},
        "trainer": {
            "accelerator": "cpu",
            "deterministic": True,
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "callbacks": [{"class_path": "tests.algos.test_resume.ResumeProbe"}],
        },
    }
    path = folder / f"{algorithm}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_fit(config: Path, root: Path, *extra: str, **environment: str) -> subprocess.Popen:
    """``rl-lightning fit --config CONFIG`` in a new process with ``root`` as default_root_dir; output in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "rl_lightning.cli", "fit", "--config", str(config)]
    with open(root / f"output-{len(list(root.glob('output-*')))}.txt", "w") as output:
        return subprocess.Popen(
            [*command, f"--trainer.default_root_dir={root}", *extra],
            cwd=root,
            # One thread each: the networks are tiny, and the runs share the cores with each other.
            env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **environment},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def wait_all(processes: dict[str, subprocess.Popen]) -> dict[str, int]:
    return {name: process.wait(timeout=300) for name, process in processes.items()}


def output(root: Path) -> str:
    return "\n".join(path.read_text()[-3000:] for path in sorted(root.glob("output-*.txt")))


def evaluations(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "evaluations.jsonl").read_text().splitlines()]


def last_checkpoint(root: Path) -> dict:
    return torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """For each algorithm: a straight run, and a run killed and then resumed; run concurrently, in two waves."""
    folder = tmp_path_factory.mktemp("runs")
    results: dict[str, dict[str, Any]] = {}
    first_wave = {}
    for algorithm, run in RUNS.items():
        config = write_config(folder, algorithm)
        results[algorithm] = {
            "config": config,
            "straight": folder / algorithm,
            "interrupted": folder / f"{algorithm}-interrupted",
        }
        first_wave[f"{algorithm}/straight"] = start_fit(config, results[algorithm]["straight"])
        first_wave[f"{algorithm}/killed"] = start_fit(config, results[algorithm]["interrupted"], **run["kill"])
    codes = wait_all(first_wave)
    for algorithm, result in results.items():
        interrupted = result["interrupted"]
        result["straight_code"], result["killed_code"] = codes[f"{algorithm}/straight"], codes[f"{algorithm}/killed"]
        if (interrupted / "checkpoints" / "last.ckpt").exists():
            # Copied before the resumed run overwrites them: what the kill left behind.
            result["left_by_kill"] = torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=True)
            result["partial_left"] = (interrupted / "checkpoints" / "last.ckpt.part").exists()
    second_wave = {
        algorithm: start_fit(result["config"], result["interrupted"], "--ckpt_path=last")
        for algorithm, result in results.items()
    }
    for algorithm, code in wait_all(second_wave).items():
        results[algorithm]["resumed_code"] = code
    return results


# ---------------------------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("algorithm", list(RUNS))
def test_a_run_killed_and_resumed_in_a_new_process_ends_bitwise_identical(
    algorithm: str, runs: dict[str, dict[str, Any]]
) -> None:
    run = runs[algorithm]
    straight, interrupted = run["straight"], run["interrupted"]
    assert run["straight_code"] == 0, output(straight)
    assert run["killed_code"] == -signal.SIGKILL, output(interrupted)
    # The kill came in epoch 2 (mid-epoch, or while its checkpoint was written): last.ckpt is epoch 1's.
    assert run["left_by_kill"]["epoch"] == 1
    assert run["resumed_code"] == 0, output(interrupted)

    expected, got = last_checkpoint(straight), last_checkpoint(interrupted)
    assert expected["rl_lightning"]["env_steps"] == RUNS[algorithm]["init_args"]["total_timesteps"]
    if algorithm == "rainbow-masked":  # the masks were saved, and resumed from
        assert got["rl_lightning"]["collector"]["action_masks"].shape == (2, 4)
        saved_masks = got["rl_lightning"]["buffer"]["storage"]["next_action_masks"]
        assert torch.equal(saved_masks, expected["rl_lightning"]["buffer"]["storage"]["next_action_masks"])
        assert not saved_masks.all()
    if algorithm == "ppo_lstm":  # each env's hidden and cell states were saved, and resumed from
        saved_state = got["rl_lightning"]["collector"]["policy_state"]
        assert [tuple(part.shape) for part in saved_state] == [(2, 1, 8), (2, 1, 8)]
        assert all(part.abs().sum() > 0 for part in saved_state)
        for part, expected_part in zip(saved_state, expected["rl_lightning"]["collector"]["policy_state"], strict=True):
            assert torch.equal(part, expected_part)
    if algorithm == "dqn-dict":  # each key stored in its own dtype, and resumed from
        saved = got["rl_lightning"]["buffer"]["storage"]["observations"]
        assert {key: t.dtype for key, t in saved.items()} == {
            "flag": torch.float32, "image": torch.uint8, "target": torch.int64
        }
        for key, tensor in expected["rl_lightning"]["buffer"]["storage"]["next_observations"].items():
            assert torch.equal(got["rl_lightning"]["buffer"]["storage"]["next_observations"][key], tensor), key
    if algorithm == "ppo-dict":  # the flag's statistics, the only float vector key
        assert [name for name in got["state_dict"] if "observation_normalizer" in name] == [
            f"observation_normalizer.normalizers.flag.{stat}" for stat in ("mean", "var", "count")
        ]
    assert got["rl_lightning"]["env_steps"] == expected["rl_lightning"]["env_steps"]
    assert got["state_dict"].keys() == expected["state_dict"].keys()
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(got["state_dict"][name], tensor), name
    for got_optimizer, optimizer in zip(got["optimizer_states"], expected["optimizer_states"], strict=True):
        for key, state in optimizer["state"].items():
            for name, value in state.items():
                assert torch.equal(torch.as_tensor(got_optimizer["state"][key][name]), torch.as_tensor(value))

    # The killed process logged the evaluations up to the kill, the resumed one those from epoch 2 on (DQN's
    # kill came after epoch 2's evaluation, which the resumed run logs again): each as the straight run did.
    straight_log = {record["epoch"]: record for record in evaluations(straight)}
    interrupted_log = evaluations(interrupted)
    assert [record["epoch"] for record in interrupted_log] == ([0, 1, 2, 2, 3] if algorithm == "dqn" else [0, 1, 2, 3])
    for record in interrupted_log:
        assert record == straight_log[record["epoch"]]
    # A run started over would end the same (the same seed): the resumed one did restore the checkpoint.
    assert "Restoring states from the checkpoint path at" in (interrupted / "output-1.txt").read_text()


def test_a_kill_while_a_checkpoint_is_written_leaves_the_previous_one(runs: dict[str, dict[str, Any]]) -> None:
    run = runs["dqn"]  # killed while torch.save was writing epoch 2's checkpoint
    assert run["partial_left"]  # the file being written when the kill came
    assert run["left_by_kill"]["epoch"] == 1  # last.ckpt untouched, whole, loadable
    assert not (run["interrupted"] / "checkpoints" / "last.ckpt.part").exists()  # the resumed run's saves replaced it


# ---------------------------------------------------------------------------------------------- defaults
SMALL = dict(
    hidden_sizes=(16,),
    learning_starts=128,
    batch_size=16,
    train_freq=4,
    gradient_steps=1,
    total_timesteps=768,
    steps_per_epoch=256,
    eval_episodes=1,
    eval_envs=1,
)


def trainer(root: Path, **overrides: Any) -> L.Trainer:
    """A quiet Trainer that keeps Lightning's default checkpointing, writing under ``root``."""
    return quiet_trainer(**{"default_root_dir": root, "enable_checkpointing": True, **overrides})


def test_by_default_last_ckpt_is_written_atomically_every_epoch(tmp_path: Path) -> None:
    last = tmp_path / "checkpoints" / "last.ckpt"
    epochs_saved = []

    class Watch(Callback):
        def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            if trainer.current_epoch > 0:
                epochs_saved.append(torch.load(last, weights_only=True)["epoch"])

    run = trainer(tmp_path, callbacks=[Watch()])
    run.fit(DQN(**SMALL))
    assert epochs_saved == [0, 1]
    assert [path.name for path in last.parent.iterdir()] == ["last.ckpt"]  # one file, written once per epoch
    assert torch.load(last, weights_only=True)["epoch"] == 2
    assert isinstance(run.strategy.checkpoint_io, AtomicCheckpointIO)


def test_checkpoint_callbacks_of_ones_own_are_kept(tmp_path: Path) -> None:
    default = trainer(tmp_path)
    use_resume_checkpoints(default, tmp_path / "checkpoints")
    (callback,) = default.checkpoint_callbacks
    assert (callback.filename, callback.dirpath) == ("last", str(tmp_path / "checkpoints"))
    own = ModelCheckpoint(monitor="val/return_mean", mode="max")
    with_own = trainer(tmp_path, callbacks=[own])
    use_resume_checkpoints(with_own, tmp_path / "checkpoints")
    assert with_own.checkpoint_callbacks == [own] and own.dirpath == str(tmp_path / "checkpoints")
    without = trainer(tmp_path, enable_checkpointing=False)
    use_resume_checkpoints(without, tmp_path / "checkpoints")
    assert without.checkpoint_callbacks == []


def test_global_generators_round_trip() -> None:
    state = global_rng_state(torch.device("cpu"))
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    set_global_rng_state(state, torch.device("cpu"))
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


# ---------------------------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def dqn_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dqn")
    trainer(root).fit(DQN(**SMALL))
    return root / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize(
    ("other", "message"),
    [
        (
            lambda: DQN("Acrobot-v1", **SMALL),
            r"environment: CartPole-v1 in the checkpoint, Acrobot-v1 here; observation space: Box\(.*\) in the "
            r"checkpoint, Box\(.*\(6,\), float32\) here; action space: Discrete\(2\) in the checkpoint, Discrete\(3\)",
        ),
        (lambda: DQN(num_envs=2, **SMALL), "num_envs: 1 in the checkpoint, 2 here"),
        (
            lambda: PPO(n_steps=64, batch_size=16, total_timesteps=768),
            "algorithm: rl_lightning.algos.dqn.DQN in the checkpoint, rl_lightning.algos.ppo.PPO here",
        ),
    ],
    ids=["other-env", "other-num_envs", "other-algorithm"],
)
def test_resuming_another_runs_checkpoint_names_both_sides(dqn_checkpoint: Path, tmp_path: Path, other, message):
    with pytest.raises(ConfigurationError, match=f"cannot resume from checkpoint {dqn_checkpoint}: .*{message}"):
        trainer(tmp_path).fit(other(), ckpt_path=dqn_checkpoint)


def test_the_cli_refuses_to_resume_another_runs_checkpoint(dqn_checkpoint: Path, tmp_path: Path, capsys, monkeypatch):
    # experiments/dqn_cartpole.yaml keeps last.ckpt in runs/dqn_cartpole/checkpoints: put a CartPole run's there.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "dqn_cartpole" / "checkpoints").mkdir(parents=True)
    shutil.copy(dqn_checkpoint, tmp_path / "runs" / "dqn_cartpole" / "checkpoints" / "last.ckpt")
    config = str(REPO / "experiments" / "dqn_cartpole.yaml")
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", config, "--model.init_args.env=Acrobot-v1", "--ckpt_path=last"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "environment: CartPole-v1 in the checkpoint, Acrobot-v1 here" in err and "Traceback" not in err


def test_a_truncated_checkpoint_is_refused_with_a_clear_error(
    dqn_checkpoint: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(dqn_checkpoint.read_bytes()[: dqn_checkpoint.stat().st_size // 2])
    with pytest.raises(ConfigurationError, match=r"truncated.ckpt is not a readable checkpoint \(.*may be truncated"):
        trainer(tmp_path).fit(DQN(**SMALL), ckpt_path=truncated)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(REPO / "experiments" / "dqn_cartpole.yaml"), f"--ckpt_path={truncated}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "is not a readable checkpoint" in err and "Traceback" not in err


def test_checkpoints_holding_python_objects_load_only_when_trusted(tmp_path: Path, capsys) -> None:
    # An env given as a factory: the hyperparameters in the checkpoint hold that function.
    def counting() -> DQN:
        return DQN(counting_env, env_kwargs={"terminate_at": 5}, **{**SMALL, "total_timesteps": 512})

    trainer(tmp_path, max_epochs=1).fit(counting())
    last = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigurationError, match=r"holds Python objects such as tests.toy_envs.counting_env"):
        trainer(tmp_path).fit(counting(), ckpt_path=last)
    trainer(tmp_path).fit(counting(), ckpt_path=last, weights_only=False)

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--ckpt_path", str(last), "--episodes", "1"])
    assert exit_.value.code == 2 and "--weights_only false" in capsys.readouterr().err
    main(["evaluate", "--ckpt_path", str(last), "--episodes", "1", "--weights_only", "false"])
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["episodes"] == 1


# ---------------------------------------------------------------------------------------------- not exact, but clean
def double_reward(env: gym.Env) -> gym.Env:
    return gym.wrappers.TransformReward(env, lambda reward: 2 * reward)  # a lambda: the env cannot be pickled


@pytest.mark.parametrize(
    ("overrides", "warning"),
    [
        ({"wrappers": [double_reward], "n_step": 3}, "holds no state of the training envs .*lambda.* new episodes"),
        ({"save_buffer": False}, "holds no replay buffer"),
    ],
    ids=["unpicklable-env", "no-buffer"],
)
def test_what_cannot_be_resumed_exactly_resumes_cleanly_with_a_warning(tmp_path: Path, overrides, warning) -> None:
    trainer(tmp_path, max_epochs=1).fit(DQN(**{**SMALL, **overrides}))
    resumed = DQN(**{**SMALL, **overrides})
    with pytest.warns(UserWarning, match=warning):
        # weights_only=False: the wrapper function is in the hyperparameters.
        trainer(tmp_path).fit(resumed, ckpt_path=tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed.env_steps == SMALL["total_timesteps"]
