"""``rl-lightning tune``: hyperparameter search with Optuna, each trial a few seeds of ``rl-lightning fit``.

``rl-lightning tune --config X.yaml --search S.yaml [--trials 20] [--seeds 0-2] [--parallel 1] [--storage URL]
[--study_name NAME] [fit options...]``:

- **The search space** (``S.yaml``, see :func:`load_search`) names distributions over the model's arguments
  (``model.init_args.*``), and optionally the Optuna sampler and pruner.
- **A trial** samples the space, then runs ``fit --config X.yaml`` with the sampled values for each seed of
  ``--seeds``, one seed after another, each a process of its own made as ``fit --seeds`` makes it
  (:mod:`rl_lightning.seeds`: one torch thread, ``fit.log`` in its folder), into ``<root>/trial_<N>/seed_<S>``.
  ``--parallel`` trials run at a time. The objective is the mean over the seeds of each seed's *final*
  deterministic evaluation (``val/return_mean`` of its last epoch), not its best, which evaluation noise biases up.
- **Pruning**: every evaluation is reported to the trial (:class:`~rl_lightning.callbacks.pruning.TrialPruning`,
  in env steps over the trial's seeds), and a run the pruner stops ends the trial as pruned.
- **The study** lives in ``--storage`` (any Optuna RDB URL; default ``sqlite:///<root>/study.db``) under
  ``--study_name`` (default: the search file's name), so the same command run again, or on several machines at
  once against one database, goes on until the study holds ``--trials`` complete or pruned trials. A failed
  trial is reported and does not count: the next run of the command replaces it.
- **The best trial** is written as ``<root>/best.yaml``: the config file with the best values filled in, which
  ``rl-lightning fit --config`` takes as it is.

``<root>`` is ``--trainer.default_root_dir`` if given, else ``runs/tune/<study name>``.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import shlex
import signal
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rl_lightning.callbacks.pruning import MONITOR, PRUNED, build_optuna_object, require_optuna, seed_key
from rl_lightning.commands import init_arguments
from rl_lightning.errors import ConfigurationError
from rl_lightning.runs import explicit_model_options
from rl_lightning.seeds import check_fit_args, config_value, option_values, parse_seeds, run_local, seed_runs

DISTRIBUTIONS = {
    "float": {"low", "high", "log", "step"},
    "int": {"low", "high", "log", "step"},
    "categorical": {"choices"},
}
"""The distribution types of a search space and the keys each takes (besides ``type``)."""

DEFAULT_SAMPLER = {"class_path": "optuna.samplers.TPESampler"}
HEARTBEAT_S, GRACE_S = 60, 180
"""A trial whose process has not written a heartbeat for ``GRACE_S`` seconds (a killed worker) is marked failed."""

_PRIMITIVE = (type(None), bool, int, float, str)


def _say(message: str) -> None:
    print(message, flush=True)


# ------------------------------------------------------------------------------------------------ the search space
@dataclass(frozen=True)
class Parameter:
    """One model argument's distribution: ``kind`` (float, int, categorical) and its settings."""

    name: str
    kind: str
    settings: dict[str, Any]

    @property
    def offered(self) -> list[Any]:
        """A categorical's choices as Optuna takes them: plain values, a list or mapping (``[64, 64]``) as its JSON."""
        return [choice if isinstance(choice, _PRIMITIVE) else json.dumps(choice) for choice in self.settings["choices"]]

    def suggest(self, trial: Any) -> Any:
        if self.kind == "categorical":
            return self.settings["choices"][self.offered.index(trial.suggest_categorical(self.name, self.offered))]
        suggest = trial.suggest_float if self.kind == "float" else trial.suggest_int
        return suggest(self.name, **self.settings)

    def distribution(self) -> Any:
        """The Optuna distribution that :meth:`suggest` samples from."""
        distributions = require_optuna().distributions
        if self.kind == "categorical":
            return distributions.CategoricalDistribution(self.offered)
        if self.kind == "float":
            return distributions.FloatDistribution(**self.settings)
        return distributions.IntDistribution(**self.settings)


