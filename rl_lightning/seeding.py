"""Every random stream of a run, derived in one place from the run's ``seed`` and the process's rank.

A run draws from several streams: the training envs, the evaluation envs, the networks' initialisation,
exploration (action sampling), replay sampling and minibatch order. Each has its own seed here, so no two
streams start alike and changing how one is used leaves the others untouched. The training envs keep the
documented ``seed + rank * num_envs + i`` (see :func:`rl_lightning.envs.env_seeds`).
"""

from __future__ import annotations

from typing import Literal

import torch

EVAL_SEED_OFFSET = 1_000_003
"""Evaluation envs are seeded from ``seed + EVAL_SEED_OFFSET`` so they never replay a training episode."""

Stream = Literal["init", "exploration", "replay"]
_STREAM_IDS = {"exploration": 1, "replay": 2}
_MASK = 2**64 - 1


def stream_seed(seed: int, stream: Stream, rank: int = 0) -> int:
    """The seed of ``stream`` in process ``rank`` of a run seeded ``seed``.

    ``init`` seeds the networks' initialisation (the same on every rank, as DDP needs); ``exploration`` the
    policy's action sampling and minibatch order; ``replay`` the replay buffer's sampling.
    """
    if stream == "init":
        return seed
    # splitmix64's finaliser over (seed, rank, stream): nearby seeds and ranks give unrelated streams, and no
    # stream starts where another does (seed + rank did: exploration and replay started alike, and
    # (seed 1, rank 0) like (seed 0, rank 1)).
    mixed = (seed * 0x9E3779B97F4A7C15 + rank * 0xBF58476D1CE4E5B9 + _STREAM_IDS[stream] * 0x94D049BB133111EB) & _MASK
    for shift, factor in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        mixed = ((mixed ^ (mixed >> shift)) * factor) & _MASK
    return (mixed ^ (mixed >> 31)) >> 1  # torch seeds are signed 64-bit: keep 63 bits


def eval_env_seed(seed: int, rank: int, eval_envs: int) -> int:
    """The first evaluation env seed of ``rank``: rank r's envs take ``seed + EVAL_SEED_OFFSET + r * eval_envs`` on."""
    return seed + EVAL_SEED_OFFSET + rank * eval_envs


def generator(seed: int, stream: Stream, rank: int = 0, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded for ``stream``."""
    stream_generator = torch.Generator(device=device)
    stream_generator.manual_seed(stream_seed(seed, stream, rank))
    return stream_generator
