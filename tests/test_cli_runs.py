"""A run's life through the real ``rl-lightning fit``: one run per folder, resuming with the run's own
hyperparameters, a finished run, checkpoints of other runs, the one seed, the thread default, the summary line.

Each fit plays at most 1,536 CartPole env steps with a 32-unit network (a few seconds each)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

from rl_lightning.cli import main
from rl_lightning.errors import ConfigurationError
from rl_lightning.runs import refuse_an_unwritable_folder

CONFIG = str(Path(__file__).resolve().parents[1] / "experiments" / "dqn_cartpole.yaml")
TINY = [
    "--model.init_args.total_timesteps=1024",
    "--model.init_args.steps_per_epoch=512",
    "--model.init_args.learning_starts=256",
    "--model.init_args.train_freq=4",
    "--model.init_args.gradient_steps=1",
    "--model.init_args.hidden_sizes=[32]",
    "--model.init_args.eval_episodes=2",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]
RUN = Path("runs") / "dqn_cartpole"


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO)


def run(*argv: str) -> int:
    try:
        main(list(argv))
    except SystemExit as exit_:
        return exit_.code or 0
    return 0


def files(root: Path) -> dict[str, int]:
    """Every file under ``root`` with its modification time, to see what a command wrote."""
    return {str(path.relative_to(root)): path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()}


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Our start-up and summary lines, and the finished-run line, logged since the last call."""
    found = [message for message in caplog.messages if message.startswith("rl-lightning: ")]
    caplog.clear()
    return found


