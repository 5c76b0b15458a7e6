"""The ``TorchVectorEnv`` contract: autoreset in both modes, no host sync, seeding, saving; building torch envs."""

from __future__ import annotations

import io
import shutil
import sys
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from rl_lightning.envs import (
    TORCH_ENVS,
    Acrobot,
    CartPole,
    MountainCar,
    MountainCarContinuous,
    Pendulum,
    TorchVectorEnv,
    make_vector_env,
    probe_spaces,
    seed_vector_env,
)
from rl_lightning.errors import ConfigurationError
from tests.toy_envs import TORCH_COUNTING_ID, CountingEnv, TorchCountingEnv, counting_env

MODES = [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP]
CLASSIC_ENVS = {
    "Acrobot-v1": Acrobot,
    "CartPole-v1": CartPole,
    "MountainCar-v0": MountainCar,
    "MountainCarContinuous-v0": MountainCarContinuous,
    "Pendulum-v1": Pendulum,
}


def random_actions(env: TorchVectorEnv, generator: torch.Generator) -> torch.Tensor:
    """Uniform random actions for ``env`` (Box actions up to 1.5 times the bounds, to reach the clipping)."""
    space = env.single_action_space
    if isinstance(space, gym.spaces.Discrete):
        return torch.randint(int(space.n), (env.num_envs,), generator=generator)
    high = torch.as_tensor(space.high, dtype=env.dtype)
    return (torch.rand((env.num_envs, *space.shape), generator=generator, dtype=env.dtype) * 3 - 1.5) * high


