"""Optuna pruning of a trial's runs: what ``rl-lightning tune`` adds to the ``fit`` of every seed of a trial.

Optuna's own Lightning callback (optuna-integration's ``PyTorchLightningPruningCallback``) is not used, for three
reasons. It takes a live ``optuna.Trial``, which a callback built from the command line of a ``fit`` process cannot
be given. It reports at ``step=current_epoch``, so the seeds of one trial, run one after another, would report the
same steps, and Optuna ignores a repeated step: only the first seed would ever be judged. And it raises
``TrialPruned`` out of ``Trainer.fit``, which ``rl-lightning fit`` can only show as a crash. :class:`TrialPruning`
finds its trial in the study's storage by number, reports in env steps over the trial's seeds, and stops a pruned
run the way the Trainer stops any run (``should_stop``, with its checkpoints written), noting the pruning in the trial.
"""

from __future__ import annotations

import importlib
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from rl_lightning.errors import ConfigurationError

MONITOR = "val/return_mean"
"""The metric reported to the trial: the deterministic evaluation return, logged after every epoch."""

PRUNED = "pruned"
"""The trial's user attribute that says where it was pruned (``{"seed": S, "env_steps": N}``)."""


def seed_key(seed: int) -> str:
    """The trial's user attribute with seed ``seed``'s latest evaluation: ``{"val/return_mean": R, "env_steps": N}``."""
    return f"seed {seed}"


def require_optuna() -> Any:
    """The ``optuna`` module, or a ConfigurationError naming the extra that installs it."""
    try:
        import optuna
    except ImportError:
        raise ConfigurationError(
            'hyperparameter search needs Optuna, which is not installed: pip install "rl-lightning[optuna]"'
        ) from None
    return optuna


def build_optuna_object(spec: dict[str, Any], base: type, role: str) -> Any:
    """An Optuna sampler or pruner from ``{class_path: ..., init_args: {...}}``, checked to be a subclass of ``base``.

    Args:
        spec: the class and its arguments, as the search space's ``sampler`` or ``pruner`` section writes them.
        base: ``optuna.samplers.BaseSampler`` or ``optuna.pruners.BasePruner``.
        role: ``sampler`` or ``pruner``, as messages name it.
    """
    class_path, init_args = spec.get("class_path"), spec.get("init_args") or {}
    unknown = sorted(set(spec) - {"class_path", "init_args"})
    if not isinstance(class_path, str) or unknown or not isinstance(init_args, dict):
        raise ConfigurationError(
            f"{role}: write class_path (e.g. optuna.{role}s.{'TPESampler' if role == 'sampler' else 'MedianPruner'}) "
            f"and optionally init_args (a mapping of its arguments)"
            + (f"; {', '.join(unknown)} is neither." if unknown else ".")
        )
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigurationError(f"{role} {class_path}: no such class.") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigurationError(f"{role} {class_path} is not an Optuna {role} (a subclass of {base.__name__}).")
    try:
        return cls(**init_args)
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"{role} {class_path}: {error}") from None


class TrialPruning(Callback):
    """Reports every evaluation of a trial's run to the trial, and stops the run when the study's pruner says so.

    The seeds of a trial run one after another, and each evaluation is reported at step ``i * total_timesteps +
    env_steps`` for the ``i``-th seed: the env steps the trial has played so far. The pruner therefore compares
    trials at equal progress (the same seed of the list, the same env step). Each seed's latest evaluation is also
    kept in the trial's user attributes (:func:`seed_key`), from which ``rl-lightning tune`` computes the objective.
    The trial number and study name go to the run's loggers as hyperparameters (``optuna_trial``,
    ``optuna_study``), so the CSV log's ``hparams.yaml`` and the W&B run config say which trial a run belongs to.

    Args:
        storage: the study's Optuna storage URL (an RDB URL such as ``sqlite:///study.db``).
        study_name: the study's name in the storage.
        trial_number: the trial whose runs these are.
        seeds: the trial's seeds, in the order they run.
        pruner: the study's pruner, as ``{class_path, init_args}`` (what ``should_prune`` asks).
    """

    def __init__(
        self, storage: str, study_name: str, trial_number: int, seeds: list[int], pruner: dict[str, Any]
    ) -> None:
        self.storage, self.study_name, self.trial_number = storage, study_name, trial_number
        self.seeds, self.pruner = list(seeds), pruner
        self._trial: Any = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit" or not trainer.is_global_zero:
            return
        if pl_module.seed not in self.seeds:
            raise ConfigurationError(
                f"TrialPruning: seed {pl_module.seed} is not one of the trial's seeds {self.seeds}."
            )
        optuna = require_optuna()
        storage = optuna.storages.RDBStorage(self.storage)
        pruner = build_optuna_object(self.pruner, optuna.pruners.BasePruner, "pruner")
        study = optuna.load_study(study_name=self.study_name, storage=storage, pruner=pruner)
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(self.study_name), self.trial_number
        )
        self._trial = optuna.trial.Trial(study, trial_id)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams({"optuna_study": self.study_name, "optuna_trial": self.trial_number})

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        prune = False
        if trainer.is_global_zero and MONITOR in trainer.callback_metrics:
            value, env_steps = float(trainer.callback_metrics[MONITOR]), int(pl_module.env_steps)
            seed, position = pl_module.seed, self.seeds.index(pl_module.seed)
            self._trial.set_user_attr(seed_key(seed), {MONITOR: value, "env_steps": env_steps})
            self._trial.report(value, step=position * pl_module.total_timesteps + env_steps)
            # After the last evaluation of the last seed the trial is over: it completes, whatever the pruner says.
            trial_over = position == len(self.seeds) - 1 and env_steps >= pl_module.total_timesteps
            prune = not trial_over and self._trial.should_prune()
            if prune:
                self._trial.set_user_attr(PRUNED, {"seed": seed, "env_steps": env_steps})
        if trainer.strategy.broadcast(prune):
            trainer.should_stop = True
