"""What the ``rl-lightning`` commands run: Lightning's CLI for ``fit`` and ``validate``, and ``evaluate``'s agent.

Imported by :mod:`rl_lightning.cli` only once a command needs it: Lightning and torch are most of a command's
start-up time, and ``rl-lightning --help`` or ``evaluate --help`` need neither.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import inspect
import json
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch
from jsonargparse import ArgumentError, ArgumentParser, Namespace
from lightning.pytorch import Trainer
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_info

from rl_lightning.algos.base import RLAlgorithm
from rl_lightning.algos.checkpointing import (
    READ_ERRORS,
    read_checkpoint,
    unreadable_checkpoint,
    use_resume_checkpoints,
)
from rl_lightning.algos.compat import quiet_lightning_warnings
from rl_lightning.callbacks import RLProgressBar, record_episodes
from rl_lightning.callbacks.video import RenderError, check_video_writer
from rl_lightning.cli import COMMANDS
from rl_lightning.data import evaluate_policy
from rl_lightning.errors import ConfigurationError
from rl_lightning.metric_names import VAL_RETURN
from rl_lightning.runs import (
    Resume,
    checkpoint_folder,
    explicit_model_options,
    find_last_checkpoint,
    plain,
    plan_resume,
    refuse_a_second_run,
    refuse_an_unwritable_folder,
)


class _ConciseParser(LightningArgumentParser):
    """On a bad option, say what is wrong and where to look, without a screenful of usage first; on an unknown
    option, the close one meant (``n_epoch`` -> ``n_epochs``)."""

    def print_usage(self, file: object = None) -> None:
        pass

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        parser = getattr(ex, "subcommand_parser", None) or self
        super().error(_with_suggestion(message, [action.dest for action in parser._actions]), ex)


def init_arguments(class_path: str) -> list[str]:
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
        close = difflib.get_close_matches(option, init_arguments(class_path), n=1)
    else:
        unknown_key = re.search(r"does not accept option '([\w.]+)'|unrecognized arguments: --([\w.]+)", message)
        key = unknown_key and (unknown_key.group(1) or unknown_key.group(2))
        close = difflib.get_close_matches(key, keys, n=1) if key else []
    return f"{message}; did you mean '{close[0]}'?" if close else message


class RLCLI(LightningCLI):
    """``rl-lightning fit|validate --config experiments/<algo>_<env>.yaml [--model.init_args.X ...]``.

    Any :class:`RLAlgorithm` is a model (``model.class_path``); the Trainer defaults differ from Lightning's only
    where RL needs it: ``total_timesteps`` decides when training ends (``max_epochs=-1``), there is no sanity
    validation before training, and checkpoints go to ``<default_root_dir>/checkpoints`` (a config without
    checkpoint callbacks writes ``last.ckpt`` there every epoch), where ``--ckpt_path last`` finds them. A config
    without a logger logs to ``<default_root_dir>/lightning_logs/version_N/metrics.csv`` (no account needed;
    ``scripts/plot_runs.py`` reads it), and the progress bar counts env steps (:class:`RLProgressBar`).

    A run folder holds one run, and a resumed run keeps the hyperparameters it was started with
    (:mod:`rl_lightning.runs`). The model's ``seed`` is the run's one seed: ``seed_everything`` follows it.
    ``--threads N`` sets torch's intra-op threads per process; on CPU the default is 1 unless ``OMP_NUM_THREADS``
    is set, as RL's small networks on a shared machine run fastest so. The run's settings are printed when it
    starts, and one summary line when ``fit`` ends.
    """

    def __init__(self, args: Sequence[str] | None = None) -> None:
        argv = list(sys.argv[1:] if args is None else args)
        # --print_config is answered here, once the Trainer is built (after_instantiate_classes), not by jsonargparse
        # while parsing: the defaults this CLI adds (logger, checkpoint folders, progress bar) are then in it.
        printing = [arg for arg in argv if arg == "--print_config" or arg.startswith("--print_config=")]
        self._print_config = printing[-1].partition("=")[2].split(",") if printing else None
        self._argv = [arg for arg in argv if arg not in printing]
        self._resume: Resume | None = None
        self._fit_start = 0.0
        super().__init__(
            RLAlgorithm,
            subclass_mode_model=True,
            trainer_defaults={"max_epochs": -1, "num_sanity_val_steps": 0},
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_class=_ConciseParser,
            parser_kwargs={"prog": "rl-lightning", "description": COMMANDS},
            args=args if self._print_config is None else self._argv,
        )

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # `test` and `predict` need a test or predict dataloader, which an RL algorithm does not have.
        return {name: skip for name, skip in LightningCLI.subcommands().items() if name in ("fit", "validate")}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--threads",
            type=int | None,
            default=None,
            help="torch intra-op threads per process (default: on CPU 1, or OMP_NUM_THREADS where it is set; "
            "elsewhere torch's default)",
        )

    def _parse_ckpt_path(self) -> None:
        subcommand = self.config.get("subcommand")
        if subcommand != "fit":
            # Lightning reads the hyperparameters of a --ckpt_path file here, with torch.load: say clearly why it
            # failed.
            try:
                super()._parse_ckpt_path()
            except READ_ERRORS as err:
                raise unreadable_checkpoint(self.config[subcommand].get("ckpt_path"), err) from None
            return
        config = self.config[subcommand]
        root = Path(config.trainer.default_root_dir or ".")
        for folder in (root, *self._checkpoint_folders(config)):  # the run and its checkpoints, wherever they go
            refuse_an_unwritable_folder(folder)
        ckpt_path = config.get("ckpt_path")
        if ckpt_path is None:
            if self._print_config is None:
                refuse_a_second_run(root)
            return
        path = Path(ckpt_path) if ckpt_path != "last" else find_last_checkpoint(self._checkpoint_folders(config))
        if path is None:
            refuse_a_second_run(root)  # checkpoints, but no last.ckpt: not a run that --ckpt_path last can resume
            rank_zero_info(f"rl-lightning: no checkpoint in {checkpoint_folder(root)} to resume: starting a new run.")
            config.ckpt_path = None
            return
        model = config.model
        self._resume = plan_resume(
            path,
            read_checkpoint(path, map_location="cpu"),
            model.class_path,
            plain(model.init_args),
            explicit_model_options(self._argv),
        )
        if self._resume.finished:
            rank_zero_info(
                f"rl-lightning: the run in {root} has finished: {self._resume.env_steps:,} of "
                f"{self._resume.init_args['total_timesteps']:,} env steps ({path}). Nothing to do; to train it "
                f"longer, pass --model.init_args.total_timesteps with more steps."
            )
            sys.exit(0)
        config.ckpt_path = str(path)
        model_config = {"class_path": model.class_path, "init_args": self._resume.init_args}
        self.config = self.parser.parse_object({subcommand: {"model": model_config}}, self.config)

    @staticmethod
    def _checkpoint_folders(config: Any) -> list[Path]:
        """Where ``--ckpt_path last`` looks: the run's checkpoint folder, and any folder a checkpoint callback names."""
        folders = [checkpoint_folder(config.trainer.default_root_dir or ".")]
        callbacks = config.trainer.callbacks or []
        for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
            dirpath = plain(callback).get("init_args", {}).get("dirpath")
            if dirpath is not None:
                folders.append(Path(dirpath))
        return folders

    def _set_seed(self) -> None:
        # The model's seed is the one the user sets (every random stream of the run derives from it, and it is
        # saved with the run); the process-wide generators follow it, unless turned off with seed_everything=false.
        config = self.config[self.subcommand] if self.subcommand else self.config
        seed, given = config.model.init_args.seed, config.seed_everything
        if given is not True and given is not False and given != seed:
            raise ConfigurationError(
                f"seed_everything={given} differs from the model's seed={seed}: the model's seed is the run's one "
                f"seed and seed_everything follows it. Remove seed_everything from the config (or set it to {seed})."
            )
        if given is not False:
            config.seed_everything = seed
        super()._set_seed()

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        with _without_lightning_tips():
            trainer = super().instantiate_trainer(**{**self._tracking_defaults(), **kwargs})
        # `--ckpt_path last` searches the checkpoint callbacks' folders before the model adds callbacks of its own.
        # A callback without a dirpath would write into (and search) a new logger version folder, empty at every
        # start: all of them write to <default_root_dir>/checkpoints instead, which moves with default_root_dir.
        use_resume_checkpoints(trainer, checkpoint_folder(Path(trainer.default_root_dir).resolve()))
        threads = self._get(self.config, "threads")
        if threads is None and "OMP_NUM_THREADS" not in os.environ and isinstance(trainer.accelerator, CPUAccelerator):
            threads = 1
        if threads is not None:
            torch.set_num_threads(threads)
        return trainer

    def after_instantiate_classes(self) -> None:
        if self._print_config is not None:
            print(self._effective_config(), end="")
            sys.exit(0)

    def _effective_config(self) -> str:
        """The subcommand's config as the run will use it: with the logger, checkpoint folders, progress bar and
        threads that :meth:`instantiate_trainer` chose where the config left them to the CLI."""
        trainer, subcommand = self.trainer, self.subcommand
        config = self.config[subcommand].clone()
        given = self._get(self.config_init, "trainer", default={})
        if given.get("logger") in (None, True) and isinstance(trainer.logger, CSVLogger):
            config.trainer.logger = Namespace(
                class_path=f"{CSVLogger.__module__}.{CSVLogger.__qualname__}",
                init_args=Namespace(save_dir=trainer.logger.save_dir, name=trainer.logger.name),
            )
        configured = given.get("callbacks") or []
        configured = configured if isinstance(configured, list) else [configured]
        callbacks = config.trainer.callbacks or []
        callbacks = list(callbacks) if isinstance(callbacks, list) else [callbacks]
        # (LightningCLI appends callbacks of its own to the instantiated list: the config's come first.)
        for callback, entry in zip(configured[: len(callbacks)], callbacks, strict=True):
            if isinstance(callback, ModelCheckpoint) and entry.get("init_args") is not None:
                entry.init_args.dirpath = callback.dirpath
        for callback in trainer.callbacks:
            if isinstance(callback, ModelCheckpoint) and callback not in configured:  # the CLI's default one
                init_args = Namespace(dirpath=callback.dirpath, filename=callback.filename, save_top_k=1)
                class_path = f"{ModelCheckpoint.__module__.rpartition('.')[0]}.{ModelCheckpoint.__qualname__}"
                callbacks.append(Namespace(class_path=class_path, init_args=init_args))
            elif isinstance(callback, RLProgressBar) and callback not in configured:
                callbacks.append(Namespace(class_path="rl_lightning.callbacks.RLProgressBar"))
        config.trainer.callbacks = callbacks
        config.threads = torch.get_num_threads()
        skip_null = {"skip_none": True} if "skip_null" in self._print_config else {}
        return self._parser(subcommand).dump(config, skip_validation=True, **skip_null)

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

    def before_fit(self) -> None:
        """The start-up lines: what runs, where its files go, the threads, and how a resumed run differs."""
        model, trainer = self.model, self.trainer
        root = Path(trainer.default_root_dir)
        rank_zero_info(
            f"rl-lightning: {type(model).__name__} on {model.env_name}, seed {model.seed}, "
            f"{model.total_timesteps:,} env steps; run folder {root} (checkpoints in {checkpoint_folder(root)}); "
            f"{torch.get_num_threads()} torch thread(s) per process (--threads)."
        )
        resume = self._resume
        if resume is not None:
            changed = "".join(f"; {name} {old} -> {new} (command line)" for name, (old, new) in resume.changed.items())
            rank_zero_info(
                f"rl-lightning: resuming {resume.path} at {resume.env_steps:,} env steps with the run's own "
                f"hyperparameters{changed}."
            )
            if resume.kept:
                kept = ", ".join(f"{name}={old} (config: {new})" for name, (old, new) in resume.kept.items())
                rank_zero_info(f"rl-lightning: the run keeps {kept}; the config file's values are not used.")
        self._fit_start = time.perf_counter()

    def fit(self, model: RLAlgorithm, **kwargs: Any) -> None:
        """``Trainer.fit``, with the warnings of Lightning that are noise for an RL run silenced inside it."""
        # The module quiets Lightning's notes on RL datasets from its setup() on; some come before it.
        with quiet_lightning_warnings(), warnings.catch_warnings():
            for message in _LIGHTNING_NOISE:
                warnings.filterwarnings("ignore", message=message)
            self.trainer.fit(model, **kwargs)

    def after_fit(self) -> None:
        """One summary line: the final evaluation, the env steps, the wall time, and where the files are."""
        model, trainer = self.model, self.trainer
        metrics = trainer.callback_metrics
        evaluation = (
            f"final evaluation {float(metrics['val/return_mean']):.1f} +- {float(metrics['val/return_std']):.1f}"
            f"{best_evaluation(float(metrics['val/return_mean']), trainer.checkpoint_callbacks)}"
            if "val/return_mean" in metrics and "val/return_std" in metrics
            else "no evaluation"
        )
        logs = f", logs in {trainer.logger.log_dir}" if isinstance(trainer.logger, CSVLogger) else ""
        rank_zero_info(
            f"rl-lightning: trained {model.env_steps:,} of {model.total_timesteps:,} env steps in "
            f"{time.perf_counter() - self._fit_start:.0f} s; {evaluation}; checkpoints in "
            f"{checkpoint_folder(trainer.default_root_dir)}{logs}."
        )