def rollout(env: TorchVectorEnv, steps: int, action_seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    """``(observations, rewards, terminated, truncated)`` of ``steps`` steps of seeded random actions."""
    generator = torch.Generator().manual_seed(action_seed)
    return [env.step(random_actions(env, generator))[:4] for _ in range(steps)]


def assert_rollouts_equal(first: list[tuple[torch.Tensor, ...]], second: list[tuple[torch.Tensor, ...]]) -> None:
    for step, (ours, theirs) in enumerate(zip(first, second, strict=True)):
        for name, a, b in zip(("observations", "rewards", "terminated", "truncated"), ours, theirs, strict=True):
            assert torch.equal(a, b), f"step {step}: {name} differ"


def ended_anywhere(steps: list[tuple[torch.Tensor, ...]]) -> bool:
    return any(bool((terminated | truncated).any()) for _, _, terminated, truncated in steps)


# Two counting envs: env 0 terminates at its 2nd step, env 1 is truncated at its 3rd (the `ending_envs` fixture).
COUNTING_KWARGS: dict[str, Any] = {"terminate_at": [2, None], "max_episode_steps": 3}


def test_same_step_resets_ended_envs_within_the_step_and_reports_their_final_observation() -> None:
    env = TorchCountingEnv(**COUNTING_KWARGS, autoreset_mode=AutoresetMode.SAME_STEP)
    observations, _ = env.reset()
    assert observations.tolist() == [[0.0], [0.0]]
    # Hand-computed: env 0 ends at steps 2 (terminated) and 4, env 1 at step 3 (truncated); each ended row
    # shows the next episode's [0] while final_obs keeps the count it ended on.
    expected = [
        # observations, rewards, terminated, truncated, final_obs
        ([[1], [1]], [1, 1], [False, False], [False, False], [[1], [1]]),
        ([[0], [2]], [2, 2], [True, False], [False, False], [[2], [2]]),
        ([[1], [0]], [1, 3], [False, False], [False, True], [[1], [3]]),
        ([[0], [1]], [2, 1], [True, False], [False, False], [[2], [1]]),
    ]
    for step, (obs, rewards, terminated, truncated, final_obs) in enumerate(expected, start=1):
        got = env.step(torch.zeros(2, dtype=torch.int64))
        assert got[0].tolist() == obs, f"step {step}"
        assert got[1].tolist() == rewards, f"step {step}"
        assert got[2].tolist() == terminated, f"step {step}"
        assert got[3].tolist() == truncated, f"step {step}"
        assert got[4]["final_obs"].tolist() == final_obs, f"step {step}"
        assert got[4]["_final_obs"].tolist() == [a or b for a, b in zip(terminated, truncated)], f"step {step}"


def test_same_step_matches_gymnasiums_same_step_vector_env() -> None:
    theirs = SyncVectorEnv(
        [lambda: counting_env(terminate_at=2), lambda: counting_env(truncate_at=3)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    ours = TorchCountingEnv(**COUNTING_KWARGS, autoreset_mode=AutoresetMode.SAME_STEP)
    np.testing.assert_array_equal(ours.reset()[0].numpy(), theirs.reset(seed=0)[0])
    for step in range(7):
        obs, rewards, terminated, truncated, info = ours.step(torch.zeros(2, dtype=torch.int64))
        gym_obs, gym_rewards, gym_terminated, gym_truncated, gym_info = theirs.step(np.zeros(2, dtype=np.int64))
        np.testing.assert_array_equal(obs.numpy(), gym_obs, err_msg=f"step {step}")
        np.testing.assert_array_equal(rewards.numpy(), gym_rewards, err_msg=f"step {step}")
        np.testing.assert_array_equal(terminated.numpy(), gym_terminated, err_msg=f"step {step}")
        np.testing.assert_array_equal(truncated.numpy(), gym_truncated, err_msg=f"step {step}")
        ended = gym_info.get("_final_obs", np.zeros(2, dtype=bool))
        np.testing.assert_array_equal(info["_final_obs"].numpy(), ended, err_msg=f"step {step}")
        for row in np.flatnonzero(ended):
            np.testing.assert_array_equal(info["final_obs"][row].numpy(), gym_info["final_obs"][row])
    theirs.close()


def test_next_step_spends_the_step_after_an_end_on_the_reset(ending_envs: SyncVectorEnv) -> None:
    env = TorchCountingEnv(**COUNTING_KWARGS, autoreset_mode=AutoresetMode.NEXT_STEP)
    env.reset()
    ending_envs.reset(seed=0)
    # Hand-computed: the step after an end shows [0] with reward 0 and neither flag, whatever the action.
    expected = [
        # observations, rewards, terminated, truncated
        ([[1], [1]], [1, 1], [False, False], [False, False]),
        ([[2], [2]], [2, 2], [True, False], [False, False]),
        ([[0], [3]], [0, 3], [False, False], [False, True]),
        ([[1], [0]], [1, 0], [False, False], [False, False]),
        ([[2], [1]], [2, 1], [True, False], [False, False]),
    ]
    for step, (obs, rewards, terminated, truncated) in enumerate(expected, start=1):
        got = env.step(torch.ones(2, dtype=torch.int64))
        gym_got = ending_envs.step(np.ones(2, dtype=np.int64))
        assert got[0].tolist() == obs, f"step {step}"
        assert got[1].tolist() == rewards, f"step {step}"
        assert got[2].tolist() == terminated, f"step {step}"
        assert got[3].tolist() == truncated, f"step {step}"
        assert got[4] == {}
        # gymnasium's NEXT_STEP vector env of the same counting envs agrees at every step.
        for ours, theirs in zip(got[:4], gym_got[:4]):
            np.testing.assert_array_equal(ours.numpy(), theirs, err_msg=f"step {step}")


def moved_to_meta(env: TorchVectorEnv) -> TorchVectorEnv:
    """``env`` with its tensors on the meta device, which holds shapes and no data.

    Any host sync (``.item()``, ``bool(tensor)``, a copy to the CPU, a boolean-mask index) raises there, so a step
    that succeeds on meta tensors has none. The generator stays on the CPU: a meta generator does not exist, and
    ``torch.rand`` on the meta device accepts a CPU one.
    """
    for name, value in vars(env).items():
        if isinstance(value, torch.Tensor):
            setattr(env, name, value.to("meta"))
    env.device = torch.device("meta")
    return env


@pytest.mark.parametrize("mode", MODES, ids=lambda mode: mode.name)
@pytest.mark.parametrize("env_id", CLASSIC_ENVS)
def test_step_never_synchronises_with_the_host_and_returns_the_contracts_shapes(
    env_id: str, mode: AutoresetMode
) -> None:
    env = make_vector_env(env_id, 3, vectorization="torch", env_kwargs={"autoreset_mode": mode})
    env.reset(seed=0)
    actions = random_actions(env, torch.Generator().manual_seed(0)).to("meta")
    env = moved_to_meta(env)
    for _ in range(2):  # the second step runs NEXT_STEP's reset masks on a state made by a step
        observations, rewards, terminated, truncated, info = env.step(actions)
    obs_shape = (3, *env.single_observation_space.shape)
    assert (observations.device.type, observations.shape, observations.dtype) == ("meta", obs_shape, torch.float32)
    assert (rewards.shape, rewards.dtype) == ((3,), torch.float32)
    for flags in (terminated, truncated):
        assert (flags.shape, flags.dtype) == ((3,), torch.bool)
    if mode == AutoresetMode.SAME_STEP:
        assert info["final_obs"].shape == obs_shape
        assert info["_final_obs"].shape == (3,)


def test_a_sync_in_step_would_fail_on_the_meta_device(monkeypatch: pytest.MonkeyPatch) -> None:
    # The check above can fail: a step that looks at a value (here to skip resets when nothing ended) raises.
    env = CartPole(2)
    env.reset(seed=0)
    env = moved_to_meta(env)
    dynamics = env.dynamics

    def branching_dynamics(state: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        next_state, rewards, terminated = dynamics(state, actions)
        if terminated.any():
            pass
        return next_state, rewards, terminated

    monkeypatch.setattr(env, "dynamics", branching_dynamics)
    with pytest.raises(RuntimeError, match="meta"):
        env.step(torch.zeros(2, dtype=torch.int64, device="meta"))


@pytest.mark.parametrize("mode", MODES, ids=lambda mode: mode.name)
@pytest.mark.parametrize("env_id", CLASSIC_ENVS)
def test_what_a_step_returns_is_the_callers_to_modify(env_id: str, mode: AutoresetMode) -> None:
    # The results share no memory with the env (CartPole's final observations are its next state itself): NaNs
    # and Trues written into them leave the env's next steps as an untouched twin's, ends (every 5 steps) included.
    kwargs = {"max_episode_steps": 5, "autoreset_mode": mode}
    scribbled, untouched = (make_vector_env(env_id, 8, vectorization="torch", env_kwargs=kwargs) for _ in range(2))
    scribbled.reset(seed=0)
    untouched.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    for _ in range(12):
        actions = random_actions(untouched, generator)
        ours, theirs = scribbled.step(actions), untouched.step(actions)
        assert_rollouts_equal([ours[:4]], [theirs[:4]])
        for result in (*ours[:4], *ours[4].values()):
            result.fill_(float("nan") if result.is_floating_point() else True)


@pytest.mark.parametrize("env_id", CLASSIC_ENVS)
def test_same_seed_gives_the_same_rollout_and_another_seed_another(env_id: str) -> None:
    # A short time limit so that the rollout also draws the autoresets' random initial states.
    kwargs = {"max_episode_steps": 15}
    first = make_vector_env(env_id, 8, vectorization="torch", env_kwargs=kwargs)
    second = make_vector_env(env_id, 8, vectorization="torch", env_kwargs=kwargs)
    first_obs, _ = first.reset(seed=3)
    second_obs, _ = second.reset(seed=3)
    assert torch.equal(first_obs, second_obs)
    first_steps, second_steps = rollout(first, 40), rollout(second, 40)
    assert ended_anywhere(first_steps)
    assert_rollouts_equal(first_steps, second_steps)

    # Reseeding restarts the stream, whatever was drawn before; another seed starts elsewhere.
    assert torch.equal(second.reset(seed=3)[0], first_obs)
    assert not torch.equal(second.reset(seed=4)[0], first_obs)


def test_unseeded_envs_start_differently() -> None:
    # As gymnasium's unseeded envs: no fixed default seed shared by every run.
    assert not torch.equal(CartPole(16).reset()[0], CartPole(16).reset()[0])


def test_reset_refuses_one_seed_per_env_with_a_type_error() -> None:
    with pytest.raises(TypeError, match="one int seed for all its envs"):
        CartPole(2).reset(seed=[0, 1])


def test_seed_vector_env_seeds_a_torch_env_with_one_seed_per_rank() -> None:
    env = make_vector_env("CartPole-v1", 4, vectorization="torch")
    seeded = seed_vector_env(env, seed=10, rank=1)
    # One generator for all envs: the rank's first seed, 10 + 1 * 4.
    assert torch.equal(seeded, CartPole(4).reset(seed=14)[0])


@pytest.mark.parametrize("mode", MODES, ids=lambda mode: mode.name)
@pytest.mark.parametrize("env_id", CLASSIC_ENVS)
def test_state_dict_round_trip_continues_identically(env_id: str, mode: AutoresetMode) -> None:
    kwargs = {"max_episode_steps": 10, "autoreset_mode": mode}
    saved_env = make_vector_env(env_id, 6, vectorization="torch", env_kwargs=kwargs)
    saved_env.reset(seed=0)
    rollout(saved_env, 10, action_seed=1)  # ends at the time limit: NEXT_STEP resets are pending when saved
    buffer = io.BytesIO()
    torch.save(saved_env.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # tensors and numbers only

    restored = make_vector_env(env_id, 6, vectorization="torch", env_kwargs=kwargs)
    restored.reset(seed=99)
    restored.load_state_dict(state)
    continued, resumed = rollout(saved_env, 25, action_seed=2), rollout(restored, 25, action_seed=2)
    assert ended_anywhere(continued)
    assert_rollouts_equal(continued, resumed)
    # Without the saved state the continuation differs: the comparison above can fail.
    fresh = make_vector_env(env_id, 6, vectorization="torch", env_kwargs=kwargs)
    fresh.reset(seed=99)
    assert not torch.equal(rollout(fresh, 25, action_seed=2)[-1][0], continued[-1][0])


def test_state_of_another_number_of_envs_is_refused() -> None:
    env = CartPole(4)
    env.reset(seed=0)
    with pytest.raises(ConfigurationError, match="holds 4 envs but this CartPole has 2: build it with num_envs=4"):
        CartPole(2).load_state_dict(env.state_dict())


@pytest.mark.parametrize("env_id", CLASSIC_ENVS)
def test_an_id_with_vectorization_torch_builds_the_torch_env_with_gymnasiums_spaces(env_id: str) -> None:
    env = make_vector_env(env_id, 4, vectorization="torch", device="cpu")
    reference = gym.make(env_id)
    assert type(env) is CLASSIC_ENVS[env_id]
    assert (env.num_envs, env.device) == (4, torch.device("cpu"))
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert env.single_observation_space == reference.observation_space
    assert env.single_action_space == reference.action_space
    assert env.observation_space == gym.vector.utils.batch_space(reference.observation_space, 4)
    assert env.max_episode_steps == reference.spec.max_episode_steps
    assert probe_spaces(env_id, vectorization="torch") == (reference.observation_space, reference.action_space)
    reference.close()


def test_env_kwargs_reach_the_torch_envs_constructor() -> None:
    env = make_vector_env(
        "Pendulum-v1", 2, vectorization="torch", env_kwargs={"dtype": "float64", "autoreset_mode": "next_step"}
    )
    observations, _ = env.reset(seed=0)
    assert observations.dtype == torch.float64
    assert env.single_observation_space.dtype == np.float64
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP


def test_unknown_id_with_vectorization_torch_lists_the_ids_that_have_one() -> None:
    ids = "'Acrobot-v1', 'CartPole-v1', 'MountainCar-v0', 'MountainCarContinuous-v0', 'Pendulum-v1'"
    with pytest.raises(ConfigurationError, match=f"'LunarLander-v3' has no torch implementation.*{ids}"):
        make_vector_env("LunarLander-v3", vectorization="torch")
    with pytest.raises(ConfigurationError, match="has no torch implementation"):
        probe_spaces("CartPole-v0", vectorization="torch")


def test_a_torch_env_registered_by_its_module_is_built_from_module_and_id(monkeypatch: pytest.MonkeyPatch) -> None:
    # Forget the module and its registration, so only importing "tests.toy_envs" can bring the id back.
    monkeypatch.delitem(sys.modules, "tests.toy_envs")
    monkeypatch.delitem(TORCH_ENVS, TORCH_COUNTING_ID)
    env = make_vector_env(
        f"tests.toy_envs:{TORCH_COUNTING_ID}", 3, vectorization="torch", env_kwargs={"terminate_at": [1, None, 1]}
    )
    assert TORCH_COUNTING_ID in TORCH_ENVS
    env.reset()
    assert env.step(torch.zeros(3, dtype=torch.int64))[2].tolist() == [True, False, True]


def test_a_torch_env_subclass_is_built_with_the_kwargs_and_probed_without_saying_torch() -> None:
    env = make_vector_env(TorchCountingEnv, 3, vectorization="torch", env_kwargs={"terminate_at": [1, None, 1]})
    env.reset()
    assert isinstance(env, TorchCountingEnv)
    assert env.step(torch.zeros(3, dtype=torch.int64))[2].tolist() == [True, False, True]
    # A TorchVectorEnv subclass cannot be anything else: probing needs no vectorization argument.
    assert probe_spaces(TorchCountingEnv) == (CountingEnv.observation_space, CountingEnv.action_space)


def test_a_factory_is_called_with_num_envs_device_and_env_kwargs() -> None:
    calls: list[dict[str, Any]] = []

    def factory(**kwargs: Any) -> TorchVectorEnv:
        calls.append(kwargs)
        return TorchCountingEnv(**kwargs)

    env = make_vector_env(factory, 2, vectorization="torch", device="cpu", env_kwargs={"max_episode_steps": 7})
    assert calls == [{"num_envs": 2, "device": "cpu", "max_episode_steps": 7}]
    assert env.max_episode_steps == 7
    probe_spaces(factory, vectorization="torch")
    assert calls[-1] == {"num_envs": 1, "device": "cpu"}


@pytest.mark.parametrize(
    ("env", "kwargs", "message"),
    [
        (TorchCountingEnv, {}, "TorchCountingEnv is a TorchVectorEnv.*vectorization='torch'"),
        (lambda: TorchCountingEnv(), {}, r"returned TorchCountingEnv, not a gymnasium\.Env.*vectorization='torch'"),
        (lambda **kwargs: 3, {"vectorization": "torch"}, "returned int, not a TorchVectorEnv"),
        (lambda num_envs, device: TorchCountingEnv(), {"vectorization": "torch"}, "built 2 envs where num_envs=3"),
        ("CartPole-v1", {"vectorization": "torch", "wrappers": [gym.wrappers.ClipReward]}, "cannot wrap a torch"),
        ("CartPole-v1", {"vectorization": "torch", "render_mode": "rgb_array"}, "torch vector envs do not render"),
        (42, {"vectorization": "torch"}, "is not an env id, a TorchVectorEnv subclass or a factory"),
    ],
    ids=[
        "subclass-without-torch",
        "factory-without-torch",
        "not-a-torch-env",
        "ignores-num-envs",
        "wrappers",
        "render-mode",
        "not-an-env",
    ],
)
def test_misbuilt_torch_envs_are_refused(env: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_vector_env(env, 3, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dtype": torch.float16}, "must be torch.float32 or torch.float64"),
        ({"autoreset_mode": AutoresetMode.DISABLED}, "must be AutoresetMode.SAME_STEP or AutoresetMode.NEXT_STEP"),
        ({"autoreset_mode": "sometimes"}, "must be AutoresetMode.SAME_STEP or AutoresetMode.NEXT_STEP"),
        ({"max_episode_steps": 0}, "max_episode_steps=0 must be at least 1"),
    ],
)
def test_bad_torch_env_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CartPole(2, **kwargs)


def test_step_before_reset_is_refused() -> None:
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        CartPole(2).step(torch.zeros(2, dtype=torch.int64))


def compiled_and_uncompiled(**kwargs: Any) -> tuple[CartPole, CartPole]:
    """Two CartPoles reset with the same seed, the first with ``compile=True``."""
    compiled, uncompiled = CartPole(compile=True, **kwargs), CartPole(**kwargs)
    compiled.reset(seed=0)
    uncompiled.reset(seed=0)
    return compiled, uncompiled


@pytest.fixture
def fresh_dynamo() -> Any:
    """torch.compile's caches emptied before and after: a test compiles anew rather than reusing another's graph."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.skipif(not any(map(shutil.which, ("g++", "clang++", "c++"))), reason="inductor needs a C++ compiler")
@pytest.mark.usefixtures("fresh_dynamo")
@pytest.mark.parametrize("mode", MODES, ids=lambda mode: mode.name)
def test_compiled_step_matches_the_uncompiled_step_and_draws_the_same_random_stream(mode: AutoresetMode) -> None:
    # float64 and a 10-step limit: every row ends (and restarts from a fresh draw) several times in 45 steps.
    compiled, uncompiled = compiled_and_uncompiled(
        num_envs=64, dtype=torch.float64, max_episode_steps=10, autoreset_mode=mode
    )
    generator = torch.Generator().manual_seed(0)
    ends = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed compile would warn and step uncompiled: the comparison would be moot
        for step in range(45):
            actions = random_actions(uncompiled, generator)
            ours, theirs = compiled.step(actions), uncompiled.step(actions)
            # Rounding may differ in the last bits (inductor's own sin and cos), nothing more.
            for a, b in zip((*ours[:2], *ours[4].values()), (*theirs[:2], *theirs[4].values()), strict=True):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)  # the masks in info exactly
            # The flags cross the compiled kernel as int32 (transition_with_int_flags) and come back as bools.
            for a, b in ((ours[2], theirs[2]), (ours[3], theirs[3]), (compiled.needs_reset, uncompiled.needs_reset)):
                assert a.dtype == torch.bool and torch.equal(a, b), f"step {step}"
            ends += int((theirs[2] | theirs[3]).sum())
    assert ends >= 4 * 64  # every env restarted at least 4 times: the fresh draws were compared too
    # Compiled or not, the state is kept column by column (each variable's ops then run over contiguous memory).
    assert compiled.state.stride() == uncompiled.state.stride() == (1, 64)
    assert torch.equal(compiled.generator.get_state(), uncompiled.generator.get_state())


@pytest.mark.usefixtures("fresh_dynamo")
def test_compile_without_a_compiler_warns_once_and_steps_uncompiled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch._inductor.config.cpp, "cxx", ("no-such-compiler",))
    monkeypatch.setattr(torch._inductor.config, "fx_graph_cache", False)  # a cached kernel would need no compiler
    compiled, uncompiled = compiled_and_uncompiled(num_envs=8, max_episode_steps=3)
    actions = torch.ones(8, dtype=torch.int64)
    with pytest.warns(UserWarning, match="could not build the env's step .*stepping uncompiled"):
        first = compiled.step(actions)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        steps = [first, *(compiled.step(actions) for _ in range(4))]
    expected = [uncompiled.step(actions) for _ in range(5)]
    assert ended_anywhere([step[:4] for step in expected])
    assert_rollouts_equal([step[:4] for step in steps], [step[:4] for step in expected])
