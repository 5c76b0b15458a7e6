"""The ``rl-lightning`` command: Lightning's CLI for training, plus ``evaluate`` for a checkpoint."""

from __future__ import annotations

import argparse
import difflib
import importlib
import inspect
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger

from rl_lightning.algos.base import RLAlgorithm
from rl_lightning.algos.checkpointing import (
    READ_ERRORS,
    read_checkpoint,
    unreadable_checkpoint,
    use_resume_checkpoints,
)
from rl_lightning.callbacks import RLProgressBar, record_episodes
from rl_lightning.callbacks.video import RenderError, check_video_writer
from rl_lightning.data import Collector, evaluate_policy
from rl_lightning.errors import ConfigurationError, RunFault


class _ConciseParser(LightningArgumentParser):
    """On a bad option, say what is wrong and where to look, without a screenful of usage first; on an unknown
    option, the close one meant (``n_epoch`` -> ``n_epochs``)."""

    def print_usage(self, file: object = None) -> None:
        pass

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        parser = getattr(ex, "subcommand_parser", None) or self
        super().error(_with_suggestion(message, [action.dest for action in parser._actions]), ex)


def _init_arguments(class_path: str) -> list[str]:
    """The constructor arguments a ``class_path`` accepts, its parents' included (they take ``**run``)."""
    module_name, _, class_name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        return []
    names: list[str] = []
    for klass in inspect.getmro(cls):
        if "__init__" in vars(klass):
            parameters = inspect.signature(klass.__init__).parameters.values()
            names += [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return names


def _with_suggestion(message: str, keys: list[str]) -> str:
    """jsonargparse's ``message`` about an unknown option, in one line naming the close option meant, if any.

    Three forms: ``Subcommand 'fit' does not accept option 'trainer.acelerator'`` (in a config file) and
    ``unrecognized arguments: --trainer.acelerator=cpu`` (on the command line), where ``keys`` are the accepted
    ones; and a class's ``Problem with given class_path 'rl_lightning.PPO': Option 'n_epoch' is not accepted`` in a
    screenful about union types.
    """
    unknown_argument = re.search(r"Problem with given class_path '([\w.]+)':\s*Option '(\w+)' is not accepted", message)
    if unknown_argument:
        class_path, option = unknown_argument.groups()
        message = f"{class_path} does not accept option '{option}'"
        close = difflib.get_close_matches(option, _init_arguments(class_path), n=1)
    else:
        unknown_key = re.search(r"does not accept option '([\w.]+)'|unrecognized arguments: --([\w.]+)", message)
        key = unknown_key and (unknown_key.group(1) or unknown_key.group(2))
        close = difflib.get_close_matches(key, keys, n=1) if key else []
    return f"{message}; did you mean '{close[0]}'?" if close else message


class RLCLI(LightningCLI):
    """``rl-lightning fit|validate --config experiments/<algo>_<env>.yaml [--model.init_args.X ...]``.

    Any :class:`RLAlgorithm` is a model (``model.class_path``); the Trainer defaults differ from
    Lightning's only where RL needs it: ``total_timesteps`` decides when training ends (``max_epochs=-1``),
    there is no sanity validation before training, and checkpoints go to ``<default_root_dir>/checkpoints``
    (a config without checkpoint callbacks writes ``last.ckpt`` there every epoch), where ``--ckpt_path last``
    finds them. A config
    without a logger logs to ``<default_root_dir>/lightning_logs/version_N/metrics.csv`` (no account needed;
    ``scripts/plot_runs.py`` reads it), and the progress bar counts env steps (:class:`RLProgressBar`).
    """

    def __init__(self, args: Sequence[str] | None = None) -> None:
        super().__init__(
            RLAlgorithm,
            subclass_mode_model=True,
            trainer_defaults={"max_epochs": -1, "num_sanity_val_steps": 0},
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_class=_ConciseParser,
            args=args,
        )

    def _parse_ckpt_path(self) -> None:
        # Lightning reads the hyperparameters of a --ckpt_path file here, with torch.load: say clearly why it failed.
        try:
            super()._parse_ckpt_path()
        except READ_ERRORS as err:
            raise unreadable_checkpoint(self.config[self.config.subcommand].get("ckpt_path"), err) from None

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**{**self._tracking_defaults(), **kwargs})
        # `--ckpt_path last` searches the checkpoint callbacks' folders before the model adds callbacks of its own.
        # A callback without a dirpath would write into (and search) a new logger version folder, empty at every
        # start: all of them write to <default_root_dir>/checkpoints instead, which moves with default_root_dir.
        use_resume_checkpoints(trainer, Path(trainer.default_root_dir).resolve() / "checkpoints")
        return trainer

    def _tracking_defaults(self) -> dict[str, Any]:
        """The CSV logger and the env-step progress bar, where the config names no logger or progress bar."""
        config = self._get(self.config_init, "trainer", default={})
        defaults: dict[str, Any] = {}
        if config.get("logger") in (None, True):
            defaults["logger"] = CSVLogger(config.get("default_root_dir") or ".")
        callbacks = config.get("callbacks") or []
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            defaults["callbacks"] = [*callbacks, RLProgressBar()]
        return defaults


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