def best_evaluation(final: float, callbacks: Sequence[Any]) -> str:
    """``", best 500.0 in best-epoch=3.ckpt"``: the checkpoint of a callback keeping the best evaluation return, where
    it beat the final one (a greedy DQN policy, for one, can swing between evaluations); else nothing."""
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor == VAL_RETURN and callback.mode == "max":
            score = callback.best_model_score
            if callback.best_model_path and score is not None and float(score) > final:
                return f", best {float(score):.1f} in {Path(callback.best_model_path).name}"
    return ""


_LIGHTNING_NOISE = (
    # Lightning's own pytree helper calls torch's deprecated LeafSpec check on every run.
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    # A resumed run writes into the folder its checkpoints are in, by design.
    r".*Checkpoint directory .* exists and is not empty.*",
)
"""Warnings Lightning gives every RL run, which say nothing the user can act on (silenced only while fitting)."""


@contextlib.contextmanager
def _without_lightning_tips() -> Iterator[None]:
    """Drop Lightning's advertising tips (``💡 Tip: ... litlogger``) logged while the block runs."""

    def not_a_tip(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")

    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero")]
    for logger in loggers:
        logger.addFilter(not_a_tip)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(not_a_tip)


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
    hyperparameters = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}
    algorithm = _build_algorithm(algorithm_class, hyperparameters, ckpt_path, weights_only)
    algorithm.load_state_dict(checkpoint["state_dict"])
    return algorithm.to(device).eval()


