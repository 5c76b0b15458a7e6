"""A vector env's saved state: restored into a fresh env of the same config, it steps on exactly as the original."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rl_lightning.envs import EnvStateError, load_vector_env_state, make_vector_env, vector_env_state


def play(vector_env: gym.vector.VectorEnv, actions: list[np.ndarray]) -> list[tuple]:
    return [vector_env.step(action)[:4] for action in actions]


@pytest.mark.parametrize(
    ("env_id", "vectorization"),
    [("CartPole-v1", "sync"), ("CartPole-v1", "native"), ("Pendulum-v1", "sync")],
)
def test_a_restored_env_continues_exactly(env_id: str, vectorization: str) -> None:
    original = make_vector_env(env_id, 3, vectorization=vectorization)
    original.reset(seed=[0, 1, 2] if vectorization == "sync" else 0)
    original.action_space.seed(5)
    # 40 random steps: CartPole episodes end and autoreset within them, on both sides of the save.
    actions = [original.action_space.sample() for _ in range(80)]
    play(original, actions[:40])
    state = vector_env_state(original)
    expected = play(original, actions[40:])
    expected_sample = original.action_space.sample()

    restored = make_vector_env(env_id, 3, vectorization=vectorization)
    load_vector_env_state(restored, state)
    replayed = play(restored, actions[40:])
    if env_id == "CartPole-v1":
        assert any(terminated.any() for _, _, terminated, _ in expected)
    for got, want in zip(replayed, expected):
        for got_part, want_part in zip(got, want):
            np.testing.assert_array_equal(got_part, want_part)
    # The action space's sampler (exploration by action_space.sample()) continues too.
    np.testing.assert_array_equal(restored.action_space.sample(), expected_sample)
    original.close()
    restored.close()


def test_an_env_that_cannot_be_pickled_says_why() -> None:
    doubled = make_vector_env(
        "CartPole-v1", 2, wrappers=[lambda env: gym.wrappers.TransformReward(env, lambda reward: 2 * reward)]
    )
    with pytest.raises(EnvStateError, match=r"SyncVectorEnv cannot be pickled .*lambda"):
        vector_env_state(doubled)
    doubled.close()


def test_async_envs_cannot_be_saved() -> None:
    subprocesses = make_vector_env("CartPole-v1", 2, vectorization="async")
    try:
        with pytest.raises(EnvStateError, match="AsyncVectorEnv cannot be pickled"):
            vector_env_state(subprocesses)
    finally:
        subprocesses.close()
