"""Prioritized replay against uniform replay: the cost of a draw, and of a whole DQN training step.

Both buffers hold 1M CartPole transitions (20,000 played by a random policy, repeated to fill the ring; the
prioritized buffer's priorities are the magnitudes of standard normal TD errors). Three measurements, each
alternating its sides in one process (A, B, A, B, ...) so that the machine's load falls on all alike:

- **sampling**: ``ReplayBuffer.sample(64)`` against ``PrioritizedReplayBuffer.sample(64)``, and the prioritized
  draw followed by its priority write-back (``update_priorities``), which a training step always pays too;
- **DQN step**: one update in plain PyTorch of the CartPole MLP (4 -> 256 -> 256 -> 2 as in
  ``experiments/dqn_cartpole.yaml``, ``--hidden 64`` for SB3's default 64 -> 64; a target network of the same
  shape), batch 64: draw, TD target, Huber loss, backward, fused Adam step (as ``make_optimizer`` builds it).
  The prioritized side weights the Huber losses by the batch's importance weights and writes the new priorities
  back; nothing else differs. (No gradient clipping: it would add the same cost to both sides, and
  so lower the ratio.)
- **tree shapes**: ``SumTree.sample(64)`` followed by ``SumTree.set`` of 64 leaves, over 1M leaves, for the
  shapes in ``TREE_SHAPES`` (``fanout``, ``top_size``): a binary tree, narrow and wide trees of several levels,
  and one interior level of block sums under a top searched whole (a blocked prefix sum), against the default.

Everything runs on the CPU with one torch thread. Reported per side: microseconds per call (the median over
rounds in wall time and in this process's CPU time, and the least CPU time of a round), and the ratios to the
first side of the table (uniform replay; the default tree): medians of the per-round ratios, each round's first
side run just before, and the ratio of the least CPU times. CPU time leaves out the time a busy machine keeps
the process waiting for a core, and its least the rounds other processes disturbed most (they still evict its
caches): on an idle machine the three agree.

    python scripts/per_speed.py            # about a minute on 2 busy cores
    python scripts/per_speed.py --rounds 3 --capacity 100000
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from rl_lightning.buffers import PrioritizedReplayBuffer, ReplayBuffer, SumTree
from rl_lightning.data import Collector
from rl_lightning.envs import make_vector_env

BATCH_SIZE = 64
PLAYED = 20_000
TREE_SHAPES = [(64, 16384), (2, 2), (32, 32), (64, 64), (32, 1024), (64, 4096), (128, 8192), (256, 4096)]
"""(fanout, top_size) of the trees compared, SumTree's default first."""

Side = Callable[[int], None]
"""One side of a comparison: a call that runs ``n`` steps of it."""


def played_transitions() -> dict:
    """The state of a buffer of ``PLAYED`` CartPole transitions of a random policy over 8 envs."""
    collector = Collector(make_vector_env("CartPole-v1", 8))
    collector.reset(seed=0)
    replay = ReplayBuffer(PLAYED, (4,), torch.float32, (), torch.long, num_envs=8, seed=0)
    generator = torch.Generator().manual_seed(0)
    while len(replay) < PLAYED:
        replay.add(*collector.step(torch.randint(2, (8,), generator=generator)))
    collector.close()
    return replay.state_dict()


