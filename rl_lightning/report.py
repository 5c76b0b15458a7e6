"""``rl-lightning report RUNS... [--out DIR]``: aggregate results over seeds, with honest uncertainty.

Reads every run found under the given paths: the CSV logs that ``rl-lightning fit`` writes
(``<default_root_dir>/lightning_logs/version_N/metrics.csv`` beside ``hparams.yaml``) and W&B runs recorded locally
(``wandb/offline-run-*``, read without the network). Then:

- **A run is one seed.** The pieces of a resumed run (``version_0``, ``version_1``, ... of one ``lightning_logs``
  folder, or the W&B runs of one ``wandb`` folder, with the same algorithm, env and seed) are joined in order; where
  a later piece starts at or before an env step an earlier one reached (a resume from an older checkpoint, or a
  fresh start in the same folder), the later piece's evaluations replace the earlier ones from there on.
- **A group is one configuration**: the runs of the same algorithm, env and hyperparameters, all but the seed, so a
  ``learning_rate`` variant is never averaged with the default. A group is named by its algorithm, followed by the
  hyperparameters that tell it apart from the other groups of that algorithm on that env.
- **Per group**: the number of seeds and the final and best deterministic return (``val/return_mean``) as an
  interquartile mean (IQM: the mean of the middle half of the seeds, robust to one outlier seed) with a 95%
  stratified bootstrap confidence interval, both computed with rliable (Agarwal et al., "Deep RL at the Edge of the
  Statistical Precipice", NeurIPS 2021). *Final* is each seed's last evaluation; *best* each seed's highest, which
  evaluation noise biases upward.
- **curves.png**: ``val/return_mean`` against env steps, the IQM over seeds with a 95% bootstrap band, one line per
  group, one panel per env.
- **Several envs** (tasks): the final returns are normalised per env, ``(return - low) / (high - low)``, with the
  range of ``--score_range ENV=LOW:HIGH`` where given, else the return range of a classic control env
  (:data:`RETURN_RANGES`), else the lowest and highest final return among the runs given on that env. For each
  method (a group's name, matched across envs) the IQM of the normalised scores over all runs and envs is printed
  with its CI, and **profiles.png** draws rliable's performance profiles: the fraction of runs whose normalised
  score exceeds each threshold.

Needs ``pip install "rl-lightning[rliable]"``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rl_lightning.errors import ConfigurationError

METRIC = "val/return_mean"
"""The deterministic evaluation return that every rl-lightning algorithm logs after each epoch."""

RETURN_RANGES: dict[str, tuple[float, float]] = {
    "CartPole-v0": (0.0, 200.0),  # +1 per step, 200-step limit
    "CartPole-v1": (0.0, 500.0),  # +1 per step, 500-step limit
    "Acrobot-v1": (-500.0, 0.0),  # -1 per step until the goal, 500-step limit
    "MountainCar-v0": (-200.0, 0.0),  # -1 per step until the goal, 200-step limit
    "Pendulum-v1": (-200 * (math.pi**2 + 0.1 * 8**2 + 0.001 * 2**2), 0.0),  # 200 steps of the largest cost, 16.27
}
"""The lowest and highest return an episode of these classic control envs can have (not always reachable): the
range that normalises their scores across envs, unless ``--score_range`` gives another."""

DEFAULT_REPS = 10_000
"""Bootstrap resamples behind each confidence interval."""

BOOTSTRAP_SEED = 0
"""The bootstrap's resamples are drawn from this seed, so that the same runs give the same report."""

FEW_SEEDS = 5
"""Below this many seeds a bootstrap interval is little more than the range of the seeds (said in the report)."""

_NOT_HYPERPARAMETERS = {"seed"}
"""Keys of a run's config that vary between the seeds of one configuration."""


def _note(message: str) -> None:
    print(f"rl-lightning report: note: {message}", file=sys.stderr)


# ------------------------------------------------------------------------------------------------ reading runs
class _HparamsLoader(yaml.SafeLoader):
    """Reads Lightning's ``hparams.yaml``, whose Python-specific tags (tuples, objects) become plain values."""


