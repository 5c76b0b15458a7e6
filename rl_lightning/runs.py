"""A run's folder and how a run resumes: the rules ``rl-lightning fit`` follows (see the README's "Run folders").

- **One run per folder.** A run lives in its ``default_root_dir``: its checkpoints in ``<folder>/checkpoints``
  (``last.ckpt`` always the run's latest state) and its logs beside them. A new run (no ``--ckpt_path``) in a
  folder that already holds checkpoints is refused, with the ways forward: resume it, or use another folder.
- **A resumed run keeps the hyperparameters it was started with.** Its algorithm and env must be those of the
  config (refused otherwise, naming both sides); every other hyperparameter comes from the checkpoint, whatever
  the config file says. An option given on the command line that differs from the checkpoint is honoured where
  the saved state allows it (:data:`CHANGEABLE_ON_RESUME`) and refused with why otherwise.
- **A finished run is not trained again**: resuming one whose env steps reached ``total_timesteps`` says so.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl_lightning.errors import ConfigurationError

CHANGEABLE_ON_RESUME = ("total_timesteps", "eval_episodes", "eval_envs")
"""The hyperparameters a resumed run takes from the command line: none of the checkpoint's state depends on them
(the run's length, and the evaluation, whose envs are rebuilt at every evaluation). Every other one shaped the
networks, optimizers, buffers, schedules or random streams that the checkpoint holds."""

IDENTITY = {"class_path": "algorithm", "env": "environment"}
"""What a checkpoint must share with the config to be resumed by it (the spaces and ``num_envs`` are checked
again, against the built envs, when the checkpoint is loaded)."""


def checkpoint_folder(root: str | Path) -> Path:
    """Where ``rl-lightning fit`` writes the checkpoints of the run in folder ``root``."""
    return Path(root) / "checkpoints"


def refuse_a_second_run(root: str | Path) -> None:
    """Refuse to start a new run in ``root`` when it holds the checkpoints of another one.

    A second run beside the first would write ``last-v1.ckpt`` and leave ``last.ckpt`` (what ``--ckpt_path last``
    and the README's ``evaluate`` read) the previous run's.
    """
    folder = checkpoint_folder(root)
    held = sorted(path.name for path in folder.glob("*.ckpt")) if folder.is_dir() else []
    if held:
        raise ConfigurationError(
            f"{root} already holds a run ({', '.join(held)} in {folder}); a folder holds one run. Resume it with "
            f"--ckpt_path last, or start the new run in another folder with --trainer.default_root_dir "
            f"(or delete {root} to start over)."
        )


def refuse_an_unwritable_folder(folder: str | Path) -> None:
    """Refuse a folder a run would write to (its ``default_root_dir``, a checkpoint callback's ``dirpath``) that
    cannot be created or written, before anything is written: found later, it stops the run with a traceback.

    The nearest part of ``folder`` that exists must be a folder this process may write into: not a regular file,
    not read-only for this user, not on a read-only filesystem.
    """
    folder = Path(folder)
    existing = next((part for part in (folder, *folder.parents) if part.exists()), Path("."))
    if not existing.is_dir():
        raise ConfigurationError(
            f"the run folder {folder} cannot be created: {existing} is a file, not a folder. Choose another folder "
            f"(--trainer.default_root_dir, or the checkpoint callback's dirpath)."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigurationError(
            f"the run folder {folder} cannot be {'written' if existing == folder else 'created'}: {existing} is "
            f"read-only for this user. Choose another folder (--trainer.default_root_dir, or the checkpoint "
            f"callback's dirpath), or make {existing} writable."
        )


def find_last_checkpoint(folders: Iterable[Path]) -> Path | None:
    """The newest ``last*.ckpt`` in ``folders`` (what Lightning's ``ckpt_path="last"`` loads), or None."""
    candidates = [path for folder in folders if folder.is_dir() for path in folder.glob("last*.ckpt")]
    return max(candidates, key=lambda path: path.stat().st_mtime, default=None)


def explicit_model_options(argv: Sequence[str]) -> set[str]:
    """The model arguments named on the command line (``--model.init_args.X``, ``--model.X``, ``--model``).

    ``--model`` alone names the class (``class_path``); a nested option such as ``--model.init_args.q_net.init_args.
    hidden`` names its top-level argument (``q_net``).
    """
    names = set()
    for token in argv:
        option = token.split("=", 1)[0]
        if option == "--model":
            names.add("class_path")
        elif option.startswith("--model."):
            path = option.removeprefix("--model.").removeprefix("init_args.")
            names.add(path.split(".")[0])
    return names


def plain(value: Any) -> Any:
    """``value`` as plain containers, so that a parsed config and a checkpoint's hyperparameters compare."""
    if hasattr(value, "as_dict"):  # jsonargparse's Namespace
        value = value.as_dict()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def class_name(path: str) -> str:
    """``module.Class`` of the class at import path ``path`` (``rl_lightning.DQN`` -> ``rl_lightning.algos.dqn.DQN``);
    ``path`` itself when it does not import."""
    module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        return path
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass
class Resume:
    """How a run resumes from a checkpoint: the hyperparameters it continues with, and what differs from the config.

    Args:
        path: the checkpoint.
        env_steps: env steps the run had played when the checkpoint was written.
        init_args: the hyperparameters the run continues with.
        changed: command-line options honoured, as ``name -> (checkpoint's value, new value)``.
        kept: the config's values that the run does not take, as ``name -> (run's value, config's value)``.
    """

    path: Path
    env_steps: int
    init_args: dict[str, Any]
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    kept: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.env_steps >= self.init_args["total_timesteps"]


def plan_resume(
    path: Path, checkpoint: dict[str, Any], class_path: str, init_args: dict[str, Any], explicit: set[str]
) -> Resume:
    """How the run in ``checkpoint`` resumes under a config of ``class_path`` and ``init_args``.

    Args:
        path: the checkpoint's file, as messages name it.
        checkpoint: the checkpoint's contents.
        class_path: the config's algorithm.
        init_args: the config's hyperparameters (config files and command line merged), as plain containers.
        explicit: the hyperparameters named on the command line (:func:`explicit_model_options`).

    Raises:
        ConfigurationError: the checkpoint is not an rl-lightning run, is of another algorithm or env, or an
            explicit option changes a hyperparameter that the checkpoint's state depends on.
    """
    run = checkpoint.get("rl_lightning")
    saved = {key: value for key, value in checkpoint.get("hyper_parameters", {}).items() if not key.startswith("_")}
    if run is None or not saved:
        raise ConfigurationError(
            f"checkpoint {path} was not written by an rl-lightning run, so it cannot be resumed; start a new run "
            f"without --ckpt_path."
        )
    ours = {"class_path": class_name(class_path), "env": plain(init_args.get("env"))}
    theirs = {"class_path": run["algorithm"], "env": plain(saved.get("env"))}
    differences = [
        f"{label}: {theirs[key]} in the checkpoint, {ours[key]} here"
        for key, label in IDENTITY.items()
        if theirs[key] != ours[key]
    ]
    if differences:
        raise ConfigurationError(
            f"cannot resume from checkpoint {path}: it was written by another run ({'; '.join(differences)}). Resume "
            f"with the config that wrote it, or start a new run (in another folder) without --ckpt_path."
        )
    resume = Resume(path, run["env_steps"], dict(saved))
    for name in sorted(set(saved) & set(init_args)):
        old, new = plain(saved[name]), plain(init_args[name])
        if old == new:
            continue
        if name not in explicit:
            resume.kept[name] = (old, new)
        elif name in CHANGEABLE_ON_RESUME:
            resume.changed[name] = (old, new)
            resume.init_args[name] = new
        else:
            raise ConfigurationError(
                f"--model.init_args.{name} {new} cannot change a resumed run, started with {name}={old}: the "
                f"checkpoint's networks, optimizers, buffers and random streams were built with it. A resumed run "
                f"can change only {', '.join(CHANGEABLE_ON_RESUME)}; to train with {name}={new}, start a new run in "
                f"another folder (--trainer.default_root_dir) without --ckpt_path."
            )
    return resume
