"""Framework overhead: gradient steps per second of our LightningModules against a plain PyTorch loop.

The same update runs two ways, alternating in one process (plain, ours, plain, ours, ...) so that the
machine's load affects both alike:

- **plain**: a loop written below in plain PyTorch: the same network shapes, the same loss as the
  algorithm's ``update``, fused Adam (as ``RLAlgorithm.make_optimizer`` builds it), ``zero_grad``,
  ``backward``, gradient-norm clipping at the algorithm's ``max_grad_norm``, ``step``. It computes nothing
  it does not need (no statistics, no logging). With ``--plain-statistics`` it also computes the scalars our
  ``update`` records and sums them on the device (DQN: the loss and the mean Q-value; PPO: the loss, its policy
  and value parts, the entropy, the approximate KL and the clip fraction, which CleanRL's ``ppo.py`` also computes
  for every minibatch and SB3 logs), as a plain loop that reports them would.
- **ours**: ``rl_lightning.DQN`` / ``rl_lightning.PPO`` themselves, fitted by a real ``lightning.Trainer``:
  ``training_step`` taking a round of updates from the dataloader iterator (under manual optimization), the
  algorithm's ``update`` (its loss and the statistics it records each step), ``manual_backward``, gradient
  clipping, ``LightningOptimizer.step`` and every hook and callback they call, and the epoch-end logging
  (episode statistics, update statistics, env steps, steps/s).

What is held out of both sides, to isolate the update: **no environment is stepped** while timing. Batches
come from a buffer filled before the clock starts and shared by both sides: DQN samples
``ReplayBuffer.sample(64)`` from 10,000 stored CartPole transitions each step (on both sides); PPO takes
shuffled minibatches of 256 of one stored 2,048-step CartPole rollout (ours through the real
``RolloutDataset.minibatches``, the plain loop with its own ``randperm`` and indexing). To that end the
timed modules are subclasses that replace only ``train_dataloader``. Validation (evaluation episodes)
and checkpoint writing are off; Trainer construction and ``fit``'s setup are outside the clock, which runs
from ``on_train_start`` to ``on_train_end``. An epoch is 2,560 DQN updates, in rounds of 128 (RL-Zoo's
CartPole set: ``gradient_steps=128``) or of 1 (SB3's default ``train_freq=4``, ``gradient_steps=1``, where a
training step is one update, as every step was before rounds), or 400 PPO updates (5 rollouts of 80
minibatches), so the epoch-end work weighs about as it does in training.

A third side shows how much of the gap is Lightning's own: **minimal LightningModule**, the plain loss as
the smallest module (``training_step`` returns it; the Trainer clips gradients), fed the same batches and
fitted by the ``bare`` Trainer below.

"ours" runs under three Trainer setups:

- ``bare``: ``logger=False``, no progress bar: what ``scripts/benchmark.py`` measures;
- ``cli``: what ``rl-lightning fit`` gives by default: the CSV logger and the env-step progress bar
  (``RLProgressBar``, drawn as in a terminal; its output goes to /dev/null);
- ``lightning``: a ``Trainer()`` with Lightning's own defaults (its TQDM progress bar redrawn every step,
  its default logger), checkpointing and validation off as above.

    python scripts/overhead.py             # about 10 minutes on 2 cores
    python scripts/overhead.py --quick     # about 2 minutes
    python scripts/overhead.py --algos dqn --setups bare --rounds 9
    python scripts/overhead.py --compile --setups bare   # and the plain loop under torch.compile
    python scripts/overhead.py --plain-statistics --setups bare   # the plain loop records our statistics

Everything runs on the CPU with one torch thread. Reported: the median over rounds of gradient steps per
second of each side, and the median of the per-round ratios to the plain loop run just before it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import itertools
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from torch import Tensor, nn
from torch.utils.data import DataLoader, IterableDataset

from rl_lightning import DQN, PPO
from rl_lightning.buffers import ReplayBatch, ReplayBuffer, RolloutBatch
from rl_lightning.callbacks import RLProgressBar
from rl_lightning.data import Collector, RolloutDataset
from rl_lightning.envs import make_vector_env

SETUPS = ("bare", "cli", "lightning")
DQN_STEPS_PER_EPOCH = 2_560
PPO_STEPS_PER_EPOCH = 400
REPLAY_SIZE = 10_000


class Batches(IterableDataset):
    """``steps`` batches, each made by calling ``next_batch`` (so data costs the same as in the plain loop)."""

    def __init__(self, next_batch: Callable[[], Any], steps: int) -> None:
        super().__init__()
        self.next_batch, self.steps = next_batch, steps

    def __iter__(self) -> Iterator[Any]:
        for _ in range(self.steps):
            yield self.next_batch()


class Rounds(IterableDataset):
    """``count`` rounds, each an iterator of batches from ``make_round()``, as our datasets yield them."""

    def __init__(self, make_round: Callable[[], Iterator[Any]], count: int) -> None:
        super().__init__()
        self.make_round, self.count = make_round, count

    def __iter__(self) -> Iterator[Iterator[Any]]:
        for _ in range(self.count):
            yield self.make_round()


class StoredReplayDQN(DQN):
    """rl_lightning.DQN learning from a pre-filled replay buffer: only ``train_dataloader`` differs."""

    replay: ReplayBuffer
    epoch_steps: int

    def train_dataloader(self) -> DataLoader:
        def round_of_batches() -> Iterator[ReplayBatch]:
            return (self.replay.sample(self.batch_size) for _ in range(self.gradient_steps))

        return DataLoader(Rounds(round_of_batches, self.epoch_steps // self.gradient_steps), batch_size=None)


class StoredRolloutPPO(PPO):
    """rl_lightning.PPO learning from one stored rollout, replayed through ``RolloutDataset.minibatches``."""

    epoch_steps: int

    def train_dataloader(self) -> DataLoader:
        dataset: RolloutDataset = super().train_dataloader().dataset
        if not self.buffer.full:  # collected once, before the clock starts (the buffer outlives each fit)
            dataset.collect()
            self.env_steps = 0
        # One round per rollout, as in training: n_epochs passes over the stored rollout.
        rounds = self.epoch_steps // (self.n_epochs * dataset.batches_per_pass)
        return DataLoader(Rounds(dataset.minibatches, rounds), batch_size=None)


class TrainClock(Callback):
    """Seconds and optimizer steps from ``on_train_start`` to ``on_train_end``."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started, self.first_step = time.perf_counter(), trainer.global_step

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seconds = time.perf_counter() - self.started
        self.steps = trainer.global_step - self.first_step


