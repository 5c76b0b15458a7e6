"""``rl-lightning tune``: an Optuna study whose trials are seeds of ``rl-lightning fit``, pruned, resumed, reported.

The study is real and tiny: PPO for 512 env steps (two evaluations) per seed, two seeds per trial. Its search space
includes the env, CartPole-v1 or Acrobot-v1, and its pruner is Optuna's ``ThresholdPruner(lower=0)``: an
evaluation on Acrobot is always negative (-1 per step until the goal) and one on CartPole always positive, so every
Acrobot trial is pruned at its first evaluation and every CartPole trial completes, whatever the networks learn.
The sampler (RandomSampler, seed 3) gives CartPole, Acrobot, Acrobot; resumed, it is seeded with 3 + 3 trials held,
and gives Acrobot.
"""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from rl_lightning.report import read_hparams
from rl_lightning.tune import Tuner, load_search
from tests.seeded_runs import PPO_CONFIG, TINY_PPO, CliResult, run_cli

optuna = pytest.importorskip("optuna")

SEARCH = {
    "params": {
        "learning_rate": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
        "env": {"type": "categorical", "choices": ["CartPole-v1", "Acrobot-v1"]},
        "hidden_sizes": {"type": "categorical", "choices": [[16], [16, 16]]},
    },
    "sampler": {"class_path": "optuna.samplers.RandomSampler", "init_args": {"seed": 3}},
    "pruner": {"class_path": "optuna.pruners.ThresholdPruner", "init_args": {"lower": 0.0}},
}
EXPERIMENTS = Path(PPO_CONFIG).parent
TOTAL = 512
FIT_OPTIONS = [option for option in TINY_PPO if "hidden_sizes" not in option] + [
    f"--model.init_args.total_timesteps={TOTAL}"
]


@dataclass(frozen=True)
class Study:
    root: Path
    storage: str
    first: CliResult
    """``--trials 3``."""
    first_trials: list
    """The study's trials after the first command, as Optuna stored them."""
    resumed: CliResult
    """The same command with ``--trials 4``."""
    again: CliResult
    """``--trials 4`` once more: nothing to do."""


def tune(search: Path, root: Path, *options: str) -> CliResult:
    return run_cli(
        "tune", "--config", PPO_CONFIG, "--search", str(search), "--seeds", "0-1", *FIT_OPTIONS,
        "--trainer.default_root_dir", str(root), *options,
    )  # fmt: skip


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    folder = tmp_path_factory.mktemp("tune")
    search = folder / "search.yaml"
    search.write_text(yaml.safe_dump(SEARCH, sort_keys=False))  # the order of the params is the order of sampling
    root = folder / "root"
    storage = f"sqlite:///{root / 'study.db'}"
    first = tune(search, root, "--trials", "3")
    first_trials = optuna.load_study(study_name="search", storage=storage).trials
    resumed = tune(search, root, "--trials", "4")
    again = tune(search, root, "--trials", "4")
    return Study(root, storage, first, first_trials, resumed, again)


def final_evaluations(run: Path) -> dict[int, float]:
    """``val/return_mean`` by env step, as the run's CSV log has it."""
    with open(run / "lightning_logs" / "version_0" / "metrics.csv", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["val/return_mean"]]
    return {int(float(row["env_steps"])): float(row["val/return_mean"]) for row in rows}


def test_every_trial_is_pruned_or_completes_as_its_evaluations_say(study):
    assert study.first.status == 0, study.first.out + study.first.err
    trials = study.first_trials
    assert [trial.params["env"] for trial in trials] == ["CartPole-v1", "Acrobot-v1", "Acrobot-v1"]
    for trial in trials:
        folder = study.root / f"trial_{trial.number}"
        if trial.params["env"] == "Acrobot-v1":
            # Pruned at its first evaluation (step 256 of seed 0): the run stopped there and seed 1 never ran.
            assert trial.state == optuna.trial.TrialState.PRUNED
            assert list(trial.intermediate_values) == [256]
            assert trial.user_attrs["pruned"] == {"seed": 0, "env_steps": 256}
            assert list(final_evaluations(folder / "seed_0")) == [256]
            assert not (folder / "seed_1").exists()
            assert f"trial {trial.number}: pruned at seed 0, 256 env steps" in study.first.out
            continue
        assert trial.state == optuna.trial.TrialState.COMPLETE
        # Seed 0's evaluations at env steps 256 and 512, seed 1's after them: 512 + 256 and 512 + 512.
        seed_0, seed_1 = final_evaluations(folder / "seed_0"), final_evaluations(folder / "seed_1")
        assert trial.intermediate_values == {
            256: pytest.approx(seed_0[256]), 512: pytest.approx(seed_0[512]),
            768: pytest.approx(seed_1[256]), 1024: pytest.approx(seed_1[512]),
        }  # fmt: skip
        # The objective: the mean of the two seeds' final evaluations, as their logs have them.
        assert trial.value == pytest.approx((seed_0[TOTAL] + seed_1[TOTAL]) / 2)
        hparams = read_hparams(folder / "seed_1" / "lightning_logs" / "version_0" / "hparams.yaml")
        assert hparams["optuna_trial"] == trial.number and hparams["optuna_study"] == "search"
        assert hparams["seed"] == 1
        assert hparams["learning_rate"] == pytest.approx(trial.params["learning_rate"])
        assert hparams["hidden_sizes"] == yaml.safe_load(trial.params["hidden_sizes"])


