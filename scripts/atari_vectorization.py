"""Env steps per second of 8 Pong envs with the standard preprocessing, by how they are vectorized.

Random actions, no network: only the envs are timed. The kinds, each in its own fresh process, in alternating
order over ``--repeats`` rounds (a machine getting busier affects all alike):

- ``sync`` / ``async``: ``make_vector_env("PongNoFrameskip-v4", 8, wrappers=[AtariPreset], vectorization=...)``,
  the envs rl-lightning trains on (gymnasium's vector envs, NEXT_STEP autoreset).
- ``ale``: ale-py's own ``AtariVectorEnv`` (C++ threads), set as close to ``AtariPreset`` as it allows: 30 no-ops,
  frame skip 4 with max-pool, 84x84 gray, 4-frame stack, fire on reset, rewards clipped, life losses signalled.
- ``envpool``: EnvPool's ``Pong-v5`` with the same settings, when ``envpool`` is importable (it is no dependency:
  put it on ``PYTHONPATH`` from a throwaway install).

The last two do not keep rl-lightning's semantics (see BENCHMARKS.md, "Atari vectorization"); they are timed to
show what they would buy.

    python scripts/atari_vectorization.py --steps 1000 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

NUM_ENVS = 8
KINDS = ("sync", "async", "ale", "envpool")


def make(kind: str, threads: int) -> Any:
    """The vector env of ``kind`` (8 Pong envs, the standard preprocessing)."""
    if kind in ("sync", "async"):
        from rl_lightning.envs import AtariPreset, make_vector_env

        return make_vector_env("PongNoFrameskip-v4", NUM_ENVS, wrappers=[AtariPreset], vectorization=kind)
    if kind == "ale":
        from ale_py.vector_env import AtariVectorEnv

        return AtariVectorEnv(
            "pong",
            NUM_ENVS,
            num_threads=threads,
            repeat_action_probability=0.0,
            noop_max=30,
            frameskip=4,
            stack_num=4,
            img_height=84,
            img_width=84,
            life_loss_info=True,
            reward_clipping=True,
            use_fire_reset=True,
        )
    import envpool

    return envpool.make(
        "Pong-v5",
        env_type="gymnasium",
        num_envs=NUM_ENVS,
        num_threads=threads,
        repeat_action_probability=0.0,
        noop_max=30,
        frame_skip=4,
        stack_num=4,
        img_height=84,
        img_width=84,
        episodic_life=True,
        reward_clip=True,
    )


def measure(kind: str, steps: int, threads: int) -> dict[str, Any]:
    """Env steps per second over ``steps`` vector steps of random actions, after a reset and 50 warm-up steps."""
    env = make(kind, threads)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(6, size=(steps + 50, NUM_ENVS), dtype=np.int32)
    for action in actions[:50]:
        env.step(action)
    started = time.perf_counter()
    for action in actions[50:]:
        env.step(action)
    elapsed = time.perf_counter() - started
    env.close()
    return {
        "kind": kind,
        "env_steps": steps * NUM_ENVS,
        "seconds": elapsed,
        "env_steps_per_s": steps * NUM_ENVS / elapsed,
    }


def available(kind: str) -> bool:
    if kind != "envpool":
        return True
    try:
        import envpool  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000, help="vector steps timed per run (x8 env steps)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over the kinds, in alternating order")
    parser.add_argument("--threads", type=int, default=2, help="threads of the ale and envpool kinds")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.steps, args.threads)))
        return 0
    kinds = [kind for kind in args.kinds if available(kind)]
    print(f"kinds {kinds}; {os.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    results: dict[str, list[float]] = {kind: [] for kind in kinds}
    for round_index in range(args.repeats):
        for kind in kinds if round_index % 2 == 0 else kinds[::-1]:
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                kind,
                "--steps",
                str(args.steps),
                "--threads",
                str(args.threads),
            ]
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            result = json.loads(output.strip().splitlines()[-1])
            results[kind].append(result["env_steps_per_s"])
            print(f"{kind}: {result['env_steps_per_s']:.0f} env steps/s ({result['seconds']:.1f} s)", flush=True)
    print("\n| vectorization | env steps/s (each run) | mean |\n| --- | --- | ---: |")
    for kind, rates in results.items():
        print(f"| {kind} | {', '.join(f'{rate:.0f}' for rate in rates)} | {np.mean(rates):.0f} |")
    print(f"load average at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