def full_buffers(capacity: int) -> tuple[ReplayBuffer, PrioritizedReplayBuffer]:
    """A uniform and a prioritized buffer, both full of the played transitions repeated, priorities |N(0, 1)|."""
    played = played_transitions()
    repeats = -(-capacity // PLAYED)
    state = {
        **played,
        "size": capacity,
        "position": 0,
        "storage": {name: t.repeat(repeats, *[1] * (t.dim() - 1))[:capacity] for name, t in played["storage"].items()},
    }
    uniform = ReplayBuffer(capacity, (4,), torch.float32, (), torch.long, num_envs=8, seed=1)
    prioritized = PrioritizedReplayBuffer(capacity, (4,), torch.float32, (), torch.long, num_envs=8, seed=1)
    uniform.load_state_dict(state)
    prioritized.load_state_dict(state)
    td_errors = torch.randn(capacity, generator=torch.Generator().manual_seed(2))
    prioritized.update_priorities(torch.arange(capacity), td_errors)
    return uniform, prioritized


def timed(side: Side, steps: int) -> tuple[float, float]:
    """Microseconds of wall time and of this process's CPU time per step, over ``steps`` steps of ``side``."""
    wall, cpu = time.perf_counter(), time.process_time()
    side(steps)
    return (time.perf_counter() - wall) / steps * 1e6, (time.process_time() - cpu) / steps * 1e6


class Row(NamedTuple):
    """One side of a comparison: microseconds per call, and ratios to the first side (None for that one)."""

    side: str
    wall: float
    """Median wall time."""
    cpu: float
    """Median CPU time of the process."""
    best_cpu: float
    """Least CPU time of a round: the least disturbed by other processes."""
    wall_ratio: float | None
    """Median over rounds of the ratio of wall times to the first side's, run just before."""
    cpu_ratio: float | None
    """The same in CPU time."""
    best_cpu_ratio: float | None
    """``best_cpu`` over the first side's."""


def compare(sides: dict[str, Side], steps: int, rounds: int) -> list[Row]:
    """Time ``steps`` steps of each side in turn, the first side before each other one, ``rounds`` times."""
    baseline, *others = sides
    for side in sides.values():  # warm-up: first calls allocate and fault pages in
        side(max(1, steps // 10))
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    ratios: dict[str, list[tuple[float, float]]] = {name: [] for name in others}
    for _ in range(rounds):
        for name in others:
            times[baseline].append(timed(sides[baseline], steps))
            times[name].append(timed(sides[name], steps))
            (wall, cpu), (base_wall, base_cpu) = times[name][-1], times[baseline][-1]
            ratios[name].append((wall / base_wall, cpu / base_cpu))
    base_best = min(cpu for _, cpu in times[baseline])
    rows = []
    for name in sides:
        walls, cpus = zip(*times[name], strict=True)
        wall_ratios, cpu_ratios = zip(*ratios[name], strict=True) if name in ratios else ((), ())
        rows.append(
            Row(
                name,
                statistics.median(walls),
                statistics.median(cpus),
                min(cpus),
                statistics.median(wall_ratios) if wall_ratios else None,
                statistics.median(cpu_ratios) if cpu_ratios else None,
                min(cpus) / base_best if name in ratios else None,
            )
        )
    return rows


def table(title: str, rows: list[Row]) -> str:
    lines = [
        f"| {title} | wall us | CPU us | best CPU us | wall ratio | CPU ratio | best CPU ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        ratios = [row.wall_ratio, row.cpu_ratio, row.best_cpu_ratio]
        cells = [f"{row.wall:,.1f}", f"{row.cpu:,.1f}", f"{row.best_cpu:,.1f}"]
        cells += ["" if ratio is None else f"{ratio:.2f}" for ratio in ratios]
        lines.append(f"| {row.side} | {' | '.join(cells)} |")
    return "\n".join(lines)


def sampling_sides(uniform: ReplayBuffer, prioritized: PrioritizedReplayBuffer) -> dict[str, Side]:
    def uniform_draws(n: int) -> None:
        for _ in range(n):
            uniform.sample(BATCH_SIZE)

    def prioritized_draws(n: int) -> None:
        for _ in range(n):
            prioritized.sample(BATCH_SIZE)

    td_errors = torch.randn(BATCH_SIZE, generator=torch.Generator().manual_seed(3))

    def prioritized_draws_and_write_backs(n: int) -> None:
        for _ in range(n):
            prioritized.update_priorities(prioritized.sample(BATCH_SIZE).indices, td_errors)

    return {
        "uniform sample(64)": uniform_draws,
        "prioritized sample(64)": prioritized_draws,
        "prioritized sample(64) + update_priorities": prioritized_draws_and_write_backs,
    }


def dqn_sides(uniform: ReplayBuffer, prioritized: PrioritizedReplayBuffer, hidden: int) -> dict[str, Side]:
    def dqn_steps(buffer: ReplayBuffer, gamma: float = 0.99) -> Side:
        torch.manual_seed(0)
        layers = [nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2)]
        q_net = nn.Sequential(*layers)
        q_target = copy.deepcopy(q_net).requires_grad_(False)
        optimizer = torch.optim.Adam(q_net.parameters(), fused=True)

        def steps(n: int) -> None:
            for _ in range(n):
                batch = buffer.sample(BATCH_SIZE)
                with torch.no_grad():
                    next_value = q_target(batch.next_observations).max(dim=1).values
                    target = batch.rewards + batch.discounts * (1.0 - batch.terminations) * next_value
                q = q_net(batch.observations).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
                if batch.weights is None:
                    loss = F.smooth_l1_loss(q, target)
                else:
                    loss = (F.smooth_l1_loss(q, target, reduction="none") * batch.weights).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if batch.indices is not None:
                    buffer.update_priorities(batch.indices, q.detach() - target)

        return steps

    return {"uniform DQN step": dqn_steps(uniform), "prioritized DQN step": dqn_steps(prioritized)}


def tree_sides(prioritized: PrioritizedReplayBuffer) -> dict[str, Side]:
    capacity = prioritized.capacity
    generator = torch.Generator().manual_seed(4)
    values = torch.rand(BATCH_SIZE, generator=generator)

    def tree_side(fanout: int, top_size: int) -> Side:
        tree = SumTree(capacity, fanout, top_size)
        tree.set(torch.arange(capacity), prioritized.tree.leaves)

        def draws_and_writes(n: int) -> None:
            for _ in range(n):
                tree.set(tree.sample(BATCH_SIZE, generator), values)

        return draws_and_writes

    sides = {}
    for fanout, top_size in TREE_SHAPES:
        depth = SumTree(capacity, fanout, top_size).depth
        sides[f"fanout {fanout}, top <= {top_size}: {depth} interior level(s)"] = tree_side(fanout, top_size)
    return sides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=1_000_000, help="transitions in each buffer")
    parser.add_argument("--rounds", type=int, default=7, help="alternations of each comparison")
    parser.add_argument(
        "--hidden", type=int, default=256, help="width of the DQN step's two hidden layers (the CartPole config's: 256)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    uniform, prioritized = full_buffers(args.capacity)
    print(f"load average before: {os.getloadavg()}, torch {torch.__version__}, capacity {args.capacity:,}")
    sampling = compare(sampling_sides(uniform, prioritized), 500, args.rounds)
    step = compare(dqn_sides(uniform, prioritized, args.hidden), 200, args.rounds)
    trees = compare(tree_sides(prioritized), 300, args.rounds)
    print(f"load average after: {os.getloadavg()}, {args.rounds} rounds, medians")
    step_title = f"DQN step, batch 64, {args.hidden}-{args.hidden} MLP"
    tables = [("sampling, batch 64", sampling), (step_title, step), ("SumTree sample + set, 64", trees)]
    print(*(table(title, rows) for title, rows in tables), sep="\n\n")


if __name__ == "__main__":
    main()
