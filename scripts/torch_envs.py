"""Torch envs: env steps per second of our torch CartPole against gymnasium's native vectorized CartPole, on the CPU.

Both sides step CartPole-v1 with the same pre-drawn random actions, alternating in one process (gymnasium, torch,
gymnasium, torch, ...) so that the machine's load affects both alike, with one torch thread:

- **gymnasium**: ``gym.make_vec("CartPole-v1", num_envs=N, vectorization_mode="vector_entry_point")``, its numpy
  ``CartPoleVectorEnv`` (NEXT_STEP autoreset), stepped with numpy actions;
- **torch**: our :class:`~rl_lightning.envs.CartPole` in float32 on the CPU (SAME_STEP autoreset, ``final_obs`` in
  the info), stepped with int64 tensors;
- **compiled** (with ``--compile``): the same with ``compile=True`` (its step compiled by ``torch.compile``); the
  seconds its first step took (the compilation) are reported beside.

The actions cycle through a pool of pre-drawn batches, so that drawing them is not timed. A warm-up of both sides
sizes each case's segments to about ``--seconds`` of gymnasium's stepping. Each side is reset with seed 0 before each
segment, outside the clock. Reported: medians over rounds of env steps (transitions of all envs) per second, and the
median of the per-round ratios torch / gymnasium.

    python scripts/torch_envs.py                  # about 30 s
    python scripts/torch_envs.py --num-envs 64 1024 --rounds 5 --seconds 1
    python scripts/torch_envs.py --num-envs 64 1024 16384 --rounds 5 --compile
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rl_lightning.envs import CartPole

ACTION_POOL = 16
"""Pre-drawn action batches cycled through by both sides."""


def gymnasium_rate(env: gym.vector.VectorEnv, actions: list[np.ndarray], steps: int) -> float:
    env.reset(seed=0)
    started = time.perf_counter()
    for step in range(steps):
        env.step(actions[step % ACTION_POOL])
    return steps * env.num_envs / (time.perf_counter() - started)


def torch_rate(env: CartPole, actions: list[torch.Tensor], steps: int) -> float:
    env.reset(seed=0)
    started = time.perf_counter()
    for step in range(steps):
        env.step(actions[step % ACTION_POOL])
    return steps * env.num_envs / (time.perf_counter() - started)


def compile_seconds(env: CartPole, actions: torch.Tensor) -> float:
    """The seconds of ``env``'s first step, which compiles it."""
    env.reset(seed=0)
    started = time.perf_counter()
    env.step(actions)
    return time.perf_counter() - started


def measure(num_envs: int, rounds: int, seconds: float, compile: bool) -> dict[str, Any]:
    theirs = gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="vector_entry_point")
    ours = {"torch": CartPole(num_envs)}
    rng = np.random.default_rng(0)
    numpy_actions = [rng.integers(0, 2, size=num_envs) for _ in range(ACTION_POOL)]
    torch_actions = [torch.from_numpy(actions) for actions in numpy_actions]
    row: dict[str, Any] = {"num_envs": num_envs}
    if compile:
        ours["compiled"] = CartPole(num_envs, compile=True)
        row["compile_seconds"] = compile_seconds(ours["compiled"], torch_actions[0])
    # Speeds differ by orders of magnitude between sizes: a warm-up sizes the segments to about `seconds` each.
    rate = gymnasium_rate(theirs, numpy_actions, 50)
    for env in ours.values():
        torch_rate(env, torch_actions, 50)
    steps = row["steps"] = max(20, int(rate * seconds) // num_envs)
    gymnasium_rates: list[float] = []
    rates: dict[str, list[float]] = {name: [] for name in ours}
    ratios: dict[str, list[float]] = {name: [] for name in ours}
    for _ in range(rounds):
        gymnasium_rates.append(gymnasium_rate(theirs, numpy_actions, steps))
        for name, env in ours.items():
            rates[name].append(torch_rate(env, torch_actions, steps))
            ratios[name].append(rates[name][-1] / gymnasium_rates[-1])
    theirs.close()
    row["gymnasium"] = statistics.median(gymnasium_rates)
    for name, env in ours.items():
        env.close()
        row[name] = statistics.median(rates[name])
        row[f"{name}_ratio"] = statistics.median(ratios[name])
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    compiled = "compiled" in rows[0]
    header = "| envs | steps per segment | gymnasium native env steps/s | torch env steps/s | torch / gymnasium |"
    if compiled:
        header += " compiled torch env steps/s | compiled / gymnasium | compile s |"
    lines = [header, "|" + " ---: |" * (header.count("|") - 1)]
    for row in rows:
        cells = f"| {row['num_envs']} | {row['steps']} | {row['gymnasium']:,.0f} | {row['torch']:,.0f} | "
        cells += f"{row['torch_ratio']:.2f} |"
        if compiled:
            cells += f" {row['compiled']:,.0f} | {row['compiled_ratio']:.2f} | {row['compile_seconds']:.1f} |"
        lines.append(cells)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", nargs="+", type=int, default=[64, 1024, 16384])
    parser.add_argument("--rounds", type=int, default=3, help="alternations per case")
    parser.add_argument("--seconds", type=float, default=1.0, help="per timed segment of the gymnasium side")
    parser.add_argument("--compile", action="store_true", help="also measure CartPole(compile=True)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"torch {torch.__version__}, gymnasium {gym.__version__}, numpy {np.__version__}, "
        f"{torch.get_num_threads()} torch thread; {args.rounds} rounds of about {args.seconds} s per side, medians",
        flush=True,
    )
    print(f"load average before: {os.getloadavg()}", flush=True)
    rows = []
    for num_envs in args.num_envs:
        rows.append(measure(num_envs, args.rounds, args.seconds, args.compile))
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)  # a row as soon as it is measured
    print(f"load average after: {os.getloadavg()}")
    print(markdown(rows))


if __name__ == "__main__":
    main()