def fit(module: L.LightningModule, setup: str, epochs: int, log_dir: str, **trainer_kwargs: Any) -> float:
    """Fit ``module`` for ``epochs`` under ``setup``; gradient steps per second between train start and end."""
    clock = TrainClock()
    kwargs: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": epochs,
        "enable_checkpointing": False,
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
        "default_root_dir": log_dir,
        **trainer_kwargs,
    }
    callbacks: list[Callback] = [clock]
    if setup == "bare":
        kwargs.update(logger=False, enable_progress_bar=False, enable_model_summary=False)
    elif setup == "cli":
        kwargs.update(logger=CSVLogger(log_dir), enable_model_summary=False)
        callbacks.append(RLProgressBar(interactive=True))
    trainer = L.Trainer(callbacks=callbacks, **kwargs)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull):
        trainer.fit(module)
    return clock.steps / clock.seconds


# ----------------------------------------------------------------------------------------- the plain updates
def plain_mlp(sizes: list[int], activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width, next_width in itertools.pairwise(sizes[:-1]):
        layers += [nn.Linear(width, next_width), activation()]
    return nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1]))


class PlainDQNLoss(nn.Module):
    """DQN's loss: Huber on the one-step TD target of a target network (never updated here: no env steps)."""

    max_grad_norm, learning_rate, adam_eps = 10.0, 1e-4, 1e-8

    def __init__(self, hidden: int = 256, gamma: float = 0.99, statistics: bool = False) -> None:
        super().__init__()
        self.q_net = plain_mlp([4, hidden, hidden, 2], nn.ReLU)
        self.q_target = copy.deepcopy(self.q_net).requires_grad_(False)
        self.gamma = gamma
        self.statistics: Tensor | None = torch.zeros(2) if statistics else None

    def forward(self, batch: ReplayBatch) -> Tensor:
        with torch.no_grad():
            next_value = self.q_target(batch.next_observations).max(dim=1).values
            target = batch.rewards + batch.discounts * (1.0 - batch.terminations) * next_value
        q = self.q_net(batch.observations).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
        loss = F.smooth_l1_loss(q, target)
        if self.statistics is not None:
            self.statistics += torch.stack([loss.detach(), q.detach().mean()])
        return loss