def load_algorithm(ckpt_path: str, device: str = "cpu", weights_only: bool = True) -> RLAlgorithm:
    """The algorithm saved in a checkpoint written by ``rl-lightning fit`` or a Trainer, ready to act.

    Only the hyperparameters and the ``state_dict`` are used. A network or env that the training config named by
    ``class_path`` is built again from its ``class_path`` and ``init_args``, as the CLI built it. With
    ``weights_only`` (the default) the file is read with ``torch.load(weights_only=True)``, which cannot run code
    from it, and only classes of rl-lightning itself are built; the pickled environments inside (for resuming)
    are never unpickled.
    """
    try:
        checkpoint = read_checkpoint(ckpt_path, map_location=device, weights_only=weights_only)
    except AttributeError as error:  # unpickling (weights_only=False) an object of a class that __main__ defined
        main_class = re.search(r"Can't get attribute '(\w+)' on <module '[\w.]*__main__'", str(error))
        if main_class is None:
            raise
        raise ConfigurationError(_main_class_message(ckpt_path, f"__main__.{main_class.group(1)}")) from None
    algorithm_path = checkpoint.get("rl_lightning", {}).get("algorithm")
    if algorithm_path is None:
        raise ConfigurationError(f"checkpoint {ckpt_path} was not written by an rl-lightning algorithm.")
    module_name, _, class_name = algorithm_path.rpartition(".")
    if weights_only and module_name.partition(".")[0] != "rl_lightning":
        raise ConfigurationError(
            f"checkpoint {ckpt_path} holds a {algorithm_path}, an algorithm from outside rl-lightning; importing it "
            f"runs its module's code. If you trust the checkpoint, pass --weights_only false."
        )
    algorithm_class = getattr(__import__(module_name, fromlist=[class_name]), class_name)
    # LightningCLI adds private keys such as `_class_path` beside the constructor's arguments.
    hyperparameters = {
        key: _rebuild(value, ckpt_path, weights_only)
        for key, value in checkpoint["hyper_parameters"].items()
        if not key.startswith("_")
    }
    algorithm = algorithm_class(**hyperparameters)
    algorithm.load_state_dict(checkpoint["state_dict"])
    return algorithm.to(device).eval()


def _rebuild(value: Any, ckpt_path: str, weights_only: bool) -> Any:
    """A saved hyperparameter as the CLI built it: each ``{"class_path": ..., "init_args": ...}`` in it (a network or
    an env class named in the training config) instantiated again, innermost first."""
    if isinstance(value, list | tuple):
        return type(value)(_rebuild(item, ckpt_path, weights_only) for item in value)
    if not (isinstance(value, dict) and isinstance(value.get("class_path"), str)):
        return value
    class_path = value["class_path"]
    module_name, _, class_name = class_path.rpartition(".")
    if weights_only and module_name.partition(".")[0] != "rl_lightning":
        raise ConfigurationError(
            f"checkpoint {ckpt_path} was trained with {class_path} (a class_path of its config); building it again "
            f"imports its module, which runs that module's code. If you trust the checkpoint, pass --weights_only "
            f"false."
        )
    if module_name == "__main__":
        raise ConfigurationError(_main_class_message(ckpt_path, class_path))
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ConfigurationError(
            f"checkpoint {ckpt_path} was trained with {class_path}, which cannot be imported here ({error}); run "
            f"evaluate where that module is importable (e.g. from the folder training ran in)."
        ) from None
    init_args = {key: _rebuild(item, ckpt_path, weights_only) for key, item in value.get("init_args", {}).items()}
    return cls(**init_args)


def _main_class_message(ckpt_path: str, name: str) -> str:
    return (
        f"checkpoint {ckpt_path} holds {name}, a class defined in the training script itself (__main__), which no "
        f"other program can rebuild. Evaluate it from Python inside that script (rl_lightning.cli.load_algorithm("
        f"path, weights_only=False) once the class is defined), or move the class into a module and train again."
    )


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
    if args.video is not None:
        if args.num_envs != 1:
            raise ConfigurationError("--video plays the episodes one after another on one env: leave out --num_envs.")
        check_video_writer()
    algorithm = load_algorithm(args.ckpt_path, args.device, weights_only=args.weights_only == "true")
    episodes = None
    if args.video is not None:
        paths = [Path(args.video) / f"episode_{index}.mp4" for index in range(args.episodes)]
        try:
            episodes = record_episodes(algorithm, paths, args.seed, args.fps)
        except RenderError as error:
            print(f"rl-lightning: warning: {error}; evaluating without videos.", file=sys.stderr)
    if episodes is None:
        env = algorithm.make_env(min(args.num_envs, args.episodes))
        collector = Collector(env, args.device, algorithm.check_finite)
        try:
            episodes = evaluate_policy(algorithm, collector, args.episodes, args.seed)
        finally:
            collector.close()
    print(
        json.dumps(
            {
                "return_mean": float(episodes.returns.mean()),
                "return_std": float(episodes.returns.std()),
                "length_mean": float(episodes.lengths.mean()),
                "episodes": len(episodes.returns),
            }
        )
    )


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
    try:
        if command and command[0] == "evaluate":
            evaluate(command[1:])
        else:
            check_ckpt_path(command)
            RLCLI(args=argv)
    except Exception as error:
        explained = _explained_error(error)
        if explained is None:
            raise
        print(f"rl-lightning: error: {explained}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT if isinstance(explained, ConfigurationError) else EXIT_FAULT)


if __name__ == "__main__":
    main()
