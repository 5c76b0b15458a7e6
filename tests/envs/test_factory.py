"""Building vector envs: every way to name an env, per-env seeds, vectorization modes, wrappers."""

from __future__ import annotations

import functools
import importlib.util
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from rl_lightning.envs import env_name, env_seeds, make_vector_env, probe_spaces, seed_vector_env
from rl_lightning.envs.factory import missing_dependency
from rl_lightning.errors import ConfigurationError
from tests.toy_envs import COUNTING_ID, CountingEnv, counting_env

ZERO_ACTIONS = np.zeros(2, dtype=np.int64)


def first_observations(vector_env: gym.vector.VectorEnv, seed: int = 0) -> np.ndarray:
    try:
        return seed_vector_env(vector_env, seed)
    finally:
        vector_env.close()


@pytest.mark.parametrize(
    "env",
    [
        pytest.param(COUNTING_ID, id="registered-id"),
        pytest.param(CountingEnv, id="env-subclass"),
        pytest.param(lambda: CountingEnv(), id="factory"),
    ],
)
def test_env_is_built_from_an_id_a_class_or_a_factory(env) -> None:
    vector_env = make_vector_env(env, num_envs=2)
    assert isinstance(vector_env.single_observation_space, gym.spaces.Box)
    assert vector_env.single_action_space == gym.spaces.Discrete(2)
    # Counting envs start at observation [0] and observe [1] after one step.
    np.testing.assert_array_equal(first_observations(vector_env), [[0.0], [0.0]])


def test_module_prefix_of_an_id_is_imported_to_register_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Forget the module and its registration, so only importing "tests.toy_envs" can bring the id back.
    monkeypatch.delitem(sys.modules, "tests.toy_envs")
    monkeypatch.delitem(gym.registry, COUNTING_ID)
    vector_env = make_vector_env(f"tests.toy_envs:{COUNTING_ID}", num_envs=1)
    assert COUNTING_ID in gym.registry
    np.testing.assert_array_equal(first_observations(vector_env), [[0.0]])


def test_module_prefixed_id_works_in_spawned_async_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    # A spawned worker (macOS, Windows, Python >= 3.14) starts with gymnasium's registry only: it must
    # import the id's module itself.
    spawning = functools.partial(gym.vector.AsyncVectorEnv, context="spawn")
    monkeypatch.setattr(gym.vector, "AsyncVectorEnv", spawning)
    vector_env = make_vector_env(f"tests.toy_envs:{COUNTING_ID}", num_envs=1, vectorization="async")
    np.testing.assert_array_equal(first_observations(vector_env), [[0.0]])


def test_env_kwargs_reach_the_constructor() -> None:
    vector_env = make_vector_env(CountingEnv, num_envs=1, env_kwargs={"terminate_at": 1})
    seed_vector_env(vector_env, 0)
    # terminate_at=1: the first step terminates.
    _, _, terminated, _, _ = vector_env.step(np.zeros(1, dtype=np.int64))
    vector_env.close()
    assert terminated.tolist() == [True]


@pytest.mark.parametrize(("env", "suggestion"), [("CartPole-v2", "'CartPole-v1'"), ("cartpole", "'CartPole-v1'")])
def test_unknown_id_is_refused_with_close_matches(env: str, suggestion: str) -> None:
    with pytest.raises(ConfigurationError, match=f"Did you mean .*{suggestion}"):
        make_vector_env(env)


def test_unimportable_module_of_an_id_is_refused_naming_the_module() -> None:
    with pytest.raises(ConfigurationError, match="cannot import module 'no_such_module_for_rl_lightning'"):
        make_vector_env("no_such_module_for_rl_lightning:Foo-v0")