def test_the_best_trial_is_written_as_a_config_that_fit_accepts(study, monkeypatch):
    best = next(trial for trial in study.first_trials if trial.state == optuna.trial.TrialState.COMPLETE)
    path = study.root / "best.yaml"
    config = yaml.safe_load(path.read_text())
    base = yaml.safe_load(Path(PPO_CONFIG).read_text())
    assert config["model"]["init_args"] == {
        **base["model"]["init_args"],
        "learning_rate": best.params["learning_rate"],
        "env": "CartPole-v1",
        "hidden_sizes": yaml.safe_load(best.params["hidden_sizes"]),
    }
    assert config["trainer"]["callbacks"] == base["trainer"]["callbacks"]
    assert config["trainer"]["default_root_dir"] == str(study.root / "best")
    assert f"trial {best.number}, mean final val/return_mean {best.value:.1f}" in path.read_text()
    monkeypatch.setattr(sys, "argv", ["rl-lightning"])  # Lightning's CLI compares its args with the command line
    printed = run_cli("fit", "--config", str(path), "--print_config")
    assert printed.status == 0, printed.err
    assert yaml.safe_load(printed.out)["model"]["init_args"]["learning_rate"] == best.params["learning_rate"]


def test_the_same_command_resumes_the_study_up_to_the_trial_count(study):
    assert study.resumed.status == 0, study.resumed.out + study.resumed.err
    assert "3 of 4 trials done" in study.resumed.out
    trials = optuna.load_study(study_name="search", storage=study.storage).trials
    assert [trial.number for trial in trials] == [0, 1, 2, 3]
    assert [trial.params for trial in trials[:3]] == [trial.params for trial in study.first_trials]
    # Not trial 0's values again: the sampler's seed moved on by the 3 trials held.
    assert trials[3].params != trials[0].params and trials[3].params["env"] == "Acrobot-v1"
    assert trials[3].state == optuna.trial.TrialState.PRUNED and (study.root / "trial_3" / "seed_0").is_dir()
    assert study.again.status == 0
    assert "holds 4 complete or pruned trials of 4: nothing to do" in study.again.out
    assert not (study.root / "trial_4").exists()


def test_report_reads_the_trial_runs(study, tmp_path):
    result = run_cli("report", str(study.root), "--out", str(tmp_path), "--reps", "100")
    assert result.status == 0, result.err
    # One group per trial (their hyperparameters differ), on each env.
    assert "CartPole-v1" in result.out and "Acrobot-v1" in result.out
    for number in range(4):
        assert f"optuna_trial={number}" in result.out
    assert (tmp_path / "curves.png").is_file()


def test_a_trial_of_a_wandb_config_runs_in_the_study_group():
    tuner = Tuner(["fit", "--config", "x.yaml"], None, {}, [0], Path("runs"), "sqlite:///s.db", "study", Path("x.yaml"),
                  wandb=True, command="")  # fmt: skip
    arguments = tuner.trial_arguments(7, {"learning_rate": 0.01, "hidden_sizes": [64, 64]})
    assert "--model.init_args.learning_rate=0.01" in arguments
    assert "--model.init_args.hidden_sizes=[64, 64]" in arguments
    assert "--trainer.logger.init_args.group=study" in arguments
    assert arguments[-2:] == ["--trainer.default_root_dir", str(Path("runs") / "trial_7")]


@pytest.mark.parametrize("search", sorted(EXPERIMENTS.glob("search/*.yaml")), ids=lambda path: path.name)
def test_the_search_spaces_of_the_experiments_fit_their_configs(search):
    config = yaml.safe_load((EXPERIMENTS / search.name).read_text())
    assert load_search(search, config["model"]["class_path"]).parameters


