"""``rl-lightning fit --seeds``: one ``fit`` process per seed, in parallel, failures reported, finished seeds skipped.

The runs are real: the session fixture ``seeded_runs`` (``tests/seeded_runs.py``) launches PPO on CartPole for seeds
0 and 1, two at a time, then resumes them with ``--ckpt_path last`` beside a seed whose checkpoint is corrupt.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from pathlib import Path

import pytest
import torch

from rl_lightning.errors import ConfigurationError
from rl_lightning.seeds import _child_environment, parse_seeds, run_root, split_launcher_options
from tests.seeded_runs import FIRST_TOTAL, PPO_CONFIG, RESUMED_TOTAL, fit_seeds, run_cli


def evaluations(version: Path) -> list[float]:
    """The env steps of the evaluations in a CSV log's version folder."""
    with open(version / "metrics.csv", newline="") as file:
        return [float(row["env_steps"]) for row in csv.DictReader(file) if row["val/return_mean"]]


def checkpoint_steps(folder: Path) -> int:
    return torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["rl_lightning"]["env_steps"]


def test_two_seeds_run_in_parallel_each_into_its_own_folder(seeded_runs):
    first = seeded_runs.first
    assert first.status == 0, first.out + first.err
    lines = first.out.splitlines()
    events = [match.group(1) for line in lines if (match := re.match(r"seed \d: (started|finished)", line))]
    # --parallel 2: both seeds started before either finished.
    assert events == ["started", "started", "finished", "finished"]
    assert lines[-1].startswith("all 2 seeds finished")
    for seed in (0, 1):
        folder = seeded_runs.root / f"seed_{seed}"
        assert evaluations(folder / "lightning_logs" / "version_0") == [256, 512]
        assert seeded_runs.first_checkpoints[seed] == FIRST_TOTAL
        assert len(list((folder / "checkpoints").glob("best-epoch=*.ckpt"))) == 1
        log = (folder / "fit.log").read_text()
        assert f"--model.init_args.seed {seed} --seed_everything {seed}" in log.splitlines()[0]
        assert f"epoch 1: {FIRST_TOTAL}/{FIRST_TOTAL} env steps" in log
        hparams = (folder / "lightning_logs" / "version_0" / "hparams.yaml").read_text()
        assert f"\nseed: {seed}\n" in hparams


def test_a_failed_seed_is_reported_while_the_others_resume(seeded_runs):
    resumed = seeded_runs.resumed
    assert resumed.status == 1
    out = resumed.out
    assert "seed 2: FAILED (exit status 2)" in out
    # The end of its fit.log says why.
    assert re.search(r"\n    \| rl-lightning: error: checkpoint \S+seed_2/checkpoints/last.ckpt is not a readable", out)
    assert "seed 0: finished" in out and "seed 1: finished" in out
    assert "1 of 3 seeds failed (seed 2)" in out
    for seed in (0, 1):
        folder = seeded_runs.root / f"seed_{seed}"
        assert checkpoint_steps(folder) == RESUMED_TOTAL
        # The resumed run went on from the checkpoint: its one new evaluation is at 768.
        assert evaluations(folder / "lightning_logs" / "version_1") == [RESUMED_TOTAL]


def test_resuming_skips_the_seeds_that_have_finished(seeded_runs):
    result = fit_seeds(seeded_runs.root, RESUMED_TOTAL, "--seeds", "0,1", "--ckpt_path", "last")
    assert result.status == 0, result.out + result.err
    for seed in (0, 1):
        assert f"seed {seed}: already finished ({RESUMED_TOTAL} of {RESUMED_TOTAL} env steps" in result.out
        assert not (seeded_runs.root / f"seed_{seed}" / "lightning_logs" / "version_2").exists()
    assert "started" not in result.out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--seeds", "3-1"], "the range 3-1 is empty"),
        (["--seeds", "x"], "'x' is not a seed or a range"),
        (["--seeds", ""], "'' is not a seed or a range"),
        (["--seeds", "0,2,0"], "names seed 0 twice"),
        (["--seeds"], "--seeds needs a value"),
        (["--seeds", "0-1", "--parallel", "0"], "--parallel 0: write how many seeds run at a time"),
        (["--seeds", "0-1", "--model.init_args.seed", "3"], "leave out --model.init_args.seed"),
        (["--seeds", "0-1", "--ckpt_path", "x.ckpt"], "only --ckpt_path last is accepted"),
        (["--seeds", "0-1", "--slurm_partition", "gpu"], "--slurm_partition applies to --launcher slurm only"),
        (["--seeds", "0-1", "--launcher", "pbs"], "--launcher pbs: choose local (the default) or slurm"),
        (["--seeds", "0-1", "--trainer.callbacks.dirpath=ckpts"], "writes to dirpath ckpts, one folder for every seed"),
    ],
)
def test_bad_seed_options_exit_2_with_one_message_and_write_nothing(tmp_path, monkeypatch, options, message):
    monkeypatch.chdir(tmp_path)
    result = run_cli("fit", "--config", PPO_CONFIG, *options)
    assert result.status == 2
    assert message in result.err
    assert "Traceback" not in result.err
    assert list(tmp_path.iterdir()) == []