@dataclass(frozen=True)
class SearchSpace:
    """What ``--search`` declares: the parameters, and the sampler and pruner as ``{class_path, init_args}``."""

    parameters: list[Parameter]
    sampler: dict[str, Any]
    pruner: dict[str, Any] | None


def _check_distribution(name: str, spec: Any, where: str) -> Parameter:
    """The parameter ``name`` of ``spec`` (``{type: float, low: ..., high: ..., log: true}``), or why it is wrong."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigurationError(
            f"{where}: {name} needs a distribution, e.g. {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}."
        )
    kind = spec["type"]
    if kind not in DISTRIBUTIONS:
        raise ConfigurationError(
            f"{where}: {name} has type {kind!r}; the types are {', '.join(DISTRIBUTIONS)} (float and int take low, "
            f"high and optionally log or step; categorical takes choices)."
        )
    settings = {key: value for key, value in spec.items() if key != "type"}
    unknown = sorted(set(settings) - DISTRIBUTIONS[kind])
    if unknown:
        raise ConfigurationError(
            f"{where}: {name} ({kind}) does not take {', '.join(unknown)}; it takes "
            f"{', '.join(sorted(DISTRIBUTIONS[kind]))}."
        )
    if kind == "categorical":
        choices = settings.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigurationError(f"{where}: {name} (categorical) needs choices, a non-empty list.")
        return Parameter(name, kind, settings)
    number = int if kind == "int" else (int, float)
    for key in ("low", "high"):
        value = settings.get(key)
        if not isinstance(value, number) or isinstance(value, bool):
            raise ConfigurationError(
                f"{where}: {name} ({kind}) needs {key}, {'an integer' if kind == 'int' else 'a number'}."
            )
    low, high, log, step = settings["low"], settings["high"], settings.get("log", False), settings.get("step")
    if low > high:
        raise ConfigurationError(f"{where}: {name} has low {low} > high {high}; write the smaller value as low.")
    if log is True and low <= 0:
        raise ConfigurationError(
            f"{where}: {name} is sampled on a log scale (log: true), so low must be > 0, not {low}."
        )
    if step is not None and (log is True or not isinstance(step, number) or isinstance(step, bool) or step <= 0):
        raise ConfigurationError(f"{where}: {name}: step must be a positive {kind}, and cannot go with log: true.")
    if not isinstance(log, bool):
        raise ConfigurationError(f"{where}: {name}: log is true or false, not {log!r}.")
    return Parameter(name, kind, settings)


def _check_name(name: str, arguments: list[str], class_path: str, where: str) -> None:
    if name == "seed":
        raise ConfigurationError(f"{where}: seed cannot be searched; --seeds sets the seeds of every trial.")
    if name not in arguments:
        close = difflib.get_close_matches(name, arguments, n=1)
        raise ConfigurationError(
            f"{where}: {name} is not an argument of {class_path}"
            + (f"; did you mean {close[0]}?" if close else f" (see rl-lightning fit --model {class_path} --help).")
        )


def load_search(path: Path, class_path: str) -> SearchSpace:
    """Read and check a search space file::

        params:                    # model.init_args.<name>: a distribution
          learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
          gradient_steps: {type: int, low: 16, high: 256, log: true}
          batch_size: {type: categorical, choices: [32, 64, 128]}
        sampler:                   # optional, default optuna.samplers.TPESampler
          class_path: optuna.samplers.TPESampler
          init_args: {seed: 0}
        pruner:                    # optional, default MedianPruner (see tune's --help)
          class_path: optuna.pruners.MedianPruner
          init_args: {n_startup_trials: 5, n_warmup_steps: 10000}

    Raises:
        ConfigurationError: a name that is not an argument of ``class_path``, an unknown distribution type, a range
            with low > high or a log range with low <= 0, or a sampler or pruner that is not one.
    """
    where = str(path)
    if not path.is_file():
        raise ConfigurationError(f"--search {path}: no such file.")
    content = yaml.safe_load(path.read_text()) or {}
    unknown = (
        sorted(set(content) - {"params", "sampler", "pruner"}) if isinstance(content, dict) else ["(not a mapping)"]
    )
    if unknown:
        raise ConfigurationError(f"{where}: the sections are params, sampler and pruner; {', '.join(unknown)} is none.")
    params = content.get("params")
    if not isinstance(params, dict) or not params:
        raise ConfigurationError(f"{where}: params is empty; name at least one model argument and its distribution.")
    arguments = init_arguments(class_path)
    parameters = []
    for name, spec in params.items():
        _check_name(str(name), arguments, class_path, where)
        parameters.append(_check_distribution(str(name), spec, where))
    optuna = require_optuna()
    sampler, pruner = content.get("sampler") or DEFAULT_SAMPLER, content.get("pruner")
    for spec, base, role in (
        (sampler, optuna.samplers.BaseSampler, "sampler"),
        (pruner, optuna.pruners.BasePruner, "pruner"),
    ):
        if spec is not None:
            if not isinstance(spec, dict):
                raise ConfigurationError(f"{where}: {role} is a mapping with class_path and init_args.")
            build_optuna_object(spec, base, f"{where}: {role}")
    return SearchSpace(parameters, sampler, pruner)


def default_pruner(total_timesteps: Any) -> dict[str, Any]:
    """Optuna's median rule as RL Baselines3 Zoo sets it: no pruning in the first 5 trials, nor in the first third of
    a trial's first seed (early evaluations say little), where ``total_timesteps`` is known."""
    warmup = int(float(total_timesteps)) // 3 if total_timesteps is not None else 0
    return {"class_path": "optuna.pruners.MedianPruner", "init_args": {"n_startup_trials": 5, "n_warmup_steps": warmup}}