def test_one_run_per_folder_and_a_resume_keeps_the_runs_hyperparameters(tmp_path, caplog, capsys):
    started = ["--model.init_args.learning_rate=1e-3", "--model.init_args.seed=3"]
    assert run("fit", "--config", CONFIG, *TINY, *started) == 0
    summary = lines(caplog)[-1]
    assert summary.startswith("rl-lightning: trained 1,024 of 1,024 env steps in ")
    assert "; final evaluation " in summary
    assert summary.endswith(f"checkpoints in {RUN / 'checkpoints'}, logs in {RUN / 'lightning_logs' / 'version_0'}.")
    first = files(tmp_path)

    # The same command again would put last-v1.ckpt beside the first run's last.ckpt: refused, nothing written.
    assert run("fit", "--config", CONFIG, *TINY) == 2
    assert f"{RUN} already holds a run" in capsys.readouterr().err
    assert files(tmp_path) == first

    # Resumed without repeating the overrides, and trained longer: learning_rate and seed stay the run's own.
    assert run("fit", "--config", CONFIG, *TINY, "--model.init_args.total_timesteps=1536", "--ckpt_path=last") == 0
    startup = lines(caplog)
    assert f"rl-lightning: resuming {RUN / 'checkpoints' / 'last.ckpt'} at 1,024 env steps" in startup[1]
    assert "total_timesteps 1024 -> 1536 (command line)" in startup[1]
    assert "the run keeps learning_rate=0.001 (config: 0.0023), seed=3 (config: 0)" in startup[2]
    last = torch.load(tmp_path / RUN / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["rl_lightning"]["env_steps"] == 1536
    assert (last["hyper_parameters"]["learning_rate"], last["hyper_parameters"]["seed"]) == (1e-3, 3)
    assert last["hyper_parameters"]["total_timesteps"] == 1536
    checkpoints = sorted(path.name for path in (tmp_path / RUN / "checkpoints").iterdir())
    assert checkpoints == ["best-epoch=0.ckpt", "last.ckpt"]
    resumed = files(tmp_path)

    # Resuming the finished run: a line, exit 0, and no evaluation, checkpoint or log version.
    assert run("fit", "--config", CONFIG, *TINY, "--model.init_args.total_timesteps=1536", "--ckpt_path=last") == 0
    assert lines(caplog) == [
        f"rl-lightning: the run in {RUN} has finished: 1,536 of 1,536 env steps "
        f"({RUN / 'checkpoints' / 'last.ckpt'}). Nothing to do; to train it longer, pass "
        f"--model.init_args.total_timesteps with more steps."
    ]
    assert files(tmp_path) == resumed

    # A hyperparameter the checkpoint's state was built with cannot change on resume: refused with why.
    longer = ["--model.init_args.total_timesteps=2048", "--model.init_args.learning_rate=5e-4", "--ckpt_path=last"]
    assert run("fit", "--config", CONFIG, *TINY, *longer) == 2
    err = capsys.readouterr().err
    assert "--model.init_args.learning_rate 0.0005 cannot change a resumed run, started with learning_rate=0.001" in err
    assert files(tmp_path) == resumed


def test_a_checkpoint_of_another_algorithm_and_env_is_refused_naming_both_sides(tmp_path, capsys):
    assert run("fit", "--config", CONFIG, *TINY, "--model.init_args.total_timesteps=512") == 0
    checkpoint = torch.load(tmp_path / RUN / "checkpoints" / "last.ckpt", weights_only=True)
    # What a PPO run on Acrobot writes, as far as the identity goes.
    checkpoint["rl_lightning"]["algorithm"] = "rl_lightning.algos.ppo.PPO"
    checkpoint["hyper_parameters"].update(_class_path="rl_lightning.PPO", env="Acrobot-v1")
    torch.save(checkpoint, tmp_path / "ppo_acrobot.ckpt")
    before = files(tmp_path)
    assert run("fit", "--config", CONFIG, *TINY, "--ckpt_path=ppo_acrobot.ckpt") == 2
    err = capsys.readouterr().err
    assert (
        "cannot resume from checkpoint ppo_acrobot.ckpt: it was written by another run (algorithm: "
        "rl_lightning.algos.ppo.PPO in the checkpoint, rl_lightning.algos.dqn.DQN here; environment: Acrobot-v1 in "
        "the checkpoint, CartPole-v1 here)"
    ) in err
    assert files(tmp_path) == before
    assert run("fit", "--config", CONFIG, *TINY, "--ckpt_path=missing.ckpt") == 2
    assert "checkpoint missing.ckpt: no such file." in capsys.readouterr().err
    assert files(tmp_path) == before


def test_the_models_seed_is_the_one_seed_and_threads_default_to_one(tmp_path, caplog, capsys, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)  # what torch picks on a 2-core machine
    # --ckpt_path last where there is no run yet starts one: the same command starts and resumes a batch job.
    short = [*TINY, "--model.init_args.total_timesteps=512", "--model.init_args.seed=3"]
    assert run("fit", "--config", CONFIG, *short, "--ckpt_path=last") == 0
    assert "Seed set to 3" in caplog.messages
    started = lines(caplog)
    assert started[0] == f"rl-lightning: no checkpoint in {RUN / 'checkpoints'} to resume: starting a new run."
    assert "1 torch thread(s) per process" in started[1]
    assert torch.get_num_threads() == 1

    # Validation (a few evaluation episodes) sets the threads as fit does; two threads are slow to train here.
    assert run("validate", "--config", CONFIG, *short, "--threads=2") == 0
    assert torch.get_num_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(3)
    assert run("validate", "--config", CONFIG, *short) == 0
    assert torch.get_num_threads() == 3  # the user's OMP_NUM_THREADS is left alone

    assert run("fit", "--config", CONFIG, *short, "--seed_everything=0", "--trainer.default_root_dir=s") == 2
    assert "seed_everything=0 differs from the model's seed=3" in capsys.readouterr().err


def test_help_lists_the_commands_an_rl_user_has(capsys):
    assert run("--help") == 0
    printed = capsys.readouterr().out
    assert printed.startswith("usage: rl-lightning [-h] {fit,validate,evaluate,report,tune} ...")  # no test/predict
    assert "evaluate (play a trained agent from a checkpoint" in " ".join(printed.split())
    assert "tune (hyperparameter search with Optuna" in " ".join(printed.split())
    assert run("fit", "--help") == 0
    assert capsys.readouterr().out.startswith("usage: rl-lightning [options] fit [-c CONFIG]")  # Lightning's own


def test_a_read_only_run_folder_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    """Root (as here, and on many CI machines) writes into read-only folders: the folder's permission, which
    ``os.access`` reads, is simulated; ``tests/faults`` runs the real case where the user is not root."""
    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != shared)
    with pytest.raises(ConfigurationError, match=r"^the run folder .*shared/run cannot be created: .*shared is "
                       r"read-only for this user\. Choose another folder"):
        refuse_an_unwritable_folder(shared / "run")
    with pytest.raises(ConfigurationError, match=r"shared cannot be written: .*shared is read-only"):
        refuse_an_unwritable_folder(shared)
    refuse_an_unwritable_folder(tmp_path / "elsewhere" / "run")  # a writable parent: nothing to say