BAD_PARAMS = [
    ({"learning_rte": {"type": "float", "low": 0.1, "high": 1.0}}, "learning_rte is not an argument of "
     "rl_lightning.PPO; did you mean learning_rate?"),
    ({"gamma": {"type": "float", "low": 0.999, "high": 0.9}}, "gamma has low 0.999 > high 0.9"),
    ({"learning_rate": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "so low must be > 0, not 0.0"),
    ({"n_epochs": {"type": "uniform", "low": 1, "high": 4}}, "n_epochs has type 'uniform'; the types are float, int, "
     "categorical"),
    ({"seed": {"type": "int", "low": 0, "high": 9}}, "seed cannot be searched"),
]  # fmt: skip


@pytest.mark.parametrize(("params", "message"), BAD_PARAMS)
def test_a_bad_search_space_exits_2_with_one_message_and_writes_nothing(tmp_path, monkeypatch, params, message):
    search = tmp_path / "search.yaml"
    search.write_text(yaml.safe_dump({"params": params}))
    monkeypatch.chdir(tmp_path)
    result = run_cli("tune", "--config", PPO_CONFIG, "--search", str(search))
    assert result.status == 2, result.out + result.err
    assert message in result.err
    assert "Traceback" not in result.err
    assert list(tmp_path.iterdir()) == [search]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--storage", "sqlite:///missing/folder/study.db"],
            "--storage sqlite:///missing/folder/study.db: cannot open",
        ),
        (["--storage", "nosuchdb://x"], "--storage nosuchdb://x: cannot open it"),
        (["--seeds", "3-1"], "the range 3-1 is empty"),
        (["--model.init_args.learning_rate", "0.1"], "learning_rate is searched, so the trials set it"),
        (["--ckpt_path", "last"], "leave out --ckpt_path"),
    ],
)
def test_bad_tune_options_exit_2_with_one_message_and_write_nothing(tmp_path, monkeypatch, options, message):
    search = tmp_path / "search.yaml"
    search.write_text(yaml.safe_dump({"params": {"learning_rate": SEARCH["params"]["learning_rate"]}}))
    monkeypatch.chdir(tmp_path)
    result = run_cli("tune", "--config", PPO_CONFIG, "--search", str(search), *options)
    assert result.status == 2, result.out + result.err
    assert message in result.err
    assert "Traceback" not in result.err
    assert list(tmp_path.iterdir()) == [search]


def test_a_study_refuses_a_search_space_it_cannot_go_on_with(tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="search", storage=storage)
    study.enqueue_trial({"n_epochs": 2})
    study.optimize(lambda trial: trial.suggest_categorical("n_epochs", [2, 4]), n_trials=1)
    search = tmp_path / "search.yaml"
    search.write_text(yaml.safe_dump({"params": {"n_epochs": {"type": "categorical", "choices": [2, 8]}}}))
    monkeypatch.chdir(tmp_path)
    result = run_cli("tune", "--config", PPO_CONFIG, "--search", str(search), "--storage", storage)
    assert result.status == 2, result.out + result.err
    assert "study search sampled n_epochs from CategoricalDistribution(choices=(2, 4)) (trial 0)" in result.err
    assert "start a new study (--study_name)" in result.err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["search.yaml", "study.db"]


def test_sigterm_stops_the_parallel_trials_and_their_processes(tmp_path):
    search = tmp_path / "search.yaml"
    search.write_text(yaml.safe_dump({"params": {"learning_rate": SEARCH["params"]["learning_rate"]}}))
    root = tmp_path / "root"
    command = [sys.executable, "-m", "rl_lightning.cli", "tune", "--config", PPO_CONFIG, "--search", str(search),
               "--parallel", "2", "--trainer.default_root_dir", str(root), *TINY_PPO]  # fmt: skip
    tune = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in tune.stdout:  # with the config's 100k env steps, the trials are still running when the signal comes
        output.append(line)
        if sum("seed 0: started" in line for line in output) == 2:
            break
    tune.send_signal(signal.SIGTERM)
    output += tune.stdout.readlines()
    assert tune.wait(timeout=60) == 130, "".join(output)
    assert "interrupted: the same command goes on with the study" in output[-1]
    trials = optuna.load_study(study_name="search", storage=f"sqlite:///{root / 'study.db'}").trials
    assert [trial.state for trial in trials] == [optuna.trial.TrialState.FAIL] * 2
    # Neither trial's fit process outlived the command.
    alive = [path for path in Path("/proc").glob("[0-9]*/cmdline") if str(root).encode() in _read(path)]
    assert alive == []


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the process has ended
        return b""


def test_tune_without_optuna_names_the_extra(tmp_path, monkeypatch):
    search = tmp_path / "search.yaml"
    search.write_text(yaml.safe_dump({"params": {"learning_rate": SEARCH["params"]["learning_rate"]}}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "optuna", None)  # an import of it now fails as if it were not installed
    result = run_cli("tune", "--config", PPO_CONFIG, "--search", str(search))
    assert result.status == 2
    assert 'pip install "rl-lightning[optuna]"' in result.err
