"""Named random streams: distinct per stream and per rank, the same for the same seed."""

import torch

from rl_lightning import seeding


def test_streams_differ_from_each_other_across_ranks_and_seeds():
    seeds = {
        (seed, stream, rank): seeding.stream_seed(seed, stream, rank)
        for seed in (0, 1, 2)
        for stream in ("exploration", "replay")
        for rank in (0, 1, 2)
    }
    assert len(set(seeds.values())) == len(seeds)  # no two streams start alike (seed + rank made them collide)
    assert seeding.stream_seed(0, "exploration") != seeding.stream_seed(0, "replay")
    assert seeding.stream_seed(1, "exploration", rank=0) != seeding.stream_seed(0, "exploration", rank=1)


def test_initialisation_is_the_same_on_every_rank_and_generators_repeat():
    assert seeding.stream_seed(5, "init", rank=0) == seeding.stream_seed(5, "init", rank=3) == 5
    first = torch.rand(4, generator=seeding.generator(5, "replay", rank=1))
    again = torch.rand(4, generator=seeding.generator(5, "replay", rank=1))
    assert torch.equal(first, again)
    assert not torch.equal(first, torch.rand(4, generator=seeding.generator(5, "exploration", rank=1)))


def test_evaluation_envs_never_share_a_seed_across_ranks():
    firsts = [seeding.eval_env_seed(0, rank, eval_envs=5) for rank in range(3)]
    assert firsts == [seeding.EVAL_SEED_OFFSET + offset for offset in (0, 5, 10)]