class PlainPPOLoss(nn.Module):
    """PPO's loss: clipped surrogate plus value loss, separate tanh actor and critic (ent_coef 0)."""

    max_grad_norm, learning_rate, adam_eps = 0.5, 3e-4, 1e-5

    def __init__(self, clip_range: float = 0.2, vf_coef: float = 0.5, statistics: bool = False) -> None:
        super().__init__()
        self.actor, self.critic = plain_mlp([4, 64, 64, 2], nn.Tanh), plain_mlp([4, 64, 64, 1], nn.Tanh)
        self.clip_range, self.vf_coef = clip_range, vf_coef
        self.statistics: Tensor | None = torch.zeros(6) if statistics else None

    def forward(self, batch: RolloutBatch) -> Tensor:
        log_pmf = self.actor(batch.observations).log_softmax(dim=-1)
        log_probs = log_pmf.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        std, mean = torch.std_mean(batch.advantages)
        advantages = (batch.advantages - mean) / (std + 1e-8)
        log_ratio = log_probs - batch.log_probs
        ratio = log_ratio.exp()
        clipped = ratio.clamp(1 - self.clip_range, 1 + self.clip_range)
        policy_loss = -torch.min(advantages * ratio, advantages * clipped).mean()
        values = self.critic(batch.observations).squeeze(-1)
        value_loss = F.mse_loss(values, batch.returns)
        loss = policy_loss + self.vf_coef * value_loss
        if self.statistics is not None:
            with torch.no_grad():
                entropy = -(log_pmf.exp() * log_pmf).sum(dim=-1).mean()
                approx_kl = ((ratio - 1.0) - log_ratio).mean()
                clip_fraction = ((ratio - 1.0).abs() > self.clip_range).float().mean()
                self.statistics += torch.stack([loss, policy_loss, value_loss, entropy, approx_kl, clip_fraction])
        return loss


