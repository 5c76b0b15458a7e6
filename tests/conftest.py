"""Shared fixtures: vector envs of the deterministic ``CountingEnv`` (see ``tests/toy_envs.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from gymnasium.vector import SyncVectorEnv

from tests.toy_envs import counting_vector_env


@pytest.fixture
def ending_envs() -> Iterator[SyncVectorEnv]:
    """Two counting envs: env 0 terminates at its 2nd step, env 1 is truncated by a time limit at its 3rd."""
    vector_env = counting_vector_env([(2, None), (None, 3)])
    yield vector_env
    vector_env.close()


@pytest.fixture(autouse=True)
def single_torch_thread() -> Iterator[None]:
    """One intra-op thread per test. The networks are tiny; on a busy machine, two threads waiting on each other
    at every op made a PPO run on Pendulum about 50 times slower (400 s instead of 8 s for 4096 env steps)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