def test_slurm_without_submitit_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "submitit", None)  # an import of it now fails as if it were not installed
    result = run_cli("fit", "--config", PPO_CONFIG, "--seeds", "0-1", "--launcher", "slurm", "--slurm_time", "60")
    assert result.status == 2
    assert 'pip install "rl-lightning[submitit]"' in result.err
    assert list(tmp_path.iterdir()) == []


def test_slurm_needs_a_time_limit_and_sbatch(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch on it
    result = run_cli("fit", "--config", PPO_CONFIG, "--seeds", "0-1", "--launcher", "slurm")
    assert result.status == 2
    assert "--launcher slurm needs --slurm_time MINUTES" in result.err
    result = run_cli("fit", "--config", PPO_CONFIG, "--seeds", "0-1", "--launcher", "slurm", "--slurm_time", "60")
    assert result.status == 2
    assert "there is no sbatch or srun here" in result.err


def test_slurm_submits_one_array_job_with_the_options_given(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.chdir(tmp_path)
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("sbatch", "srun"):  # sbatch answers as SLURM does; nothing is run
        (fake / name).write_text('#!/bin/sh\necho "Submitted batch job 4242"\n')
        (fake / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    options = ["--launcher", "slurm", "--slurm_time", "60", "--slurm_partition", "gpu", "--slurm_mem", "16GB"]
    result = run_cli("fit", "--config", PPO_CONFIG, "--seeds", "0-2", "--parallel", "2", *options)
    assert result.status == 0, result.err
    for seed in range(3):
        assert f"seed {seed}: submitted as SLURM job 4242_{seed}, output in runs/ppo_cartpole/seed_{seed}/fit.log" in (
            result.out
        )
    script = (tmp_path / "runs" / "ppo_cartpole" / "slurm" / "4242_submission.sh").read_text()
    for line in ("--array=0-2%2", "--time=60", "--partition=gpu", "--mem=16GB", "--job-name=rl-ppo_cartpole"):
        assert f"#SBATCH {line}\n" in script
    result = run_cli("fit", "--config", PPO_CONFIG, "--seeds", "0-2", *options, "--slurm_no_such", "1")
    assert result.status == 2
    assert "Unknown argument 'no_such' for executor 'slurm'" in result.err


def test_seed_lists_and_ranges():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("2-3, 10") == [2, 3, 10]
    with pytest.raises(ConfigurationError, match="empty"):
        parse_seeds("5-4")


def test_the_launcher_options_are_taken_out_and_the_rest_kept_in_order():
    options, rest = split_launcher_options(
        [
            "fit",
            "--seeds=0-2",
            "--config",
            "a.yaml",
            "--parallel",
            "3",
            "--slurm_time",
            "60",
            "--x=1",
            "--seed_everything",
        ]
    )
    assert options == {"seeds": "0-2", "parallel": "3", "slurm_time": "60"}
    assert rest == ["fit", "--config", "a.yaml", "--x=1", "--seed_everything"]


def test_the_seeds_go_under_the_root_of_the_command_line_else_the_config_else_runs_config_name(tmp_path):
    assert run_root(["fit", "--config", PPO_CONFIG]) == Path("runs/ppo_cartpole")  # the config's default_root_dir
    bare = tmp_path / "bare.yaml"
    bare.write_text("model:\n  class_path: rl_lightning.PPO\n")
    assert run_root(["fit", "--config", str(bare)]) == Path("runs/bare")
    assert run_root(["fit", "--config", PPO_CONFIG, "--trainer.default_root_dir=out/x"]) == Path("out/x")
    with pytest.raises(ConfigurationError, match="--seeds needs a --config"):
        run_root(["fit"])


def test_each_seed_runs_on_one_thread_unless_told_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    environment = _child_environment(tmp_path / "seed_0")
    assert environment["OMP_NUM_THREADS"] == "1"
    assert environment["WANDB_DIR"] == str(tmp_path / "seed_0")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert _child_environment(tmp_path)["OMP_NUM_THREADS"] == "4"


def test_help_names_the_launcher_options():
    result = run_cli("fit", "--config", PPO_CONFIG, "--seeds", "0-1", "--help")
    assert result.status == 0
    assert "--parallel PARALLEL" in result.out and "--slurm_<name> VALUE" in result.out


def test_a_config_whose_checkpoints_share_one_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    last = "        filename: last\n"
    (tmp_path / "shared.yaml").write_text(Path(PPO_CONFIG).read_text().replace(last, f"{last}        dirpath: ck\n"))
    result = run_cli("fit", "--config", "shared.yaml", "--seeds", "0-1")
    assert result.status == 2
    assert "writes to dirpath ck, one folder for every seed" in result.err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["shared.yaml"]
