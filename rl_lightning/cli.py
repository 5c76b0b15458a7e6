"""The ``rl-lightning`` command: parsing and dispatch, which import what a command needs only when it runs.

``fit`` and ``validate`` are Lightning's CLI (:class:`rl_lightning.commands.RLCLI`); ``evaluate`` plays a trained
agent from a checkpoint; ``report``, ``tune`` and ``fit --seeds`` are in :mod:`rl_lightning.report`,
:mod:`rl_lightning.tune` and :mod:`rl_lightning.seeds`. Importing Lightning and torch is most of a command's
start-up time: ``rl-lightning --help`` and ``evaluate --help`` import neither.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rl_lightning.errors import ConfigurationError, RunFault

COMMANDS = """Reinforcement learning with PyTorch Lightning. Commands:
fit (train an algorithm from a config: rl-lightning fit --help),
validate (evaluation episodes of a config's or checkpoint's model in Lightning's validation loop),
evaluate (play a trained agent from a checkpoint, one JSON line of results: rl-lightning evaluate --help),
report (aggregate the runs of several seeds: rl-lightning report --help),
tune (hyperparameter search with Optuna: rl-lightning tune --help)."""
"""What ``rl-lightning --help`` says the commands are."""

USAGE = "rl-lightning [-h] {fit,validate,evaluate,report,tune} ..."

EXIT_FAULT, EXIT_BAD_INPUT = 1, 2
"""Exit statuses: a run that met a fault (:class:`RunFault`), and bad input (:class:`ConfigurationError`); a run
stopped by a signal exits with ``128 + signal number`` (:mod:`rl_lightning.algos.preemption`)."""


def _explained_error(error: BaseException) -> ConfigurationError | RunFault | None:
    """The ConfigurationError or RunFault behind ``error``, however deep jsonargparse or Lightning wrapped it."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ConfigurationError | RunFault):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def evaluate(argv: Sequence[str]) -> None:
    """``rl-lightning evaluate --ckpt_path PATH [--video DIR]``: play deterministic episodes, print one JSON line."""
    parser = argparse.ArgumentParser(
        prog="rl-lightning evaluate", description="Play deterministic episodes with a trained agent."
    )
    parser.add_argument("--ckpt_path", required=True, help="checkpoint written during training")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to play (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation envs (default 0)")
    parser.add_argument("--num_envs", type=int, default=1, help="envs stepped together (default 1)")
    parser.add_argument("--device", default="cpu", help="where the policy runs (default cpu)")
    parser.add_argument(
        "--weights_only",
        choices=("true", "false"),
        default="true",
        help="read the checkpoint with torch.load(weights_only=True), which cannot run code from it (default "
        "true); false only for checkpoints you trust that hold Python objects such as an env class",
    )
    parser.add_argument(
        "--video",
        metavar="DIR",
        help="also write each episode to DIR/episode_<i>.mp4 (the episodes are played one after another on one env)",
    )
    parser.add_argument("--fps", type=int, default=30, help="frames per second of the videos (default 30)")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.num_envs < 1 or args.fps < 1:
        raise ConfigurationError("--episodes, --num_envs and --fps must be at least 1.")
    from rl_lightning.commands import run_evaluation

    run_evaluation(args)


CKPT_PATH_KEYWORDS = ("last", "best", "hpc", "registry")
"""``--ckpt_path`` values that Lightning resolves itself rather than as a file."""


def check_ckpt_path(command: Sequence[str]) -> None:
    """Refuse a ``--ckpt_path`` file that does not exist before anything is written (the run's ``config.yaml``
    is written when fitting starts, before Lightning reads the checkpoint)."""
    for index, argument in enumerate(command):
        if argument.startswith("--ckpt_path="):
            path = argument.partition("=")[2]
        elif argument == "--ckpt_path" and index + 1 < len(command):
            path = command[index + 1]
        else:
            continue
        is_file = path not in CKPT_PATH_KEYWORDS and not path.startswith("registry:") and "://" not in path
        if is_file and not Path(path).is_file():
            raise ConfigurationError(f"checkpoint {path}: no such file.")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``rl-lightning``; ``argv`` defaults to the command line.

    The current directory is on the import path, as under ``python -m rl_lightning.cli``, so that a config naming
    an env or a network from a module beside it (``env: my_envs:MyEnv-v0``) works with either command.
    """
    command = list(sys.argv[1:] if argv is None else argv)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if command in (["-h"], ["--help"]):
        print(f"usage: {USAGE}\n\n{COMMANDS}")
        return
    try:
        if command and command[0] == "evaluate":
            evaluate(command[1:])
        elif command and command[0] == "report":
            from rl_lightning import report

            report.main(command[1:])
        elif command and command[0] == "tune":
            from rl_lightning import tune

            sys.exit(tune.main(command[1:]))
        elif any(arg == "--seeds" or arg.startswith("--seeds=") for arg in command):
            from rl_lightning import seeds

            sys.exit(seeds.main(command))
        else:
            check_ckpt_path(command)
            from rl_lightning.commands import RLCLI

            RLCLI(args=argv)
    except Exception as error:
        explained = _explained_error(error)
        if explained is None:
            raise
        print(f"rl-lightning: error: {explained}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT if isinstance(explained, ConfigurationError) else EXIT_FAULT)


def __getattr__(name: str) -> Any:
    """``RLCLI`` and ``load_algorithm``, public here, imported from :mod:`rl_lightning.commands` when first used."""
    if name in ("RLCLI", "load_algorithm"):
        from rl_lightning import commands

        return getattr(commands, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