def _class_paths(value: Any) -> list[str]:
    """The ``class_path`` of every config (``{class_path, init_args}``) nested in ``value``."""
    if isinstance(value, dict):
        own = [value["class_path"]] if isinstance(value.get("class_path"), str) else []
        return own + [path for item in value.values() for path in _class_paths(item)]
    if isinstance(value, list | tuple):
        return [path for item in value for path in _class_paths(item)]
    return []


def _build_algorithm(
    algorithm_class: type[RLAlgorithm], hyperparameters: dict[str, Any], ckpt_path: str, weights_only: bool
) -> RLAlgorithm:
    """The algorithm from its saved hyperparameters. ``rl-lightning fit`` saves arguments given as configs
    (``class_path`` / ``init_args``: wrappers such as AtariPreset, networks) as those configs: they are built as
    the CLI built them, through the algorithm's signature."""
    class_paths = _class_paths(hyperparameters)
    if not class_paths:
        return algorithm_class(**hyperparameters)
    for class_path in class_paths:
        if class_path.startswith("__main__."):
            raise ConfigurationError(_main_class_message(ckpt_path, class_path))
        if weights_only and class_path.partition(".")[0] not in ("rl_lightning", "gymnasium"):
            raise ConfigurationError(
                f"checkpoint {ckpt_path} was trained with {class_path} (a class_path of its config); building it "
                f"again imports its module, which runs that module's code. If you trust the checkpoint, pass "
                f"--weights_only false."
            )
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(algorithm_class, "model", fail_untyped=False)
    try:
        return parser.instantiate(parser.parse_object({"model": hyperparameters})).model
    except (ImportError, AttributeError, ArgumentError) as error:
        raise ConfigurationError(
            f"checkpoint {ckpt_path} was trained with {', '.join(class_paths)}, which cannot be built here ({error}); "
            f"run evaluate where those modules are importable (e.g. from the folder training ran in)."
        ) from None


def _main_class_message(ckpt_path: str, name: str) -> str:
    return (
        f"checkpoint {ckpt_path} holds {name}, a class defined in the training script itself (__main__), which no "
        f"other program can rebuild. Evaluate it from Python inside that script (rl_lightning.cli.load_algorithm("
        f"path, weights_only=False) once the class is defined), or move the class into a module and train again."
    )


def run_evaluation(args: argparse.Namespace) -> None:
    """``rl-lightning evaluate`` with its parsed arguments (:func:`rl_lightning.cli.evaluate`): play deterministic
    episodes, print one JSON line."""
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
        collector = algorithm.make_collector(min(args.num_envs, args.episodes), args.device, evaluation=True)
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