def adam(loss: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(loss.parameters(), lr=loss.learning_rate, eps=loss.adam_eps, fused=True)


def plain_loop(loss: nn.Module, next_batch: Callable[[], Any], steps: int) -> float:
    """``steps`` updates in plain PyTorch; steps per second."""
    optimizer = adam(loss)
    started = time.perf_counter()
    for _ in range(steps):
        value = loss(next_batch())
        optimizer.zero_grad()
        value.backward()
        nn.utils.clip_grad_norm_(loss.parameters(), loss.max_grad_norm)
        optimizer.step()
    return steps / (time.perf_counter() - started)


class MinimalModule(L.LightningModule):
    """The plain update as the smallest LightningModule: ``training_step`` returns the loss, nothing else."""

    def __init__(self, loss: nn.Module, next_batch: Callable[[], Any], epoch_steps: int) -> None:
        super().__init__()
        self.loss, self.next_batch, self.epoch_steps = loss, next_batch, epoch_steps

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self.loss(batch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adam(self.loss)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(Batches(self.next_batch, self.epoch_steps), batch_size=None)


def shuffled_minibatches(rollout: RolloutBatch, batch_size: int) -> Iterator[RolloutBatch]:
    """Endless passes over ``rollout`` in a new random order each, as minibatches of about ``batch_size``."""
    size = len(rollout.observations)
    while True:
        for index in torch.randperm(size).tensor_split(size // batch_size):
            yield RolloutBatch(*(None if field is None else field[index] for field in rollout))


# ----------------------------------------------------------------------------------------- the two algorithms
Sides = dict[str, Callable[[], float]]
"""Each side's name and a call that runs one timed segment of it, returning gradient steps per second."""


def filled_replay() -> ReplayBuffer:
    """10,000 CartPole transitions of a random policy."""
    collector = Collector(make_vector_env("CartPole-v1", 8))
    collector.reset(seed=0)
    replay = ReplayBuffer(REPLAY_SIZE, (4,), torch.float32, (), torch.long, num_envs=8, seed=0)
    generator = torch.Generator().manual_seed(0)
    while len(replay) < REPLAY_SIZE:
        replay.add(*collector.step(torch.randint(2, (8,), generator=generator)))
    collector.close()
    return replay


def sides_of(
    ours: L.LightningModule,
    loss: nn.Module,
    next_batch: Callable[[], Any],
    epochs: int,
    setups: list[str],
    log_dir: str,
    compiled: bool,
) -> Sides:
    steps = ours.epoch_steps * epochs
    floor = MinimalModule(loss, next_batch, ours.epoch_steps)
    sides: Sides = {
        "plain PyTorch" + (" + statistics" if loss.statistics is not None else ""): lambda: plain_loop(
            loss, next_batch, steps
        ),
        "minimal LightningModule (bare)": lambda: fit(
            floor, "bare", epochs, log_dir, gradient_clip_val=loss.max_grad_norm
        ),
    }
    if compiled:
        # What torch.compile could gain: the whole loss (networks and loss math, one graph forward and backward),
        # or only the networks, which is all an option of the library could compile without graph breaks.
        whole = torch.compile(loss)
        networks_only = copy.deepcopy(loss)
        for network in networks_only.children():
            network.compile()
        sides["plain PyTorch, torch.compile(loss)"] = lambda: plain_loop(whole, next_batch, steps)
        sides["plain PyTorch, compiled networks"] = lambda: plain_loop(networks_only, next_batch, steps)
    for setup in setups:
        sides[f"ours ({setup})"] = lambda setup=setup: fit(ours, setup, epochs, log_dir)
    return sides


def dqn_sides(
    quick: bool, setups: list[str], compiled: bool, plain_statistics: bool, gradient_steps: int = 128
) -> Sides:
    replay = filled_replay()
    module = StoredReplayDQN(
        "CartPole-v1", hidden_sizes=(256, 256), batch_size=64, buffer_size=REPLAY_SIZE, total_timesteps=10**9,
        train_freq=max(4, 2 * gradient_steps), gradient_steps=gradient_steps,
    )
    module.replay = replay
    module.epoch_steps = DQN_STEPS_PER_EPOCH // (5 if quick else 1)
    log_dir = tempfile.mkdtemp(prefix="overhead-dqn-")
    loss = PlainDQNLoss(statistics=plain_statistics)
    return sides_of(module, loss, lambda: replay.sample(64), 2, setups, log_dir, compiled)


def ppo_sides(quick: bool, setups: list[str], compiled: bool, plain_statistics: bool) -> Sides:
    module = StoredRolloutPPO("CartPole-v1", n_steps=2048, batch_size=256, total_timesteps=10**9)
    module.epoch_steps = PPO_STEPS_PER_EPOCH // (5 if quick else 1)
    log_dir = tempfile.mkdtemp(prefix="overhead-ppo-")
    fit(module, "bare", 1, log_dir)  # collects the rollout that both sides then learn from
    rollout = module.buffer.batch(module.buffer.valid_indices())
    minibatches = shuffled_minibatches(rollout, module.batch_size)
    loss = PlainPPOLoss(statistics=plain_statistics)
    return sides_of(module, loss, minibatches.__next__, 3, setups, log_dir, compiled)


def measure(name: str, sides: Sides, rounds: int) -> list[dict[str, Any]]:
    """Median steps/s of each side over ``rounds``, and the median ratio to the plain loop run just before."""
    plain, *others = sides
    for run in sides.values():  # warm-up: first calls allocate and build kernels
        run()
    rates: dict[str, list[float]] = {side: [] for side in sides}
    ratios: dict[str, list[float]] = {side: [] for side in others}
    for _ in range(rounds):
        for side in others:  # the plain loop before each of the others, so each ratio compares neighbours in time
            rates[plain].append(sides[plain]())
            rates[side].append(sides[side]())
            ratios[side].append(rates[side][-1] / rates[plain][-1])
    return [
        {
            "algorithm": name,
            "side": side,
            "steps_per_s": statistics.median(rates[side]),
            "ratio": statistics.median(ratios[side]) if side in ratios else None,
        }
        for side in sides
    ]


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| update | side | gradient steps/s | ratio to plain |", "| --- | --- | ---: | ---: |"]
    for row in rows:
        ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}"
        lines.append(f"| {row['algorithm']} | {row['side']} | {row['steps_per_s']:,.0f} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", choices=("dqn", "dqn1", "ppo"), default=["dqn", "dqn1", "ppo"])
    parser.add_argument("--setups", nargs="+", choices=SETUPS, default=list(SETUPS))
    parser.add_argument("--rounds", type=int, default=None, help="alternations per setup (default 5, quick 3)")
    parser.add_argument("--quick", action="store_true", help="shorter epochs and fewer rounds")
    parser.add_argument("--compile", action="store_true", help="also time the plain loop under torch.compile")
    parser.add_argument(
        "--plain-statistics", action="store_true", help="the plain loop also computes the statistics ours records"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no "GPU available" lines per fit
    rounds = args.rounds or (3 if args.quick else 5)
    print(f"load average before: {os.getloadavg()}, torch {torch.__version__}, lightning {L.__version__}")
    algos = {
        "dqn": ("DQN 256-256, batch 64, 128 updates per round", dqn_sides),
        "dqn1": ("DQN 256-256, batch 64, 1 update per round", functools.partial(dqn_sides, gradient_steps=1)),
        "ppo": ("PPO 64-64, batch 256, 80 updates per rollout", ppo_sides),
    }
    rows: list[dict[str, Any]] = []
    for key in args.algos:
        name, sides = algos[key]
        rows += measure(name, sides(args.quick, args.setups, args.compile, args.plain_statistics), rounds)
    print(f"load average after: {os.getloadavg()}, {rounds} rounds, medians")
    print(markdown(rows))


if __name__ == "__main__":
    main()