# ------------------------------------------------------------------------------------------------ the study
def open_storage(url: str) -> Any:
    """The study's storage, with heartbeats (a killed worker's trials become failed ones), or why it cannot open."""
    optuna = require_optuna()
    try:
        with warnings.catch_warnings():  # Optuna calls heartbeats experimental; tune uses only their documented use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
    except Exception as error:  # sqlalchemy's and the database drivers' errors have no common base
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigurationError(
            f"--storage {url}: cannot open it ({reason}). Give an Optuna RDB URL whose database can be opened, e.g. "
            f"sqlite:///study.db (in an existing folder) or postgresql://user@host/db."
        ) from None


def _trials_held(storage: Any, study_name: str) -> int:
    """How many trials the study already holds in ``storage`` (0 for a new study)."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


def reseeded(sampler: dict[str, Any], held: int) -> dict[str, Any]:
    """The sampler's spec with its ``seed`` (if any) moved on by the ``held`` trials of the study.

    A seeded sampler started again would draw the same values again: a resumed study's first new trials would
    repeat its first ones (all of them, with a random sampler). Seeding with ``seed + held`` keeps a resumed
    study reproducible without that.
    """
    init_args = sampler.get("init_args") or {}
    if init_args.get("seed") is None or held == 0:
        return sampler
    return {**sampler, "init_args": {**init_args, "seed": init_args["seed"] + held}}


def check_study_space(study: Any, search: SearchSpace, where: str) -> None:
    """Refuse a search space that the study's trials cannot go on with: a parameter sampled before from another kind
    of distribution, on another scale (log or not), or, for a categorical, from other choices (Optuna refuses
    each of these at the first trial of the resumed study, which would fail them all)."""
    optuna = require_optuna()
    for parameter in search.parameters:
        new = parameter.distribution()
        for trial in study.get_trials(deepcopy=False):
            old = trial.distributions.get(parameter.name)
            if old is None:
                continue
            try:
                optuna.distributions.check_distribution_compatibility(old, new)
            except ValueError:
                raise ConfigurationError(
                    f"{where}: study {study.study_name} sampled {parameter.name} from {old} (trial {trial.number}); "
                    f"{new} cannot go on with it. Keep the study's distribution, or start a new study (--study_name)."
                ) from None
            break


def _value_argument(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _format(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}" for name, value in params.items()
    )


class TrialFailed(Exception):
    """A seed of the trial failed: the trial is recorded as failed and the study goes on."""


@dataclass
class Tuner:
    """What every trial shares: the command line of ``fit``, the seeds, the study and where the runs go."""

    fit_args: list[str]
    search: SearchSpace
    pruner: dict[str, Any]
    seeds: list[int]
    root: Path
    storage_url: str
    study_name: str
    config: Path
    wandb: bool
    command: str

    def __post_init__(self) -> None:
        self.failed: list[int] = []
        self.stop = threading.Event()
        """Set on Ctrl-C or SIGTERM: the trials running in other threads stop their seeds, and no trial starts."""
        self._lock = threading.Lock()

    def trial_arguments(self, number: int, params: dict[str, Any]) -> list[str]:
        """``fit``'s command line for trial ``number``: the sampled values, the pruning callback, the trial's folder."""
        callback = {
            "class_path": "rl_lightning.callbacks.pruning.TrialPruning",
            "init_args": {
                "storage": self.storage_url,
                "study_name": self.study_name,
                "trial_number": number,
                "seeds": self.seeds,
                "pruner": self.pruner,
            },
        }
        arguments = [*self.fit_args]
        for name, value in params.items():
            arguments.append(f"--model.init_args.{name}={_value_argument(value)}")
        arguments.append(f"--trainer.callbacks+={json.dumps(callback)}")
        if self.wandb:  # the trials' W&B runs sit together, under the study's name
            arguments.append(f"--trainer.logger.init_args.group={self.study_name}")
        return [*arguments, "--trainer.default_root_dir", str(self.root / f"trial_{number}")]

    def objective(self, trial: Any) -> float:
        """Run the trial's seeds one after another; the mean of their final evaluations."""
        optuna = require_optuna()
        if self.stop.is_set():
            raise KeyboardInterrupt
        params = {parameter.name: parameter.suggest(trial) for parameter in self.search.parameters}
        folder = self.root / f"trial_{trial.number}"
        _say(f"trial {trial.number}: {_format(params)}; seeds {', '.join(map(str, self.seeds))} into {folder}")
        for run in seed_runs(self.trial_arguments(trial.number, params), self.seeds, folder):
            if run_local([run], parallel=1, stop=self.stop):
                self.failed.append(trial.number)
                _say(f"trial {trial.number}: FAILED (seed {run.seed}, see {run.log})")
                raise TrialFailed(f"seed {run.seed} failed")
            attributes = self._attributes(trial)
            if PRUNED in attributes:
                where = attributes[PRUNED]
                _say(f"trial {trial.number}: pruned at seed {where['seed']}, {where['env_steps']:,} env steps")
                raise optuna.TrialPruned()
        finals = []
        for seed in self.seeds:
            if seed_key(seed) not in attributes:
                self.failed.append(trial.number)
                _say(f"trial {trial.number}: FAILED (seed {seed} logged no {MONITOR}: is evaluation switched off?)")
                raise TrialFailed(f"seed {seed} has no evaluation")
            finals.append(attributes[seed_key(seed)][MONITOR])
        value = sum(finals) / len(finals)
        listed = ", ".join(f"{final:.1f}" for final in finals)
        _say(
            f"trial {trial.number}: {value:.1f} (mean final {MONITOR} of seeds "
            f"{', '.join(map(str, self.seeds))}: {listed})"
        )
        return value

    @staticmethod
    def _attributes(trial: Any) -> dict[str, Any]:
        """The trial's user attributes as its runs' processes left them in the storage."""
        return next(
            frozen for frozen in trial.study.get_trials(deepcopy=False) if frozen.number == trial.number
        ).user_attrs

    def write_best(self, study: Any, *_: Any) -> Path | None:
        """``<root>/best.yaml``: the config file with the best trial's values (after every trial, and at the end)."""
        optuna = require_optuna()
        if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            return None
        best = study.best_trial
        values = {
            parameter.name: parameter.suggest(optuna.trial.FixedTrial(best.params))
            for parameter in self.search.parameters
        }
        config = yaml.safe_load(self.config.read_text())
        config["model"].setdefault("init_args", {}).update(values)
        config.setdefault("trainer", {})["default_root_dir"] = str(self.root / "best")
        header = (
            f"# The best trial of Optuna study {self.study_name!r} ({self.storage_url}): trial {best.number}, "
            f"mean final {MONITOR} {best.value:.1f} over seeds {', '.join(map(str, self.seeds))}.\n"
            f"# {self.config} with {_format(values)}.\n"
            f"# The study: {self.command}\n"
            f"# Run: rl-lightning fit --config {self.root / 'best.yaml'}\n"
        )
        path = self.root / "best.yaml"
        with self._lock:
            partial = path.with_suffix(".yaml.partial")
            partial.write_text(header + yaml.safe_dump(config, sort_keys=False))
            partial.replace(path)
        return path


