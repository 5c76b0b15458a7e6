"""Env steps per second of a short DQN fit with 1 torch intra-op thread against more, as ``rl-lightning fit
--threads`` sets them: CartPole-v1 (an MLP of 64x64) and a synthetic 4x84x84 uint8 image env (the Nature CNN).

Each setting runs in a fresh process (``python -m rl_lightning.cli fit``), alternating settings round by round
so that the machine's load affects all alike; the rate is the second epoch's ``env_steps_per_sec`` (two epochs of
``--epoch_steps``, updates from step 256 on, one per 4 env steps, batches of 64; no evaluation in the clock).

    python scripts/threads.py                      # 1 and 2 threads, 2 rounds each
    python scripts/threads.py --threads 1 4 --rounds 3 --envs image
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGE_ID = "ImageNoise-v0"

ENVS = {
    "cartpole": ["--model.init_args.env=CartPole-v1", "--model.init_args.hidden_sizes=[64,64]"],
    "image": [f"--model.init_args.env=scripts.threads:{IMAGE_ID}", "--model.init_args.buffer_size=4096"],
}


class ImageNoise(gym.Env):
    """Random 4x84x84 uint8 frames, 4 actions, episodes of 100 steps: what an Atari agent's network sees."""

    observation_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    action_space = gym.spaces.Discrete(4)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._steps = 0
        return self.observation_space.sample(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._steps += 1
        return self.observation_space.sample(), float(action == 0), False, self._steps >= 100, {}


gym.register(IMAGE_ID, entry_point=ImageNoise)


def fit_rate(env: str, threads: int, folder: Path, epoch_steps: int) -> float:
    """env steps per second of the second of two epochs of ``epoch_steps`` in a new process (the first holds the
    256 steps before updates start)."""
    command = [
        sys.executable, "-m", "rl_lightning.cli", "fit", "--config", str(REPO / "experiments" / "dqn_cartpole.yaml"),
        *ENVS[env], f"--model.init_args.total_timesteps={2 * epoch_steps}",
        f"--model.init_args.steps_per_epoch={epoch_steps}",
        "--model.init_args.learning_starts=256", "--model.init_args.train_freq=4", "--model.init_args.gradient_steps=1",
        "--model.init_args.eval_episodes=1", "--model.init_args.eval_envs=1", "--trainer.callbacks=[]",
        "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={folder}", f"--threads={threads}",
    ]  # fmt: skip
    environment = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    environment["PYTHONPATH"] = str(REPO)
    subprocess.run(command, check=True, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(folder / "lightning_logs" / "version_0" / "metrics.csv", newline="") as file:
        rates = [float(row["env_steps_per_sec"]) for row in csv.DictReader(file) if row.get("env_steps_per_sec")]
    return rates[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--envs", nargs="+", choices=sorted(ENVS), default=sorted(ENVS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epoch_steps", type=int, default=1024, help="env steps per epoch (more than 256)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    rates: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            for env in args.envs:
                for threads in args.threads:
                    rate = fit_rate(env, threads, Path(scratch) / f"{env}-{threads}-{round_}", args.epoch_steps)
                    rates.setdefault((env, threads), []).append(rate)
                    print(f"round {round_}: {env:8} {threads} thread(s): {rate:8.1f} env steps/s", flush=True)
    print(f"load average after: {os.getloadavg()}")
    for (env, threads), values in rates.items():
        print(f"{env:8} {threads} thread(s): median {statistics.median(values):8.1f} env steps/s  (runs: {values})")


if __name__ == "__main__":
    main()
