"""Learning curves from training runs: x = env steps, mean and spread over seeds, one panel per environment.

Reads every run found under the given paths: Lightning ``CSVLogger`` folders (``metrics.csv`` beside
``hparams.yaml``; what ``rl-lightning fit`` writes by default) and W&B runs recorded locally
(``wandb/offline-run-*``, read without the network). The logs of a run resumed in its folder
(``<run>/lightning_logs/version_N``, one per start) are joined into one curve. Runs are grouped by their
configuration: the ``algorithm`` and ``env_id`` that every rl-lightning algorithm logs into its run config, and
every hyperparameter but the ``seed`` (and the run's length and evaluation settings); each environment gets a
panel in which the configurations' curves sit side by side, each the mean over its seeds with a band of one
standard deviation, labelled with the algorithm and the hyperparameters in which it differs from the
algorithm's other configurations (``DQN learning_rate=0.001``).

    python scripts/plot_runs.py runs/ --output curves.png
    python scripts/plot_runs.py runs/dqn_cartpole wandb/ --metric train/episode_return --output train.png
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl_lightning.report import read_hparams

DEFAULT_METRIC = "val/return_mean"

NOT_SETTINGS = frozenset(
    {
        "algorithm",
        "env",
        "env_id",
        "seed",
        "total_timesteps",
        "eval_episodes",
        "eval_envs",
        "_class_path",
        "_instantiator",
    }
)
"""Run-config keys that do not tell configurations apart: the identity (grouped separately), the seed (what a
configuration's runs vary), and what does not change training (how long it ran, how it was evaluated)."""

Settings = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Curve:
    """One run's values of one metric against env steps, and its configuration's settings (hyperparameters
    other than :data:`NOT_SETTINGS`, as sorted ``(name, JSON value)`` pairs)."""

    algorithm: str
    env_id: str
    seed: int | None
    env_steps: np.ndarray
    values: np.ndarray
    source: Path
    settings: Settings = ()


def settings_of(config: dict[str, Any]) -> Settings:
    """The settings that tell ``config``'s configuration apart from others of its algorithm and env."""
    return tuple(
        sorted((key, json.dumps(value, sort_keys=True)) for key, value in config.items() if key not in NOT_SETTINGS)
    )


def _identity(config: dict[str, Any], source: Path) -> tuple[str, str, int | None]:
    """(algorithm, env id, seed) from a run's config, which ``RLAlgorithm.run_description`` fills in."""
    algorithm = config.get("algorithm") or str(config.get("_class_path", "?")).rpartition(".")[2]
    env_id = config.get("env_id") or str(config.get("env", "?")).rpartition(":")[2]
    if algorithm == "?" or env_id == "?":
        print(f"warning: {source}: no algorithm or env_id in the run config", file=sys.stderr)
    seed = config.get("seed")
    return algorithm, env_id, None if seed is None else int(seed)


def read_csv_run(metrics_csv: Path, metric: str) -> Curve | None:
    """A Lightning ``CSVLogger`` run: ``metrics.csv`` and the ``hparams.yaml`` beside it."""
    hparams_file = metrics_csv.with_name("hparams.yaml")
    config = read_hparams(hparams_file) if hparams_file.exists() else {}
    with open(metrics_csv, newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get(metric)]
    if not rows:
        return None
    step_column = "env_steps" if "env_steps" in rows[0] else "step"
    points = sorted((float(row[step_column]), float(row[metric])) for row in rows)
    return Curve(
        *_identity(config or {}, metrics_csv),
        *map(np.array, zip(*points)),
        source=metrics_csv.parent,
        settings=settings_of(config or {}),
    )


def read_wandb_run(run_file: Path, metric: str) -> Curve | None:
    """A W&B run recorded locally (its ``run-<id>.wandb`` file)."""
    from rl_lightning.loggers import read_wandb_offline_run

    run = read_wandb_offline_run(run_file)
    points = sorted(
        (float(row["env_steps"]), float(row[metric])) for row in run.history if metric in row and "env_steps" in row
    )
    if not points:
        return None
    return Curve(
        *_identity(run.config, run_file),
        *map(np.array, zip(*points)),
        source=run_file.parent,
        settings=settings_of(run.config),
    )


def run_folder(metrics_csv: Path) -> Path:
    """The run a CSV log belongs to: ``<run>`` for ``<run>/lightning_logs/version_N/metrics.csv`` (rl-lightning's
    one run per folder: each resume of the run logs into a new version), else the log's own folder."""
    version = metrics_csv.parent
    return version.parent.parent if version.parent.name == "lightning_logs" else version


def join_pieces(pieces: list[Curve]) -> Curve:
    """One curve from the logs of a run and its resumes, in the order they ran; where two pieces logged the same
    env step (a run stopped after its last checkpoint replays the steps since), the later piece's value."""
    points: dict[float, float] = {}
    for piece in pieces:
        points.update(zip(piece.env_steps.tolist(), piece.values.tolist()))
    steps = sorted(points)
    first = pieces[0]
    return Curve(
        first.algorithm,
        first.env_id,
        first.seed,
        np.array(steps),
        np.array([points[step] for step in steps]),
        source=run_folder(first.source / "metrics.csv"),
        settings=first.settings,
    )


def _version(metrics_csv: Path) -> tuple[int, str]:
    """Sort key: Lightning's version number (``version_10`` after ``version_9``), else the folder's name."""
    name = metrics_csv.parent.name
    number = name.removeprefix("version_")
    return (int(number), name) if number.isdigit() else (-1, name)


def find_curves(paths: list[Path], metric: str) -> list[Curve]:
    """Every run under ``paths`` that logged ``metric``, the pieces of a resumed run joined; of runs with the same
    algorithm, env, settings and seed (say, one logged both to CSV and to W&B), the one with the most points."""
    curves: dict[tuple[str, str, Settings, int | None], Curve] = {}
    files = set()
    for path in paths:
        if not path.exists():
            raise SystemExit(f"plot_runs.py: error: {path} does not exist")
        for pattern in ("metrics.csv", "run-*.wandb"):
            files.update([path] if path.is_file() and path.match(pattern) else path.rglob(pattern))
    csv_runs: dict[Path, list[Path]] = defaultdict(list)
    found = []
    for file in sorted(files):
        if file.name == "metrics.csv":
            csv_runs[run_folder(file)].append(file)
        else:
            found.append(read_wandb_run(file, metric))
    for logs in csv_runs.values():
        pieces = [piece for piece in (read_csv_run(log, metric) for log in sorted(logs, key=_version)) if piece]
        found.append(join_pieces(pieces) if pieces else None)
    for curve in found:
        if curve is None:
            continue
        key = (curve.algorithm, curve.env_id, curve.settings, curve.seed)
        if key in curves:
            kept = max(curves[key], curve, key=lambda c: len(c.env_steps))
            print(
                f"note: two runs of {curve.algorithm} on {curve.env_id}, seed {curve.seed}, with the same settings; "
                f"plotting {kept.source}",
                file=sys.stderr,
            )
            curve = kept
        curves[key] = curve
    return list(curves.values())


def mean_and_std(curves: list[Curve]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean and standard deviation over seeds on the union of their env steps, each seed interpolated linearly
    within the steps it reached (beyond them it counts as missing); also how many seeds each point has."""
    grid = np.unique(np.concatenate([curve.env_steps for curve in curves]))
    stacked = np.full((len(curves), len(grid)), np.nan)
    for row, curve in zip(stacked, curves):
        inside = (grid >= curve.env_steps[0]) & (grid <= curve.env_steps[-1])
        row[inside] = np.interp(grid[inside], curve.env_steps, curve.values)
    return grid, np.nanmean(stacked, axis=0), np.nanstd(stacked, axis=0), np.sum(~np.isnan(stacked), axis=0)


def configurations(curves: list[Curve]) -> dict[str, dict[str, list[Curve]]]:
    """Per env, the runs of each configuration (algorithm and settings) under its label: the algorithm, followed
    by the settings in which it differs from the algorithm's other configurations on that env (``DQN
    learning_rate=0.001``)."""
    grouped: dict[str, dict[tuple[str, Settings], list[Curve]]] = defaultdict(lambda: defaultdict(list))
    for curve in curves:
        grouped[curve.env_id][(curve.algorithm, curve.settings)].append(curve)
    labelled: dict[str, dict[str, list[Curve]]] = {}
    for env_id, groups in grouped.items():
        labelled[env_id] = {}
        for (algorithm, settings), runs in groups.items():
            others = [dict(other) for (name, other) in groups if name == algorithm and other != settings]
            differing = [(key, value) for key, value in settings if any(other.get(key) != value for other in others)]
            label = " ".join([algorithm, *(f"{key}={value}" for key, value in differing)])
            labelled[env_id][label] = runs
    return labelled


def plot(curves: list[Curve], metric: str, output: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Draw the figure into ``output``; return per env and configuration the final mean, std and number of seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    by_env = configurations(curves)
    labels = sorted({label for runs in by_env.values() for label in runs})
    colors = {label: plt.get_cmap("tab10")(index % 10) for index, label in enumerate(labels)}

    columns = min(len(by_env), 3)
    rows = math.ceil(len(by_env) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.8 * rows), squeeze=False)
    finals: dict[str, dict[str, dict[str, float]]] = {}
    for axis, env_id in zip(axes.flat, sorted(by_env)):
        finals[env_id] = {}
        for label in sorted(by_env[env_id]):
            runs = by_env[env_id][label]
            steps, mean, std, counts = mean_and_std(runs)
            color = colors[label]
            seeds = f"{len(runs)} seed" if len(runs) == 1 else f"{len(runs)} seeds"
            axis.plot(steps, mean, color=color, linewidth=1.8, label=f"{label} ({seeds})")
            axis.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
            finals[env_id][label] = {"mean": float(mean[-1]), "std": float(std[-1]), "seeds": int(counts[-1])}
        axis.set_title(env_id)
        axis.set_xlabel("env steps")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.xaxis.set_major_formatter(EngFormatter(sep=""))  # 20k, 1.5M
        axis.legend(loc="best", fontsize="small")
    for axis in list(axes.flat)[len(by_env) :]:
        axis.set_visible(False)
    figure.suptitle(f"{metric}: mean over seeds, band = ±1 std", fontsize="medium")
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=120)
    plt.close(figure)
    return finals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "paths", nargs="+", type=Path, help="run folders, or folders holding runs (searched recursively)"
    )
    parser.add_argument("--output", type=Path, default=Path("curves.png"), help="the PNG to write (default curves.png)")
    parser.add_argument("--metric", default=DEFAULT_METRIC, help=f"the metric on the y-axis (default {DEFAULT_METRIC})")
    args = parser.parse_args(argv)
    curves = find_curves(args.paths, args.metric)
    if not curves:
        print(
            f"plot_runs.py: error: no run under {', '.join(map(str, args.paths))} logged {args.metric}", file=sys.stderr
        )
        return 2
    finals = plot(curves, args.metric, args.output)
    for env_id, by_label in finals.items():
        for label, final in by_label.items():
            print(f"{env_id:24} {label:8} {final['mean']:10.1f} ± {final['std']:<8.1f} ({final['seeds']} seeds)")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
