"""Collection speed: env steps per second of our Collector against the raw gymnasium vector env.

Both sides step the same vector env (CartPole-v1, NEXT_STEP autoreset) with the same pre-drawn random
actions, alternating in one process (raw, ours, raw, ours, ...) so that the machine's load affects both
alike:

- **raw**: ``vector_env.step(actions)`` with a numpy array, results discarded;
- **ours**: ``Collector.step(actions)`` with a torch tensor (what a policy returns): the action's trip to
  numpy, the env step, episode bookkeeping, the autoreset step's ``valid`` flags and the observations and
  rewards as tensors, i.e. everything our datasets get from a step. No policy runs and no buffer is filled.
- **unchecked**: the same with ``Collector(check_finite=False)``, which skips the check of observations and
  rewards for NaN and infinities: ``ours / unchecked`` is what that check costs.

Each vectorization (``sync``, ``async`` with one subprocess per env, ``native``: gymnasium's own vectorized
CartPole, ``torch``: rl-lightning's torch CartPole on the CPU, whose raw side steps it with tensors and whose check
runs on the device, with tensor ops) is measured with 1, 8 and 64 envs. A warm-up sizes each case's segments to
about ``--seconds`` of raw stepping; each side is reset with the same seeds (outside the clock) before each timed
segment. Reported: medians over rounds of env steps per second, and the medians of the per-round ratios ours / raw and
ours / unchecked.

    python scripts/collection.py            # about 4 minutes on 2 cores (async: 64 subprocesses)
    python scripts/collection.py --quick    # about a minute
    python scripts/collection.py --vectorizations sync native --num-envs 1 8 --rounds 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from rl_lightning.data import Collector
from rl_lightning.envs import make_vector_env, seed_vector_env

VECTORIZATIONS = ("sync", "async", "native", "torch")


def raw_rate(env: VectorEnv, actions: np.ndarray | torch.Tensor) -> float:
    seed_vector_env(env, seed=0)
    started = time.perf_counter()
    for step_actions in actions:
        env.step(step_actions)
    steps = actions.size if isinstance(actions, np.ndarray) else actions.numel()
    return steps / (time.perf_counter() - started)


def ours_rate(collector: Collector, actions: torch.Tensor) -> float:
    collector.reset(seed=0)
    started = time.perf_counter()
    for step_actions in actions:
        collector.step(step_actions)
    return actions.numel() / (time.perf_counter() - started)


def measure(vectorization: str, num_envs: int, rounds: int, seconds: float) -> dict[str, Any]:
    env = make_vector_env("CartPole-v1", num_envs, vectorization=vectorization)
    collector, unchecked_collector = Collector(env), Collector(env, check_finite=False)
    rng = np.random.default_rng(0)
    # Speeds differ by 300x between cases: a warm-up of both sides sizes the segments to about `seconds` each.
    warm_up = rng.integers(0, 2, size=(100, num_envs))
    # A torch env steps tensors: its raw side gets them as the collector does.
    as_raw = torch.from_numpy if vectorization == "torch" else np.asarray
    rate = raw_rate(env, as_raw(warm_up))
    ours_rate(collector, torch.from_numpy(warm_up))
    actions = rng.integers(0, 2, size=(max(20, int(rate * seconds) // num_envs), num_envs))
    # What a policy hands the collector: one tensor per step (rows of one tensor, as a network's output is).
    actions_tensor = torch.from_numpy(actions)
    raw, ours, unchecked, ratios, check_ratios = [], [], [], [], []
    for _ in range(rounds):
        raw.append(raw_rate(env, as_raw(actions)))
        ours.append(ours_rate(collector, actions_tensor))
        unchecked.append(ours_rate(unchecked_collector, actions_tensor))
        ratios.append(ours[-1] / raw[-1])
        check_ratios.append(ours[-1] / unchecked[-1])
    collector.close()  # closes the env both collectors step
    return {
        "vectorization": vectorization,
        "num_envs": num_envs,
        "raw": statistics.median(raw),
        "ours": statistics.median(ours),
        "ratio": statistics.median(ratios),
        "unchecked": statistics.median(unchecked),
        "check_ratio": statistics.median(check_ratios),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| vectorization | envs | raw env steps/s | ours env steps/s | ours / raw | unchecked env steps/s "
        "| ours / unchecked |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        rates = f"{row['raw']:,.0f} | {row['ours']:,.0f} | {row['ratio']:.2f} | {row['unchecked']:,.0f}"
        rates += f" | {row['check_ratio']:.3f}"
        lines.append(f"| {row['vectorization']} | {row['num_envs']} | {rates} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectorizations", nargs="+", choices=VECTORIZATIONS, default=list(VECTORIZATIONS))
    parser.add_argument("--num-envs", nargs="+", type=int, default=[1, 8, 64])
    parser.add_argument("--rounds", type=int, default=None, help="alternations per case (default 5, quick 3)")
    parser.add_argument("--seconds", type=float, default=None, help="per timed segment (default 2, quick 0.5)")
    parser.add_argument("--quick", action="store_true", help="shorter segments and fewer rounds")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rounds = args.rounds or (3 if args.quick else 5)
    seconds = args.seconds or (0.5 if args.quick else 2.0)
    print(f"load average before: {os.getloadavg()}, {rounds} rounds of {seconds} s per side, medians", flush=True)
    rows = []
    for vectorization in args.vectorizations:
        for num_envs in args.num_envs:
            rows.append(measure(vectorization, num_envs, rounds, seconds))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)  # a row as soon as it is measured
    print(f"load average after: {os.getloadavg()}")
    print(markdown(rows))


if __name__ == "__main__":
    main()
