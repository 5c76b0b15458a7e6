"""Env steps per second of training with 1 and with 2 DDP processes (CPU, gloo, one torch thread per process).

    python scripts/ddp_scaling.py                      # DQN and PPO on CartPole-v1, 1 then 2 processes
    python scripts/ddp_scaling.py --algorithms ppo --total-timesteps 32768

Each measurement is a fit in new processes (``--processes N`` runs one; Lightning's "ddp" starts the other
ranks by running this script again). The rate is the global env steps over the wall time from the start
to the end of training (on rank 0): playing and learning together, without start-up, evaluation or checkpoints.
On a machine with fewer cores than processes, or with other work running, the processes share cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIGS = {
    "dqn": dict(num_envs=2, learning_starts=1000, batch_size=64, train_freq=4, target_update_interval=1000),
    "ppo": dict(num_envs=4, n_steps=128, batch_size=128, n_epochs=4),
}


def measure(algorithm: str, processes: int, total_timesteps: int) -> None:
    """One fit on ``processes`` DDP processes; rank 0 prints its result as one JSON line."""
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Callback

    from rl_lightning import DQN, PPO

    torch.set_num_threads(1)

    class Clock(Callback):
        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            self.started = time.perf_counter()

        def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            if trainer.is_global_zero:
                seconds = time.perf_counter() - self.started
                steps = pl_module.env_steps
                result = {"algorithm": algorithm, "processes": processes, "env_steps": steps}
                print(json.dumps({**result, "seconds": round(seconds, 2), "env_steps_per_s": steps / seconds}))

    model_class = {"dqn": DQN, "ppo": PPO}[algorithm]
    model = model_class(**CONFIGS[algorithm], total_timesteps=total_timesteps, steps_per_epoch=total_timesteps)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=processes,
        strategy="ddp" if processes > 1 else "auto",
        max_epochs=-1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Clock()],
    )
    trainer.fit(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", nargs="+", default=["dqn", "ppo"], choices=sorted(CONFIGS))
    parser.add_argument("--total-timesteps", type=int, default=16384)
    parser.add_argument("--processes", type=int, help="measure once with this many processes (else 1, then 2)")
    args = parser.parse_args()
    if args.processes is not None:
        (algorithm,) = args.algorithms
        measure(algorithm, args.processes, args.total_timesteps)
        return
    results = []
    for algorithm in args.algorithms:
        for processes in (1, 2):
            command = [sys.executable, __file__, "--algorithms", algorithm, "--processes", str(processes)]
            command += ["--total-timesteps", str(args.total_timesteps)]
            run = subprocess.run(
                command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, check=True
            )
            results.append(json.loads(run.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    print(f"\n{'algorithm':<10} {'processes':>9} {'env steps/s':>12} {'speed-up':>9}")
    for result in results:
        single = next(r for r in results if r["algorithm"] == result["algorithm"] and r["processes"] == 1)
        speedup = result["env_steps_per_s"] / single["env_steps_per_s"]
        print(f"{result['algorithm']:<10} {result['processes']:>9} {result['env_steps_per_s']:>12.0f} {speedup:>8.2f}x")


if __name__ == "__main__":
    main()
