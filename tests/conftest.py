"""Shared fixtures: vector envs of the deterministic ``CountingEnv`` (see ``tests/toy_envs.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gymnasium.vector import SyncVectorEnv

from tests.toy_envs import counting_vector_env


@pytest.fixture
def ending_envs() -> Iterator[SyncVectorEnv]:
    """Two counting envs: env 0 terminates at its 2nd step, env 1 is truncated by a time limit at its 3rd."""
    vector_env = counting_vector_env([(2, None), (None, 3)])
    yield vector_env
    vector_env.close()