def _plain_value(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return loader.construct_scalar(node)


_HparamsLoader.add_multi_constructor("tag:yaml.org,2002:python/", _plain_value)


def read_hparams(path: Path) -> dict[str, Any]:
    """A Lightning ``hparams.yaml`` as plain Python values (an empty dict for an empty file)."""
    return yaml.load(path.read_text(), Loader=_HparamsLoader) or {}


@dataclass
class Piece:
    """What one logger run recorded: a whole run, or one part of a resumed one."""

    folder: Path
    """The folder whose pieces belong together: the ``lightning_logs`` or ``wandb`` folder."""
    order: tuple[int, str]
    """Sorts the pieces of a folder by when they ran (version number, or W&B's start time)."""
    config: dict[str, Any]
    env_steps: np.ndarray
    returns: np.ndarray
    source: Path


@dataclass
class Run:
    """One seed of one configuration: its evaluations against env steps, from one or more pieces."""

    algorithm: str
    env_id: str
    seed: int | None
    hyperparameters: dict[str, Any]
    env_steps: np.ndarray
    returns: np.ndarray
    sources: list[Path]

    @property
    def final(self) -> float:
        return float(self.returns[-1])

    @property
    def best(self) -> float:
        return float(self.returns.max())


def _points(rows: Iterable[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, returns) of the rows that hold both, sorted by env step; rows that are not numbers are skipped (the
    last line of a log being written)."""
    points = []
    for row in rows:
        try:
            points.append((float(row["env_steps"]), float(row[METRIC])))
        except (KeyError, TypeError, ValueError):
            continue
    points.sort()
    return np.array([p[0] for p in points]), np.array([p[1] for p in points])


def read_csv_piece(metrics_csv: Path) -> Piece | None:
    """A Lightning ``CSVLogger`` version folder: ``metrics.csv`` and the ``hparams.yaml`` beside it."""
    hparams = metrics_csv.with_name("hparams.yaml")
    if not hparams.is_file():
        _note(f"{metrics_csv.parent}: no hparams.yaml beside metrics.csv, so no algorithm or env; left out")
        return None
    with open(metrics_csv, newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get(METRIC)]
    version = re.fullmatch(r"version_(\d+)", metrics_csv.parent.name)
    order = (int(version.group(1)) if version else -1, metrics_csv.parent.name)
    return Piece(metrics_csv.parent.parent, order, read_hparams(hparams), *_points(rows), source=metrics_csv.parent)


def read_wandb_piece(run_file: Path) -> Piece:
    """A W&B run recorded locally (``wandb/offline-run-<time>-<id>/run-<id>.wandb``)."""
    from rl_lightning.loggers import read_wandb_offline_run

    run = read_wandb_offline_run(run_file)
    started = run_file.parent.name.partition("run-")[2]  # offline-run-20260101_120000-<id>: sorts by start time
    return Piece(run_file.parent.parent, (0, started), run.config, *_points(run.history), source=run_file.parent)


def _read_piece(file: Path) -> Piece | None:
    """The piece recorded in ``metrics.csv`` or a ``run-*.wandb`` file; None (with a note) where it cannot be read."""
    try:
        return read_csv_piece(file) if file.name == "metrics.csv" else read_wandb_piece(file)
    except (OSError, ValueError, yaml.YAMLError, csv.Error) as error:
        _note(f"{file}: could not be read ({type(error).__name__}: {error}); left out")
        return None


def _identity(config: dict[str, Any]) -> tuple[str, str, int | None]:
    """(algorithm, env id, seed), which ``RLAlgorithm.run_description`` logs into every run's config."""
    seed = config.get("seed")
    return str(config.get("algorithm", "")), str(config.get("env_id", "")), None if seed is None else int(seed)


def join_pieces(pieces: Sequence[Piece]) -> Run:
    """One run from its pieces, in the order they ran: each replaces what came before from its first env step on."""
    pieces = sorted(pieces, key=lambda piece: piece.order)
    steps, returns = np.array([]), np.array([])
    for piece in pieces:
        if len(piece.env_steps) == 0:
            continue
        kept = steps < piece.env_steps[0]
        steps = np.concatenate([steps[kept], piece.env_steps])
        returns = np.concatenate([returns[kept], piece.returns])
    last = pieces[-1].config
    algorithm, env_id, seed = _identity(last)
    hyperparameters = {
        key: value for key, value in last.items() if key not in _NOT_HYPERPARAMETERS and not key.startswith("_")
    }
    return Run(algorithm, env_id, seed, hyperparameters, steps, returns, [piece.source for piece in pieces])


def find_runs(paths: Sequence[Path]) -> list[Run]:
    """Every run under ``paths`` (run folders, or folders holding runs, searched recursively) with evaluations.

    Raises:
        ConfigurationError: a path does not exist, holds no runs, or holds none that logged ``val/return_mean``.
    """
    read: dict[Path, Piece | None] = {}  # by file: a run under two of the paths given counts once
    for path in paths:
        if not path.exists():
            raise ConfigurationError(f"{path} does not exist.")
        files = sorted({*path.rglob("metrics.csv"), *path.rglob("run-*.wandb")} if path.is_dir() else {path})
        found = []
        for file in files:
            if file.resolve() not in read:
                piece = _read_piece(file)
                if piece is not None and "" in _identity(piece.config)[:2]:
                    _note(f"{piece.source}: no algorithm or env_id in its config, so not an rl-lightning run; left out")
                    piece = None
                read[file.resolve()] = piece
            if read[file.resolve()] is not None:
                found.append(read[file.resolve()])
        if not found:
            raise ConfigurationError(
                f"{path} holds no runs: `rl-lightning report` reads what `rl-lightning fit` writes, "
                f"<default_root_dir>/lightning_logs/version_N/metrics.csv (with hparams.yaml) or W&B's "
                f"wandb/offline-run-*/run-*.wandb. Give the folder of a run, or one that holds runs."
            )
        if all(len(piece.env_steps) == 0 for piece in found):
            raise ConfigurationError(
                f"the runs under {path} logged no {METRIC}: it is logged at each epoch's end by the deterministic "
                f"evaluation, which needs eval_episodes > 0 and at least one finished epoch."
            )
    pieces: dict[tuple[Path, str, str, int | None], list[Piece]] = defaultdict(list)
    for piece in read.values():
        if piece is not None:
            pieces[(piece.folder, *_identity(piece.config))].append(piece)
    runs = [join_pieces(group) for group in pieces.values()]
    for run in runs:
        if len(run.env_steps) == 0:
            _note(f"{', '.join(map(str, run.sources))}: no {METRIC} logged; left out")
    return [run for run in runs if len(run.env_steps) > 0]


# ------------------------------------------------------------------------------------------------ grouping
def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@dataclass
class Group:
    """The seeds of one configuration: one algorithm, env and set of hyperparameters."""

    algorithm: str
    env_id: str
    hyperparameters: dict[str, Any]
    runs: list[Run]
    label: str = ""
    """The algorithm, then what tells this group apart from the others of that algorithm (see :func:`label_groups`)."""
    variant: tuple[str, ...] = ()
    """Its values of the hyperparameters that tell the algorithm's groups apart: the same on every env."""
    stats: dict[str, Any] = field(default_factory=dict)


def _differences(groups: list[Group]) -> list[str]:
    keys = sorted({key for group in groups for key in group.hyperparameters})
    return [key for key in keys if len({_canonical(group.hyperparameters.get(key)) for group in groups}) > 1]


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else _canonical(value)
    return text if len(text) <= 24 else text[:21] + "..."


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs grouped by algorithm, env and hyperparameters; one run per seed in each (of two runs of a seed, e.g.
    logged both as CSV and to W&B, the one with more evaluations), sorted by seed."""
    groups: dict[tuple[str, str, str], Group] = {}
    for run in runs:
        key = (run.algorithm, run.env_id, _canonical(run.hyperparameters))
        group = groups.setdefault(key, Group(run.algorithm, run.env_id, run.hyperparameters, []))
        twin = next((other for other in group.runs if other.seed == run.seed), None)
        if twin is None:
            group.runs.append(run)
            continue
        kept, dropped = sorted((twin, run), key=lambda r: -len(r.env_steps))
        _note(f"two runs of {run.algorithm} on {run.env_id} with seed {run.seed}: {dropped.sources[0]} left out")
        group.runs[group.runs.index(twin)] = kept
    for group in groups.values():
        group.runs.sort(key=lambda run: (run.seed is None, run.seed or 0))
    label_groups(list(groups.values()))
    return sorted(groups.values(), key=lambda group: (group.env_id, group.label))


def label_groups(groups: list[Group]) -> None:
    """Name each group: its algorithm, then its values of the hyperparameters in which the groups of that algorithm on
    one env differ. The same keys name an algorithm's groups on every env, so a configuration keeps its name (and its
    ``variant``) across envs. The first three keys are spelled out, or all of them where three do not tell an
    algorithm's groups apart."""
    siblings: dict[tuple[str, str], list[Group]] = defaultdict(list)
    for group in groups:
        siblings[(group.algorithm, group.env_id)].append(group)
    variant_keys: dict[str, list[str]] = defaultdict(list)
    for (algorithm, _), same in siblings.items():
        variant_keys[algorithm] = sorted({*variant_keys[algorithm], *_differences(same)})

    def name(group: Group, shown: int) -> str:
        keys = variant_keys[group.algorithm]
        named = ", ".join(f"{key}={_short(group.hyperparameters.get(key))}" for key in keys[:shown])
        more = f" (+{len(keys) - shown} more)" if len(keys) > shown else ""
        return f"{group.algorithm} {named}{more}" if named else group.algorithm

    for group in groups:
        group.variant = tuple(_canonical(group.hyperparameters.get(key)) for key in variant_keys[group.algorithm])
    for algorithm in {group.algorithm for group in groups}:
        mine = [group for group in groups if group.algorithm == algorithm]
        variants = {group.variant for group in mine}
        shown = 3 if len({name(group, 3) for group in mine}) == len(variants) else len(variant_keys[algorithm])
        for group in mine:
            group.label = name(group, shown)


def parse_labels(values: Sequence[str]) -> dict[Path, str]:
    """``FOLDER=NAME`` pairs (``--label``): the folders, resolved, and the names their runs' groups take."""
    labels: dict[Path, str] = {}
    for value in values:
        folder, separator, name = value.partition("=")
        if not separator or not folder or not name.strip():
            raise ConfigurationError(f"--label {value}: expected FOLDER=NAME, e.g. runs/dqn_cartpole=DQN.")
        labels[Path(folder).resolve()] = name.strip()
    return labels


def apply_labels(groups: list[Group], labels: dict[Path, str]) -> None:
    """Name a group by ``labels``' name for the folder that holds every one of its runs (the configuration-derived
    name stays for a group whose runs lie in no labelled folder, or in several). The same name may be given to the
    folders of one configuration on several envs, which the comparison across envs then matches."""

    def folder_of(run: Run) -> Path | None:
        found = {folder for folder in labels for source in run.sources if folder in source.resolve().parents}
        return max(found, key=lambda folder: len(folder.parts)) if found else None  # the innermost

    for group in groups:
        folders = {folder_of(run) for run in group.runs}
        if len(folders) == 1 and None not in folders:
            group.label = labels[folders.pop()]
            group.variant = (f"label={group.label}",)  # matched by name across envs
    names = defaultdict(list)
    for group in groups:
        names[(group.env_id, group.label)].append(group)
    clashing = [label for (_, label), same in names.items() if len(same) > 1]
    if clashing:
        raise ConfigurationError(
            f"--label: the name {clashing[0]!r} was given to runs of different configurations on one env; give each "
            f"configuration its own name."
        )


# ------------------------------------------------------------------------------------------------ statistics
def _rliable() -> Any:
    """rliable's ``library`` module, or the command that installs it."""
    try:
        from rliable import library
    except (ImportError, TypeError) as error:  # TypeError: arch 7 (which rliable pins) under pandas 3
        raise ConfigurationError(
            f"`rl-lightning report` computes its statistics with rliable, which could not be imported "
            f'({type(error).__name__}: {error}): pip install "rl-lightning[rliable]"'
        ) from None
    return library


def interval_estimates(
    scores: dict[str, np.ndarray], statistic: Callable[[np.ndarray], np.ndarray], reps: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """rliable's point estimates and 95% stratified bootstrap intervals of ``statistic`` over ``scores[name]`` (runs x
    tasks [x ...]), resampled from :data:`BOOTSTRAP_SEED`.

    rliable draws its resamples from numpy's global generator, whatever ``random_state`` it is given: that generator
    is seeded here and put back as it was afterwards.
    """
    library = _rliable()
    state = np.random.get_state()
    np.random.seed(BOOTSTRAP_SEED)
    try:
        return library.get_interval_estimates(scores, statistic, reps=reps)
    finally:
        np.random.set_state(state)


def iqm(scores: np.ndarray) -> np.ndarray:
    """The interquartile mean over all runs and tasks of ``scores``, as the 1-element array rliable's bootstrap expects.

    The same as rliable's ``aggregate_iqm`` (scipy's ``trim_mean``, cutting a quarter of the values, rounded down,
    from each end), computed more directly: the bootstrap calls it thousands of times, and ``trim_mean``'s checks
    took nine tenths of the time.
    """
    values = np.sort(scores, axis=None)
    cut = int(0.25 * values.size)
    return np.array([values[cut : values.size - cut].mean()])


def iqm_over_runs(scores: np.ndarray) -> np.ndarray:
    """The interquartile mean at each point of a curve: ``scores`` is runs x tasks x points, the result has one value
    per point, :func:`iqm` of each ``scores[..., t]``, computed for all points at once."""
    values = np.sort(scores.reshape(-1, scores.shape[-1]), axis=0)
    cut = int(0.25 * len(values))
    return values[cut : len(values) - cut].mean(axis=0)


def score_distribution(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """rliable's run score distribution (the fraction of all runs' scores above each ``tau``), for all ``taus`` at
    once: rliable's default evaluates one threshold at a time."""
    return (scores.reshape(-1, 1) > taus.reshape(1, -1)).mean(axis=0)


def summarise(groups: list[Group], reps: int) -> None:
    """Fill each group's ``stats``: final and best returns, their IQMs and 95% intervals, and the env steps reached."""
    final = {str(index): np.array([[run.final] for run in g.runs]) for index, g in enumerate(groups)}
    best = {str(index): np.array([[run.best] for run in g.runs]) for index, g in enumerate(groups)}
    final_iqm, final_ci = interval_estimates(final, iqm, reps)
    best_iqm, best_ci = interval_estimates(best, iqm, reps)
    for index, group in enumerate(groups):
        key = str(index)
        group.stats = {
            "seeds": len(group.runs),
            "final_iqm": float(final_iqm[key][0]),
            "final_ci": (float(final_ci[key][0, 0]), float(final_ci[key][1, 0])),
            "best_iqm": float(best_iqm[key][0]),
            "best_ci": (float(best_ci[key][0, 0]), float(best_ci[key][1, 0])),
            "env_steps": (min(int(r.env_steps[-1]) for r in group.runs), max(int(r.env_steps[-1]) for r in group.runs)),
        }


def common_curve(runs: list[Run]) -> tuple[np.ndarray, np.ndarray]:
    """The runs' evaluations on the env steps that every run reached (runs x points): each run interpolated linearly
    on the union of their evaluation steps within the range they all cover."""
    start = max(run.env_steps[0] for run in runs)
    end = min(run.env_steps[-1] for run in runs)
    grid = np.unique(np.concatenate([run.env_steps for run in runs]))
    grid = grid[(grid >= start) & (grid <= end)]
    return grid, np.stack([np.interp(grid, run.env_steps, run.returns) for run in runs])


# ------------------------------------------------------------------------------------------------ normalisation
def parse_score_ranges(values: Sequence[str]) -> dict[str, tuple[float, float]]:
    """``--score_range ENV=LOW:HIGH`` options as ``{env: (low, high)}``."""
    ranges = {}
    for value in values:
        match = re.fullmatch(r"(.+)=([^:]+):([^:]+)", value)
        try:
            low, high = (float(match.group(2)), float(match.group(3))) if match else (math.nan, math.nan)
        except ValueError:
            low = high = math.nan
        if not match or not low < high:
            raise ConfigurationError(
                f"--score_range {value}: write ENV=LOW:HIGH with LOW < HIGH, e.g. --score_range Pendulum-v1=-1600:0."
            )
        ranges[match.group(1)] = (low, high)
    return ranges


def score_range(env_id: str, given: dict[str, tuple[float, float]], finals: np.ndarray) -> tuple[float, float, str]:
    """The (low, high) return range that normalises ``env_id``'s scores, and where it comes from."""
    if env_id in given:
        return (*given[env_id], "--score_range")
    if env_id in RETURN_RANGES:
        return (*RETURN_RANGES[env_id], "the env's return range")
    low, high = float(finals.min()), float(finals.max())
    if high == low:
        high = low + 1.0
    return low, high, "the lowest and highest final return among these runs"


def normalised_methods(
    groups: list[Group], given: dict[str, tuple[float, float]]
) -> tuple[dict[str, np.ndarray], list[str], dict[str, tuple[float, float, str]]]:
    """Per method (group label) found on every env, its normalised final scores (runs x envs); the envs; the ranges.

    A method's envs must have as many runs each: where they differ, the first runs by seed are used, as many as the
    env with the fewest has (noted).
    """
    envs = sorted({group.env_id for group in groups})
    ranges = {}
    for env_id in envs:
        finals = np.array([run.final for group in groups if group.env_id == env_id for run in group.runs])
        ranges[env_id] = score_range(env_id, given, finals)
    by_method: dict[tuple[str, tuple[str, ...]], dict[str, Group]] = defaultdict(dict)
    for group in groups:
        by_method[(group.algorithm, group.variant)][group.env_id] = group
    scores = {}
    for per_env in by_method.values():
        label = next(iter(per_env.values())).label
        missing = [env_id for env_id in envs if env_id not in per_env]
        if missing:
            _note(f"{label} has no runs on {', '.join(missing)}: left out of the comparison across envs")
            continue
        count = min(len(per_env[env_id].runs) for env_id in envs)
        if any(len(per_env[env_id].runs) != count for env_id in envs):
            _note(f"{label}: its envs have different numbers of seeds; the first {count} of each are compared")
        columns = []
        for env_id in envs:
            low, high, _ = ranges[env_id]
            columns.append([(run.final - low) / (high - low) for run in per_env[env_id].runs[:count]])
        scores[label] = np.array(columns).T
    return scores, envs, ranges


# ------------------------------------------------------------------------------------------------ figures
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(labels: Iterable[str]) -> dict[str, Any]:
    """One colour per configuration name, the same in every figure and panel."""
    plt = _pyplot()
    return {label: plt.get_cmap("tab10")(index % 10) for index, label in enumerate(sorted(set(labels)))}


def plot_curves(groups: list[Group], output: Path, reps: int) -> None:
    """``curves.png``: per env a panel of ``val/return_mean`` against env steps, each group's IQM with a 95% band."""
    plt = _pyplot()
    from matplotlib.ticker import EngFormatter

    envs = sorted({group.env_id for group in groups})
    columns = min(len(envs), 2)
    rows = math.ceil(len(envs) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(7.0 * columns, 4.6 * rows), squeeze=False)
    colors = _colors(group.label for group in groups)
    for axis, env_id in zip(axes.flat, envs):
        for group in (group for group in groups if group.env_id == env_id):
            steps, values = common_curve(group.runs)
            if len(steps) == 0:
                _note(f"{group.label} on {env_id}: its seeds share no evaluated env step; no curve drawn")
                continue
            point, interval = interval_estimates({"curve": values[:, None, :]}, iqm_over_runs, reps)
            seeds = len(group.runs)
            label = f"{group.label} ({seeds} seed{'s' * (seeds > 1)})"
            color = colors[group.label]
            axis.plot(
                steps,
                point["curve"],
                color=color,
                linewidth=2,
                marker="o" if len(steps) < 12 else None,
                markersize=4,
                label=label,
            )
            axis.fill_between(steps, interval["curve"][0], interval["curve"][1], color=color, alpha=0.2, linewidth=0)
        axis.set_title(env_id, fontsize="large")
        axis.set_xlabel("env steps", fontsize="medium")
        axis.set_ylabel("evaluation return (val/return_mean)", fontsize="medium")
        axis.xaxis.set_major_formatter(EngFormatter(sep=""))  # 20k, 1.5M
        axis.grid(alpha=0.3)
        axis.legend(loc="best", fontsize="small", framealpha=0.9)
    for axis in list(axes.flat)[len(envs) :]:
        axis.set_visible(False)
    figure.suptitle("IQM over seeds; band: 95% stratified bootstrap CI (rliable)", fontsize="medium")
    figure.tight_layout()
    figure.savefig(output, dpi=120)
    plt.close(figure)


def plot_profiles(
    scores: dict[str, np.ndarray], envs: list[str], output: Path, reps: int, colors: dict[str, Any]
) -> None:
    """``profiles.png``: rliable's performance profiles (fraction of runs above each normalised score), 95% bands."""
    plt = _pyplot()
    library = _rliable()
    from rliable import plot_utils

    everything = np.concatenate([values.ravel() for values in scores.values()])
    taus = np.linspace(min(0.0, float(everything.min())), max(1.0, float(everything.max())), 101)
    state = np.random.get_state()
    np.random.seed(BOOTSTRAP_SEED)
    try:
        profiles, intervals = library.create_performance_profile(
            scores, taus, custom_profile_func=score_distribution, reps=reps
        )
    finally:
        np.random.set_state(state)
    figure, axis = plt.subplots(figsize=(7.5, 4.8))
    plot_utils.plot_performance_profiles(
        profiles,
        taus,
        performance_profile_cis=intervals,
        colors=colors,
        ax=axis,
        xlabel=r"normalised final return $\tau$",
        ylabel=r"fraction of runs with score $> \tau$",
        labelsize="medium",
        ticklabelsize="medium",
    )
    runs = {label: values.shape[0] for label, values in scores.items()}
    handles = [plt.Line2D([], [], color=colors[label], linewidth=2) for label in scores]
    axis.legend(handles, [f"{label} ({runs[label]} runs per env)" for label in scores], fontsize="small", loc="best")
    axis.set_title(f"Performance profiles over {len(envs)} envs: {', '.join(envs)}", fontsize="medium")
    figure.tight_layout()
    figure.savefig(output, dpi=120)
    plt.close(figure)


# ------------------------------------------------------------------------------------------------ the report
def _interval(point: float, interval: tuple[float, float], digits: int = 1) -> str:
    return f"{point:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    return [
        "  ".join(
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in [header, *rows]
    ]


def format_report(groups: list[Group], reps: int) -> list[str]:
    """The per-group table and its footnotes."""
    rows = []
    for group in groups:
        stats = group.stats
        low, high = stats["env_steps"]
        rows.append(
            [
                group.env_id,
                group.label,
                str(stats["seeds"]),
                f"{high:,}" if low == high else f"{low:,}-{high:,}",
                _interval(stats["final_iqm"], stats["final_ci"]),
                _interval(stats["best_iqm"], stats["best_ci"]),
            ]
        )
    lines = [
        f"Deterministic evaluation return ({METRIC}) over seeds: IQM [95% CI] (stratified bootstrap, {reps:,} "
        f"resamples)",
        "",
        *_table(["env", "configuration", "seeds", "env steps", "final", "best"], rows, {2, 3}),
        "",
        "final: each seed's last evaluation; best: each seed's highest (biased upward by evaluation noise).",
    ]
    if any(len(set(group.stats["env_steps"])) > 1 for group in groups):
        lines.append("env steps: where the seeds stopped at different steps, their final returns are not comparable.")
    if any(group.stats["seeds"] < FEW_SEEDS for group in groups):
        lines.append(
            f"With fewer than {FEW_SEEDS} seeds, a bootstrap interval is little more than the range of the seeds' "
            f"values and understates the uncertainty: run more seeds (--seeds 0-9)."
        )
    return lines


def format_comparison(
    scores: dict[str, np.ndarray], envs: list[str], ranges: dict[str, tuple[float, float, str]], reps: int
) -> list[str]:
    """The IQM of each method's normalised final scores over all its runs and envs, with the ranges used."""
    point, interval = interval_estimates(scores, iqm, reps)
    rows = [
        [
            label,
            str(values.shape[0]),
            _interval(float(point[label][0]), (interval[label][0, 0], interval[label][1, 0]), digits=3),
        ]
        for label, values in scores.items()
    ]
    lines = [
        "",
        f"Across {len(envs)} envs: normalised final return (return - low) / (high - low), IQM over runs and envs "
        f"[95% CI]",
        "",
        *_table(["configuration", "runs per env", "normalised final"], rows, {1}),
        "",
    ]
    lines += [f"{env_id}: low {low:g}, high {high:g} ({source})" for env_id, (low, high, source) in ranges.items()]
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """``rl-lightning report RUNS... [--out DIR] [--reps N] [--score_range ENV=LOW:HIGH] [--label FOLDER=NAME]``.

    Raises:
        ConfigurationError: bad input (no runs, no evaluations, rliable missing); the CLI prints it and exits with 2.
    """
    parser = argparse.ArgumentParser(
        prog="rl-lightning report",
        description="Final and best evaluation returns over seeds (IQM with 95% bootstrap intervals) and learning "
        "curves, per configuration, from the runs of `rl-lightning fit`.",
    )
    parser.add_argument(
        "runs", nargs="+", type=Path, help="run folders, or folders holding runs (searched recursively)"
    )
    parser.add_argument("--out", type=Path, default=Path("report"), help="where the PNGs go (default ./report)")
    parser.add_argument(
        "--reps", type=int, default=DEFAULT_REPS, help=f"bootstrap resamples per interval (default {DEFAULT_REPS:,})"
    )
    parser.add_argument(
        "--score_range",
        action="append",
        default=[],
        metavar="ENV=LOW:HIGH",
        help="the return range that normalises ENV's scores when several envs are compared (default: known ranges "
        "of classic control envs, else the lowest and highest final return among the runs)",
    )
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="FOLDER=NAME",
        help="name the configuration whose runs all lie under FOLDER (default: the algorithm and the hyperparameters "
        "that set it apart); the same NAME on folders of several envs marks one configuration across them",
    )
    args = parser.parse_args(argv)
    if args.reps < 100:
        raise ConfigurationError(f"--reps {args.reps}: a bootstrap interval needs at least 100 resamples.")
    given_ranges = parse_score_ranges(args.score_range)
    _rliable()  # before reading anything: say at once if the extra is missing

    labels = parse_labels(args.label)
    groups = group_runs(find_runs(args.runs))
    apply_labels(groups, labels)
    groups.sort(key=lambda group: (group.env_id, group.label))
    summarise(groups, args.reps)
    lines = format_report(groups, args.reps)
    args.out.mkdir(parents=True, exist_ok=True)
    figures = [args.out / "curves.png"]
    plot_curves(groups, figures[0], args.reps)
    if len({group.env_id for group in groups}) > 1:
        scores, envs, ranges = normalised_methods(groups, given_ranges)
        if scores:
            lines += format_comparison(scores, envs, ranges, args.reps)
            figures.append(args.out / "profiles.png")
            plot_profiles(scores, envs, figures[1], args.reps, _colors(g.label for g in groups))
        else:
            _note("no configuration has runs on every env: no comparison across envs")
    print("\n".join(lines))
    print(f"\nwrote {', '.join(map(str, figures))}")