# ------------------------------------------------------------------------------------------------ entry point
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rl-lightning tune --config CONFIG.yaml",
        allow_abbrev=False,
        description="Hyperparameter search with Optuna: each trial runs `rl-lightning fit --config CONFIG` with "
        "sampled model arguments, once per seed. Every option not listed here goes to each fit (e.g. "
        "--model.init_args.total_timesteps 20000).",
    )
    parser.add_argument("--search", required=True, help="the search space YAML (params, optional sampler and pruner)")
    parser.add_argument(
        "--trials", type=int, default=20, help="complete or pruned trials the study should hold (default 20)"
    )
    parser.add_argument("--seeds", default="0", help="the seeds of every trial, as fit --seeds takes them (default 0)")
    parser.add_argument("--parallel", type=int, default=1, help="trials running at a time (default 1)")
    parser.add_argument("--storage", help="an Optuna RDB storage URL (default sqlite:///<root>/study.db)")
    parser.add_argument("--study_name", help="the study's name in the storage (default: the search file's name)")
    return parser


def _check_fit_options(fit_args: list[str], search: SearchSpace) -> None:
    """Refuse the options of ``fit`` that the trials set themselves."""
    if option_values(fit_args, "--ckpt_path"):
        raise ConfigurationError("rl-lightning tune starts every trial's runs afresh: leave out --ckpt_path.")
    check_fit_args(fit_args)
    given = explicit_model_options(fit_args) & {parameter.name for parameter in search.parameters}
    if given:
        raise ConfigurationError(
            f"{', '.join(sorted(given))} is searched, so the trials set it: leave out "
            f"--model.init_args.{sorted(given)[0]}."
        )