def test_factory_returning_something_else_than_an_env_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"returned int, not a gymnasium\.Env"):
        make_vector_env(lambda: 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"env": 42}, "is not an env id, an Env subclass or a factory"),
        ({"env": CountingEnv, "num_envs": 0}, "num_envs=0 must be at least 1"),
        ({"env": CountingEnv, "vectorization": "threads"}, "must be one of 'sync', 'async', 'native'"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_vector_env(**kwargs)


def test_env_seeds_follow_seed_plus_rank_times_num_envs_plus_index() -> None:
    # seed + rank * num_envs + i = 10 + 1 * 3 + (0, 1, 2)
    assert env_seeds(10, num_envs=3, rank=1) == [13, 14, 15]


def test_each_env_gets_its_own_seed_and_equal_seeds_give_equal_observations() -> None:
    observations = first_observations(make_vector_env("CartPole-v1", num_envs=2), seed=0)
    assert not np.array_equal(observations[0], observations[1])  # seeds 0 and 1
    np.testing.assert_array_equal(observations, first_observations(make_vector_env("CartPole-v1", 2), seed=0))

    # Rank 1 of 2 envs per rank seeds its envs 0 + 1 * 2 + (0, 1) = 2, 3: envs 2 and 3 of one 4-env rank.
    four_envs = first_observations(make_vector_env("CartPole-v1", num_envs=4), seed=0)
    rank_one = make_vector_env("CartPole-v1", num_envs=2)
    try:
        np.testing.assert_array_equal(seed_vector_env(rank_one, seed=0, rank=1), four_envs[2:])
    finally:
        rank_one.close()


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_sync_and_async_envs_autoreset_on_the_next_step(vectorization: str) -> None:
    vector_env = make_vector_env(CountingEnv, num_envs=2, vectorization=vectorization, env_kwargs={"terminate_at": 2})
    assert vector_env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    seed_vector_env(vector_env, 0)
    try:
        steps = [vector_env.step(ZERO_ACTIONS) for _ in range(3)]
    finally:
        vector_env.close()
    observations, rewards, terminated, truncated, _ = zip(*steps)
    # Step 2 terminates and still shows the final observation [2]; step 3 only resets: observation
    # [0], reward 0, no flags.
    assert [obs[0, 0] for obs in observations] == [1.0, 2.0, 0.0]
    assert [r[0] for r in rewards] == [1.0, 2.0, 0.0]
    assert [bool(t[0]) for t in terminated] == [False, True, False]
    assert not np.any(truncated)


def test_native_cartpole_returns_the_final_observation_then_resets_on_the_next_step() -> None:
    vector_env = make_vector_env("CartPole-v1", num_envs=2, vectorization="native")
    assert vector_env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    observations = seed_vector_env(vector_env, 0)
    pushes = np.ones(2, dtype=np.int64)  # always pushing right topples the pole within a few dozen steps
    try:
        for _ in range(200):
            observations, _, terminated, _, _ = vector_env.step(pushes)
            if terminated[0]:
                break
        final = observations[0]
        reset_observations, rewards, terminated_after, truncated_after, _ = vector_env.step(pushes)
    finally:
        vector_env.close()
    # CartPole terminates when |x| > 2.4 or |angle| > 0.2095 rad and resets into [-0.05, 0.05]^4.
    assert abs(final[0]) > 2.4 or abs(final[2]) > 0.2095
    assert np.all(np.abs(reset_observations[0]) <= 0.05)
    assert rewards[0] == 0.0
    assert not terminated_after[0] and not truncated_after[0]


def test_native_vectorization_is_refused_for_envs_without_a_native_implementation() -> None:
    with pytest.raises(ConfigurationError, match="needs an env id with a native vector implementation"):
        make_vector_env(COUNTING_ID, vectorization="native")
    with pytest.raises(ConfigurationError, match="needs an env id with a native vector implementation"):
        make_vector_env(CountingEnv, vectorization="native")


def test_native_vectorization_refuses_wrappers() -> None:
    with pytest.raises(ConfigurationError, match="cannot wrap a native vector env"):
        make_vector_env("CartPole-v1", vectorization="native", wrappers=[gym.wrappers.RecordEpisodeStatistics])


def add_one_to_rewards(env: gym.Env) -> gym.Env:
    return gym.wrappers.TransformReward(env, lambda reward: reward + 1.0)


def ten_times_rewards(env: gym.Env) -> gym.Env:
    return gym.wrappers.TransformReward(env, lambda reward: 10.0 * reward)


@pytest.mark.parametrize("env", [CountingEnv, COUNTING_ID], ids=["env-subclass", "registered-id"])
def test_wrappers_are_applied_in_order_to_every_env(env) -> None:
    vector_env = make_vector_env(env, num_envs=2, wrappers=[add_one_to_rewards, ten_times_rewards])
    seed_vector_env(vector_env, 0)
    _, rewards, _, _, _ = vector_env.step(ZERO_ACTIONS)
    vector_env.close()
    # First reward 1, plus one, times ten: (1 + 1) * 10 = 20 (the other order would give 11).
    np.testing.assert_array_equal(rewards, [20.0, 20.0])


def test_probe_spaces_sees_the_wrapped_spaces() -> None:
    doubled = gym.spaces.Box(0.0, 1000.0, (2,), np.float32)

    def observe_twice(env: gym.Env) -> gym.Env:
        return gym.wrappers.TransformObservation(env, lambda obs: np.concatenate([obs, obs]), doubled)

    observation_space, action_space = probe_spaces(lambda: counting_env(truncate_at=3), wrappers=[observe_twice])
    assert observation_space == doubled  # CountingEnv's own observations have shape (1,)
    assert action_space == gym.spaces.Discrete(2)


def test_env_name_is_the_bare_id_or_the_class_name() -> None:
    assert env_name("tests.toy_envs:Counting-v0") == "Counting-v0"
    assert env_name("CartPole-v1") == "CartPole-v1"
    assert env_name(CountingEnv) == "CountingEnv"


@pytest.mark.skipif(importlib.util.find_spec("Box2D") is not None, reason="Box2D is installed")
def test_an_env_needing_a_missing_package_names_what_to_install() -> None:
    with pytest.raises(ConfigurationError, match=r"^env='LunarLander-v3' needs a package that is not installed .*"
                       r"Install it: pip install \"gymnasium\[box2d\]\"\.$"):
        make_vector_env("LunarLander-v3", 1)


def test_a_missing_mujoco_names_rl_lightnings_extra() -> None:
    error = gym.error.DependencyNotInstalled('MuJoCo is not installed, run `pip install "gymnasium[mujoco]"`')
    assert missing_dependency("HalfCheetah-v5", error).endswith('Install it: pip install "rl-lightning[mujoco]".')
