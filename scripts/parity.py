"""Parity with Stable-Baselines3: the final returns of ``scripts/benchmark.py`` runs, aggregated over seeds.

Reads the JSON files ``benchmark.py --output`` writes (one or several; each run's score is the mean return of its
final deterministic evaluation episodes) and prints, per benchmark and library, the interquartile mean (IQM) over
seeds with its 95% stratified bootstrap confidence interval (rliable, as ``rl-lightning report`` computes them), the
median, the worst seed and the number of seeds at or above the task's threshold; then, over all the benchmarks
together, each library's IQM of returns normalised to [0, 1] between a random policy's score and the maximum
(``SCORE_RANGES``).

    python scripts/benchmark.py --algos dqn --seeds 10 --output dqn.json
    python scripts/parity.py dqn.json ppo.json ...

Needs ``pip install "rl-lightning[rliable]"``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rl_lightning.report import interval_estimates, iqm

SCORE_RANGES = {"CartPole-v1": (0.0, 500.0), "Acrobot-v1": (-500.0, 0.0)}
"""(random policy's return, maximum return) per env: a random policy's episodes on CartPole-v1 last about 20 steps
(so 0 is a floor more than a random score); on Acrobot-v1 it rarely swings up within the 500-step limit."""

THRESHOLDS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0}
"""The return at which a run counts as solving its env (gymnasium's reward threshold; Acrobot's is -100)."""

BENCHMARK_ENVS = {"dqn": "CartPole-v1", "ppo": "CartPole-v1", "dqn_acrobot": "Acrobot-v1", "ppo_acrobot": "Acrobot-v1"}
"""The env of each ``scripts/benchmark.py`` entry this script knows how to normalise."""


def read_scores(paths: list[Path]) -> tuple[dict[tuple[str, str], list[float]], dict[str, int]]:
    """Final returns per (benchmark, library), in seed order; and each benchmark's env-step budget."""
    scores: dict[tuple[str, str], list[tuple[int, float]]] = {}
    budgets: dict[str, int] = {}
    for path in paths:
        report = json.loads(path.read_text())
        budgets.update(report["settings"]["budgets"])
        for run in report["runs"]:
            scores.setdefault((run["algo"], run["library"]), []).append((run["seed"], run["eval_return_mean"]))
    return {key: [score for _, score in sorted(runs)] for key, runs in scores.items()}, budgets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="JSON files written by benchmark.py --output")
    parser.add_argument("--reps", type=int, default=50_000, help="bootstrap resamples (default 50,000)")
    args = parser.parse_args()
    scores, budgets = read_scores(args.results)
    unknown = sorted({algo for algo, _ in scores} - set(BENCHMARK_ENVS))
    if unknown:
        parser.error(f"no env known for benchmark(s) {', '.join(unknown)}: add them to BENCHMARK_ENVS")
    per_run = {f"{algo} / {library}": np.array([[s] for s in values]) for (algo, library), values in scores.items()}
    points, intervals = interval_estimates(per_run, iqm, args.reps)

    print("| benchmark | env steps | library | seeds | IQM [95% CI] | median | worst | seeds >= threshold |")
    print("| --- | ---: | --- | ---: | --- | ---: | ---: | ---: |")
    for (algo, library), values in scores.items():
        key, env = f"{algo} / {library}", BENCHMARK_ENVS[algo]
        low, high = intervals[key][:, 0]
        solved = sum(value >= THRESHOLDS[env] for value in values)
        print(
            f"| {algo} ({env}) | {budgets[algo]:,} | {library} | {len(values)} | {points[key][0]:.1f} "
            f"[{low:.1f}, {high:.1f}] | {np.median(values):.1f} | {min(values):.1f} | {solved} |"
        )

    # Over every benchmark together: a runs x tasks matrix per library (stratified: resampled within each task).
    libraries = sorted({library for _, library in scores})
    algos = sorted({algo for algo, _ in scores})
    seeds = min(len(values) for values in scores.values())
    normalised = {}
    for library in libraries:
        columns = []
        for algo in algos:
            low, high = SCORE_RANGES[BENCHMARK_ENVS[algo]]
            columns.append((np.array(scores[algo, library][:seeds]) - low) / (high - low))
        normalised[library] = np.stack(columns, axis=1)
    points, intervals = interval_estimates(normalised, iqm, args.reps)
    print(f"\nNormalised IQM over {', '.join(algos)} ({seeds} seeds each, stratified bootstrap, 95% CI):")
    for library in libraries:
        low, high = intervals[library][:, 0]
        print(f"- {library}: {points[library][0]:.3f} [{low:.3f}, {high:.3f}]")


if __name__ == "__main__":
    main()