def _model_class(fit_args: list[str]) -> tuple[Path, str]:
    """The one config file of the command line, and its algorithm's class path."""
    configs = option_values(fit_args, "--config", "-c")
    if len(configs) != 1:
        raise ConfigurationError(
            "rl-lightning tune needs one --config, the experiment whose model arguments are searched."
        )
    config = Path(configs[0])
    if not config.is_file():
        raise ConfigurationError(f"--config {config}: no such file.")
    content = yaml.safe_load(config.read_text()) or {}
    model = content.get("model") if isinstance(content, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("class_path"), str):
        raise ConfigurationError(f"--config {config}: tune needs model.class_path (the algorithm) in the config file.")
    return config, model["class_path"]


def main(argv: list[str]) -> int:
    """``rl-lightning tune ...``; returns the exit status: 0, or 1 when a trial of this run failed."""
    options, rest = _parser().parse_known_args(argv)
    if options.trials < 1 or options.parallel < 1:
        raise ConfigurationError("--trials and --parallel must be at least 1.")
    seeds = parse_seeds(options.seeds)
    fit_args = ["fit", *rest]
    config, class_path = _model_class(fit_args)
    search = load_search(Path(options.search), class_path)
    _check_fit_options(fit_args, search)
    optuna = require_optuna()
    study_name = options.study_name or Path(options.search).stem
    roots = option_values(fit_args, "--trainer.default_root_dir")
    root = Path(roots[-1]) if roots else Path("runs") / "tune" / study_name
    storage_url = options.storage or f"sqlite:///{root / 'study.db'}"
    total_timesteps = config_value(
        fit_args, "model", "total_timesteps", ("--model.init_args.total_timesteps", "--model.total_timesteps")
    )
    pruner = search.pruner or default_pruner(total_timesteps)
    logger = config_value(fit_args, "trainer", "logger", ("--trainer.logger",))
    if options.storage is None:
        root.mkdir(parents=True, exist_ok=True)
    storage = open_storage(storage_url)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # tune says what happens, a line per event
    sampler = reseeded(search.sampler, _trials_held(storage, study_name))
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        sampler=build_optuna_object(sampler, optuna.samplers.BaseSampler, "sampler"),
        pruner=build_optuna_object(pruner, optuna.pruners.BasePruner, "pruner"),
        direction="maximize",
        load_if_exists=True,
    )
    check_study_space(study, search, options.search)
    command = shlex.join(["rl-lightning", "tune", *argv])
    tuner = Tuner(
        fit_args, search, pruner, seeds, root, storage_url, study_name, config, "Wandb" in str(logger), command
    )
    counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=counted))
    if done >= options.trials:
        _say(
            f"study {study_name} ({storage_url}) holds {done} complete or pruned trials of {options.trials}: "
            f"nothing to do."
        )
    else:
        _say(
            f"rl-lightning tune: study {study_name} in {storage_url}: {done} of {options.trials} trials done; "
            f"{options.parallel} at a time, each over seeds {', '.join(map(str, seeds))}, into {root}/trial_<N>"
        )
        try:
            with _stopping_on_signals(tuner.stop):
                study.optimize(
                    tuner.objective,
                    n_trials=options.trials - done,
                    n_jobs=options.parallel,
                    catch=(TrialFailed,),
                    callbacks=[optuna.study.MaxTrialsCallback(options.trials, states=counted), tuner.write_best],
                )
        except KeyboardInterrupt:
            _say("interrupted: the same command goes on with the study (the interrupted trials count as failed).")
            return 130
    return _summary(study, tuner, options.trials)


