"""Memory on CartPole without velocities: recurrent PPO against frame-stacked and plain feed-forward PPO.

Every variant trains with the hyperparameters of ``experiments/ppo_lstm_cartpole_novel.yaml`` on
``rl_lightning/CartPoleNoVel-v1`` (only the cart position and pole angle observed), for the same seeds and budget:

- ``recurrent``: the config as it is (an LSTM of 64 units shared by actor and critic);
- ``frame-stacked``: no memory, but the last 4 observations side by side (gymnasium's ``FrameStackObservation``),
  from which velocities can be differenced;
- ``plain``: no memory, the current observation only.

Each run evaluates (deterministic episodes) at every epoch's end; the table gives the final evaluation and the
first env step at which an evaluation reached 475, per seed. Runs go in parallel processes (``--parallel``), one
torch thread each.

    python scripts/memory_comparison.py --seeds 3 --total-timesteps 49152 --parallel 3
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
from pathlib import Path

import yaml

CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "ppo_lstm_cartpole_novel.yaml"
VARIANTS = ("recurrent", "frame-stacked", "plain")
SOLVED = 475.0


def train(variant: str, seed: int, total_timesteps: int, steps_per_epoch: int) -> tuple[str, int, float, int | None]:
    """One run: (variant, seed, final evaluation, first env step evaluated at >= 475 or None)."""
    import lightning as L
    import torch
    from gymnasium.wrappers import FrameStackObservation

    from rl_lightning import PPO

    torch.set_num_threads(1)
    options = yaml.safe_load(CONFIG.read_text())["model"]["init_args"]
    options.update(seed=seed, total_timesteps=total_timesteps, steps_per_epoch=steps_per_epoch)
    if variant != "recurrent":
        for name in ("recurrent", "rnn_hidden_size", "rnn_layers", "sequence_length"):
            options.pop(name)
    if variant == "frame-stacked":
        options["wrappers"] = [functools.partial(FrameStackObservation, stack_size=4)]
    evaluations: list[tuple[int, float]] = []

    class Record(L.Callback):
        def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            evaluations.append((pl_module.env_steps, trainer.callback_metrics["val/return_mean"].item()))

    trainer = L.Trainer(
        max_epochs=-1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[Record()],
    )
    trainer.fit(PPO(**options))
    solved_at = next((steps for steps, value in evaluations if value >= SOLVED), None)
    return variant, seed, evaluations[-1][1], solved_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--total-timesteps", type=int, default=49_152)
    parser.add_argument("--steps-per-epoch", type=int, default=4096)
    parser.add_argument("--parallel", type=int, default=3)
    args = parser.parse_args()
    budget = (args.total_timesteps, args.steps_per_epoch)
    jobs = [(variant, seed, *budget) for seed in range(args.seeds) for variant in VARIANTS]
    with multiprocessing.get_context("spawn").Pool(args.parallel) as pool:
        results = pool.starmap(train, jobs)
    print(f"| variant | final evaluation (seeds 0-{args.seeds - 1}) | env steps to 475 |")
    print("| --- | --- | --- |")
    for variant in VARIANTS:
        runs = sorted((seed, final, solved) for name, seed, final, solved in results if name == variant)
        finals = ", ".join(f"{final:.0f}" for _, final, _ in runs)
        solved = ", ".join("-" if at is None else f"{at:,}" for _, _, at in runs)
        print(f"| {variant} | {finals} | {solved} |")


if __name__ == "__main__":
    main()
