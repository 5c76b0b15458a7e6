"""The rl-lightning command: training from a config, evaluating a checkpoint, and refusing bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint

from rl_lightning import PPO, ConfigurationError
from rl_lightning.cli import main
from rl_lightning.commands import _build_algorithm, best_evaluation

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


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def run(*argv: str) -> int:
    try:
        main(list(argv))
    except SystemExit as exit_:
        return exit_.code or 0
    return 0


def test_fit_writes_checkpoints_then_evaluate_prints_one_json_line(tmp_path, capsys):
    assert run("fit", "--config", CONFIG, *TINY, f"--trainer.default_root_dir={tmp_path / 'logs'}") == 0
    last = tmp_path / "logs" / "checkpoints" / "last.ckpt"
    names = sorted(path.name for path in last.parent.iterdir())
    assert len(names) == 2 and names[0].startswith("best-epoch=") and names[1] == "last.ckpt"
    assert not (tmp_path / "runs").exists()
    capsys.readouterr()
    assert run("evaluate", "--ckpt_path", str(last), "--episodes", "3", "--seed", "1") == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["episodes"] == 3
    assert set(result) == {"return_mean", "return_std", "length_mean", "episodes"}
    assert result["length_mean"] == result["return_mean"]  # CartPole pays 1 per step


def test_evaluate_plays_a_checkpoint_of_dict_observations(tmp_path, capsys):
    """PPO on ``DictEnv`` (episodes of 8 steps, normalized flag key): evaluate rebuilds the env and its encoder."""
    ppo = [
        "--model=PPO", "--model.env=tests.toy_envs:RLLightningDict-v0", "--model.num_envs=2", "--model.n_steps=16",
        "--model.batch_size=16", "--model.normalize_observations=true", "--model.total_timesteps=64",
        "--model.steps_per_epoch=32", "--model.eval_episodes=2", "--model.eval_envs=2",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={tmp_path / 'logs'}",
    ]  # fmt: skip
    assert run("fit", *ppo) == 0
    capsys.readouterr()
    last = tmp_path / "logs" / "checkpoints" / "last.ckpt"
    assert run("evaluate", "--ckpt_path", str(last), "--episodes", "2", "--seed", "1") == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["episodes"] == 2 and result["length_mean"] == 8


def test_fit_resumes_from_the_last_checkpoint(tmp_path):
    assert run("fit", "--config", CONFIG, *TINY) == 0
    longer = [*TINY, "--model.init_args.total_timesteps=1536", "--ckpt_path=last"]
    assert run("fit", "--config", CONFIG, *longer) == 0
    last = torch.load(tmp_path / "runs" / "dqn_cartpole" / "checkpoints" / "last.ckpt", weights_only=False)
    # The second run went on from env step 1024 for one more epoch of 512 steps.
    assert last["epoch"] == 2
    assert last["rl_lightning"]["env_steps"] == 1536


def test_print_config_shows_the_resolved_model(capsys):
    assert run("fit", "--config", CONFIG, "--print_config") == 0
    assert "class_path: rl_lightning.DQN" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--model.init_args.env=CartPol-v1", "Did you mean 'CartPole-v1'"),
        ("--model.init_args.env=Pendulum-v1", "DQN takes Discrete action spaces"),
        ("--model.init_args.buffer_size=0", "buffer_size=0 must be a positive number"),
        ("--model.init_args.batch_size=4096", "Raise learning_starts to at least 4096"),
        ("--model.init_args.no_such_key=3", "rl_lightning.DQN does not accept option 'no_such_key'\n"),
        ("--model.init_args.learning_rat=0.1", "does not accept option 'learning_rat'; did you mean 'learning_rate'?"),
        ("--trainer.acelerator=cpu", "--trainer.acelerator=cpu; did you mean 'trainer.accelerator'?"),
        ("--ckpt_path=missing.ckpt", "rl-lightning: error: checkpoint missing.ckpt: no such file."),
        ("--model.init_args.learning_starts=50000", "learning_starts=50000 is not below total_timesteps=50000"),
        ("--model.init_args.buffer_size=32", "Raise buffer_size to at least 64"),
    ],
)
def test_bad_input_exits_2_with_one_message_and_writes_nothing(tmp_path, capsys, override, message):
    assert run("fit", "--config", CONFIG, override) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_evaluate_refuses_a_missing_or_corrupt_checkpoint(tmp_path, capsys):
    assert run("evaluate", "--ckpt_path", str(tmp_path / "none.ckpt")) == 2
    assert "no such file" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    assert run("evaluate", "--ckpt_path", str(corrupt)) == 2
    assert "is not a readable checkpoint" in capsys.readouterr().err


def test_help_lists_the_run_arguments_once_declared_for_every_algorithm(capsys):
    assert run("fit", "--model.help", "DQN") == 0
    dqn_help = capsys.readouterr().out
    for option in ("--model.num_envs", "--model.seed", "--model.total_timesteps", "--model.buffer_device"):
        assert option in dqn_help, option
    assert "environments stepped together in each process" in dqn_help  # RLAlgorithm's docstring
    assert run("fit", "--model.help", "DDPG") == 0
    ddpg_help = capsys.readouterr().out
    assert "--model.learning_rate" in ddpg_help and "--model.num_envs" in ddpg_help
    assert "--model.n_critics" not in ddpg_help and "--model.policy_delay" not in ddpg_help  # fixed by DDPG
    assert run("fit", "--model.help", "A2C") == 0
    a2c_help = capsys.readouterr().out
    assert "--model.normalize_observations" in a2c_help and "--model.batch_size" not in a2c_help


def test_print_config_holds_every_run_argument(capsys):
    assert run("fit", "--config", CONFIG, "--model.init_args.num_envs=2", "--print_config") == 0
    printed = capsys.readouterr().out
    for line in ("num_envs: 2", "seed: 0", "eval_envs:", "save_buffer: true", "learning_rate: 0.0023"):
        assert line in printed, line


def test_a_checkpoint_with_wrappers_given_as_configs_builds_them_for_evaluate():
    """`rl-lightning fit` saves `wrappers: [{class_path, init_args}]` as that config (the Atari and MinAtar configs);
    evaluate builds it again, and refuses, without --weights_only false, a class from outside."""
    preset = {"class_path": "rl_lightning.envs.MinAtarPreset", "init_args": {"max_episode_steps": 100}}
    ppo = _build_algorithm(PPO, {"env": "MinAtar/Breakout-v1", "wrappers": [preset]}, "run.ckpt", weights_only=True)
    assert ppo.observation_space.shape == (4, 10, 10)
    foreign = {"class_path": "some_package.Wrapper"}
    with pytest.raises(ConfigurationError, match=r"some_package\.Wrapper"):
        _build_algorithm(PPO, {"env": "MinAtar/Breakout-v1", "wrappers": [foreign]}, "run.ckpt", weights_only=True)


NETWORK_FROM_YAML = [
    "--model.init_args.q_net.class_path=tests.algos.test_dqn.TutorialQNet",
    "--model.init_args.q_net.init_args.obs_dim=4",
    "--model.init_args.q_net.init_args.n_actions=2",
]


def test_evaluate_rebuilds_a_network_that_the_config_named_by_class_path(tmp_path, capsys):
    root = f"--trainer.default_root_dir={tmp_path / 'run'}"
    assert run("fit", "--config", CONFIG, *TINY, *NETWORK_FROM_YAML, "--trainer.callbacks=[]", root) == 0
    checkpoint = str(tmp_path / "run" / "checkpoints" / "last.ckpt")
    capsys.readouterr()
    assert run("evaluate", "--ckpt_path", checkpoint, "--episodes", "1") == 2
    assert "was trained with tests.algos.test_dqn.TutorialQNet (a class_path of its config)" in capsys.readouterr().err
    assert run("evaluate", "--ckpt_path", checkpoint, "--episodes", "1", "--weights_only", "false") == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["episodes"] == 1


class ScriptNet(torch.nn.Module):
    """Stands for a network class written in a training script (``__main__``)."""


def test_evaluate_explains_a_class_of_the_training_scripts_main(tmp_path, capsys, monkeypatch):
    main_module = __import__("__main__")
    monkeypatch.setattr(ScriptNet, "__module__", "__main__")
    monkeypatch.setattr(main_module, "ScriptNet", ScriptNet, raising=False)
    checkpoint = tmp_path / "script.ckpt"
    torch.save({"rl_lightning": {"algorithm": "rl_lightning.algos.dqn.DQN"}, "hyper_parameters": {"q_net": ScriptNet()},
                "state_dict": {}}, checkpoint)
    monkeypatch.delattr(main_module, "ScriptNet")  # evaluate runs in another program, without the class
    assert run("evaluate", "--ckpt_path", str(checkpoint), "--weights_only", "false") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rl-lightning: error: checkpoint {checkpoint} holds __main__.ScriptNet, a class defined in ")
    assert "Traceback" not in err


def test_an_env_module_in_the_current_directory_is_importable(tmp_path, capsys, monkeypatch):
    (tmp_path / "my_envs_here.py").write_text(
        "import gymnasium\n"
        "gymnasium.register('MyCartPole-v0', entry_point='gymnasium.envs.classic_control:CartPoleEnv')\n"
    )
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", str(tmp_path))])
    # An impossible size checked after the env is built: the message shows the env module was imported.
    assert run("fit", "--config", CONFIG, "--model.init_args.env=my_envs_here:MyCartPole-v0",
               "--model.init_args.learning_starts=50000") == 2
    assert "learning_starts=50000 is not below total_timesteps" in capsys.readouterr().err


def test_evaluate_carries_a_recurrent_policys_state_through_a_checkpoint(tmp_path, capsys):
    config = str(Path(CONFIG).with_name("ppo_lstm_cartpole_novel.yaml"))
    tiny = ["--model.init_args.total_timesteps=512", "--model.init_args.steps_per_epoch=256",
            "--model.init_args.n_epochs=1", "--model.init_args.rnn_hidden_size=8", "--model.init_args.eval_episodes=1",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    assert run("fit", "--config", config, *tiny, f"--trainer.default_root_dir={tmp_path / 'logs'}") == 0
    last = tmp_path / "logs" / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)["rl_lightning"]["collector"]["policy_state"]
    assert [tuple(part.shape) for part in state] == [(8, 1, 8), (8, 1, 8)]  # each env's hidden and cell states
    capsys.readouterr()
    assert run("evaluate", "--ckpt_path", str(last), "--episodes", "2", "--seed", "1") == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["episodes"] == 2 and result["length_mean"] == result["return_mean"] > 0


@pytest.mark.parametrize("command", [["--help"], ["evaluate", "--help"]])
def test_help_lists_the_commands_and_imports_neither_torch_nor_lightning(command: list[str]) -> None:
    """In a fresh interpreter (this one has torch already): the help is printed, and what loaded it is light."""
    probe = (
        "import sys\nfrom rl_lightning.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as exit_:\n"
        "    assert not exit_.code, exit_.code\n"
        "print('heavy:', sorted(m for m in ('torch', 'lightning', 'numpy', 'gymnasium') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *command], capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert result.stdout.splitlines()[-1] == "heavy: []", result.stdout
    if command == ["--help"]:
        assert "evaluate (play a trained agent from a checkpoint" in result.stdout
    else:
        assert "usage: rl-lightning evaluate [-h] --ckpt_path CKPT_PATH" in result.stdout


def test_the_package_names_its_algorithms_when_first_used() -> None:
    import rl_lightning
    from rl_lightning.algos.base import RLAlgorithm
    from rl_lightning.callbacks.progress import use_env_step_progress_bar

    assert rl_lightning.DQN is __import__("rl_lightning.algos", fromlist=["DQN"]).DQN
    assert use_env_step_progress_bar in RLAlgorithm.trainer_adjustments  # wired once, whichever import came first
    assert RLAlgorithm.trainer_adjustments.count(use_env_step_progress_bar) == 1
    with pytest.raises(AttributeError, match="has no attribute 'DQNN'"):
        rl_lightning.DQNN  # noqa: B018


def test_print_config_shows_the_logger_checkpoint_folders_and_threads_that_fit_uses(tmp_path, capsys):
    """The config names no logger and checkpoint callbacks without a folder: the printed config has what the CLI
    puts there, and a fit of the printed config writes exactly there (and writes nothing while printing)."""
    root = tmp_path / "run"
    arguments = ["fit", "--config", CONFIG, *TINY, f"--trainer.default_root_dir={root}"]
    assert run(*arguments, "--print_config") == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert list(tmp_path.iterdir()) == []
    trainer_config = printed["trainer"]
    assert trainer_config["logger"] == {
        "class_path": "lightning.pytorch.loggers.csv_logs.CSVLogger",
        "init_args": {"save_dir": str(root), "name": "lightning_logs"},
    }
    callbacks = trainer_config["callbacks"]
    assert [c["init_args"]["dirpath"] for c in callbacks[:2]] == [str(root / "checkpoints")] * 2
    assert [c["init_args"]["filename"] for c in callbacks[:2]] == ["last", "best-{epoch}"]
    assert callbacks[2:] == []  # the config turns the progress bar off
    assert printed["threads"] == 1

    (tmp_path / "printed.yaml").write_text(yaml.safe_dump(printed))
    assert run("fit", "--config", str(tmp_path / "printed.yaml")) == 0
    assert (root / "checkpoints" / "last.ckpt").is_file()
    assert (root / "lightning_logs" / "version_0" / "metrics.csv").is_file()


def test_print_config_of_a_config_without_checkpoint_callbacks_shows_the_clis_own(tmp_path, capsys):
    config = tmp_path / "plain.yaml"
    model = {"class_path": "rl_lightning.DQN", "init_args": {"env": "CartPole-v1"}}
    config.write_text(yaml.safe_dump({"model": model}))
    assert run("fit", "--config", str(config), "--trainer.default_root_dir=run", "--print_config") == 0
    callbacks = yaml.safe_load(capsys.readouterr().out)["trainer"]["callbacks"]
    assert callbacks == [  # in the Trainer's order: last.ckpt is written after every other callback's epoch end
        {"class_path": "rl_lightning.callbacks.RLProgressBar"},
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"dirpath": str(tmp_path / "run" / "checkpoints"), "filename": "last", "save_top_k": 1},
        },
    ]


def test_the_summary_names_the_best_evaluation_where_it_beat_the_final_one(tmp_path):
    best = ModelCheckpoint(dirpath=tmp_path, monitor="val/return_mean", mode="max", filename="best-{epoch}")
    last = ModelCheckpoint(dirpath=tmp_path, filename="last")  # monitors nothing: never the best
    best.best_model_score, best.best_model_path = torch.tensor(500.0), str(tmp_path / "best-epoch=3.ckpt")
    assert best_evaluation(107.4, [last, best]) == ", best 500.0 in best-epoch=3.ckpt"
    assert best_evaluation(500.0, [last, best]) == ""  # the final evaluation is the best
    assert best_evaluation(107.4, [last]) == ""
    lowest = ModelCheckpoint(dirpath=tmp_path, monitor="val/return_mean", mode="min")
    lowest.best_model_score, lowest.best_model_path = torch.tensor(9.0), str(tmp_path / "x.ckpt")
    assert best_evaluation(107.4, [lowest]) == ""