@contextlib.contextmanager
def _stopping_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C or SIGTERM sets ``stop`` and raises KeyboardInterrupt here. Optuna runs parallel trials in threads of
    its own, which a signal does not reach: ``stop`` tells them to end their seeds' processes and start no trial."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        stop.set()
        raise KeyboardInterrupt

    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _summary(study: Any, tuner: Tuner, trials: int) -> int:
    optuna = require_optuna()
    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    counts = ", ".join(
        f"{states.count(state)} {state.name.lower()}" for state in optuna.trial.TrialState if state in states
    )
    _say(f"study {tuner.study_name}: {len(states)} trials ({counts}).")
    best = tuner.write_best(study)
    if best is not None:
        trial = study.best_trial
        _say(
            f"best: trial {trial.number}, {trial.value:.1f}, with {_format(trial.params)}; its config is {best} "
            f"(rl-lightning fit --config {best} --seeds 0-4 to confirm it on new seeds)."
        )
    else:
        _say("no trial has completed yet: no best config.")
    if tuner.failed:
        _say(
            f"{len(tuner.failed)} trial(s) failed ({', '.join(map(str, sorted(tuner.failed)))}): see fit.log in their "
            f"folders; the same command runs new trials in their place, up to {trials}."
        )
        return 1
    return 0
