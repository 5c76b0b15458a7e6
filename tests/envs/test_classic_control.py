"""The torch classic control envs against gymnasium's own, step by step from the same states.

Tolerances: our envs run in float64 for these comparisons. Next states, rewards and the final observations computed
from gymnasium's float64 state agree to ``rtol = atol = 1e-12`` (the two differ only in the last bits of sin, cos
and the modulo, and for CartPole in the rounding of its folded constants and fused products: a few ulps at most).
Gymnasium returns float32 observations, so those are compared with our observations rounded to float32, to one
float32 ulp. MountainCarContinuous rounds its state itself to float32 at
every step, so its next states are compared to ``atol = 1e-7`` (half a float32 ulp at ``|position| = 1.2`` is
``6e-8``). Terminated and truncated flags must be equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from rl_lightning.envs import TorchVectorEnv, make_vector_env

TIGHT = {"rtol": 1e-12, "atol": 1e-12}
FLOAT32_ULP = {"rtol": 2.0**-23, "atol": 1e-12}
TIME_LIMIT = 4
"""The time limit of the comparisons, short so that truncations (and truncations at a termination) are common."""


@dataclass(frozen=True)
class Case:
    """An env to compare: where its test states and actions are drawn, and what its resets must look like."""

    env_id: str
    state_low: tuple[float, ...]
    state_high: tuple[float, ...]
    action_low: float = 0.0  # Box actions only; wider than the space, so that clipping is exercised
    action_high: float = 0.0
    reset_low: tuple[float, ...] = ()
    reset_high: tuple[float, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    terminates: bool = True


PI = math.pi
CASES = [
    # Cart positions past 2.4 and pole angles past 12 degrees terminate about a quarter of the steps.
    Case(
        "CartPole-v1", (-2.6, -3.0, -0.26, -3.0), (2.6, 3.0, 0.26, 3.0), reset_low=(-0.05,) * 4, reset_high=(0.05,) * 4
    ),
    Case(
        "CartPole-v1",
        (-2.6, -3.0, -0.26, -3.0),
        (2.6, 3.0, 0.26, 3.0),
        reset_low=(-0.05,) * 4,
        reset_high=(0.05,) * 4,
        kwargs=(("sutton_barto_reward", True),),
    ),
    # Angles beyond [-pi, pi] (the state is not wrapped) and speeds and torques beyond the clipping.
    Case("Pendulum-v1", (-3 * PI, -8.0), (3 * PI, 8.0), -3.0, 3.0, (-PI, -1.0), (PI, 1.0), terminates=False),
    Case("Pendulum-v1", (-3 * PI, -8.0), (3 * PI, 8.0), -3.0, 3.0, (-PI, -1.0), (PI, 1.0), (("g", 9.81),), False),
    # Full speeds wrap the angles and reach the speed limits; a fifth of the states are above the line.
    Case(
        "Acrobot-v1",
        (-PI, -PI, -4 * PI, -9 * PI),
        (PI, PI, 4 * PI, 9 * PI),
        reset_low=(-0.1,) * 4,
        reset_high=(0.1,) * 4,
    ),
    # The whole track: the goal is reached and the car stops at the left wall.
    Case("MountainCar-v0", (-1.2, -0.07), (0.6, 0.07), reset_low=(-0.6, 0.0), reset_high=(-0.4, 0.0)),
    Case(
        "MountainCar-v0",
        (-1.2, -0.07),
        (0.6, 0.07),
        reset_low=(-0.6, 0.0),
        reset_high=(-0.4, 0.0),
        kwargs=(("goal_velocity", 0.02),),
    ),
    Case("MountainCarContinuous-v0", (-1.2, -0.07), (0.6, 0.07), -1.5, 1.5, (-0.6, 0.0), (-0.4, 0.0)),
]
DEFAULT_CASES = [case for case in CASES if not case.kwargs]
"""One case per env, with gymnasium's default arguments."""


def case_id(case: Case) -> str:
    return case.env_id + "".join(f"-{name}={value}" for name, value in case.kwargs)


def draw_actions(case: Case, env: TorchVectorEnv, rng: np.random.Generator) -> np.ndarray:
    if isinstance(env.single_action_space, gym.spaces.Discrete):
        return rng.integers(int(env.single_action_space.n), size=env.num_envs)
    return rng.uniform(case.action_low, case.action_high, size=(env.num_envs, 1))


def gym_action(actions: np.ndarray, row: int) -> Any:
    # Box actions in float64, as ours: gymnasium computes in the action's dtype where it does not clip it first.
    return int(actions[row]) if actions.ndim == 1 else actions[row].astype(np.float64)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_steps_match_gymnasium_from_the_same_states(case: Case) -> None:
    num_envs, steps = 16, 100
    kwargs = dict(case.kwargs)
    ours = make_vector_env(
        case.env_id,
        num_envs,
        vectorization="torch",
        env_kwargs={"dtype": torch.float64, "max_episode_steps": TIME_LIMIT, **kwargs},
    )
    theirs = [
        gym.make(case.env_id, max_episode_steps=TIME_LIMIT, disable_env_checker=True, **kwargs) for _ in range(num_envs)
    ]
    ours.reset(seed=0)
    for row, env in enumerate(theirs):
        env.reset(seed=row)
    rng = np.random.default_rng(0)
    state_tolerance = {"atol": 1e-7} if case.env_id == "MountainCarContinuous-v0" else TIGHT
    terminations = truncations = both = stopped_at_wall = 0
    for step in range(steps):
        states = rng.uniform(case.state_low, case.state_high, size=(num_envs, len(case.state_low)))
        ours.state = torch.as_tensor(states)
        for row, env in enumerate(theirs):
            env.unwrapped.state = states[row].copy()
        actions = draw_actions(case, ours, rng)
        observations, rewards, terminated, truncated, info = ours.step(torch.as_tensor(actions))

        for row, env in enumerate(theirs):
            where = f"step {step}, env {row}, from state {states[row].tolist()}, action {actions[row]}"
            gym_obs, gym_reward, gym_terminated, gym_truncated, _ = env.step(gym_action(actions, row))
            gym_state = np.asarray(env.unwrapped.state, dtype=np.float64)
            assert (terminated[row].item(), truncated[row].item()) == (gym_terminated, gym_truncated), where
            np.testing.assert_allclose(rewards[row].item(), gym_reward, **TIGHT, err_msg=where)
            final_obs = info["final_obs"][row].numpy()
            np.testing.assert_allclose(final_obs.astype(np.float32), gym_obs, **FLOAT32_ULP, err_msg=where)
            expected_obs = ours.observe(torch.as_tensor(gym_state)[None])[0].numpy()
            np.testing.assert_allclose(final_obs, expected_obs, **state_tolerance, err_msg=where)
            if gym_terminated or gym_truncated:
                env.reset()
            else:
                np.testing.assert_allclose(ours.state[row].numpy(), gym_state, **state_tolerance, err_msg=where)
                np.testing.assert_array_equal(observations[row].numpy(), final_obs, err_msg=where)
            if case.env_id.startswith("MountainCar"):
                # MountainCarContinuous holds its state in float32: -1.2 is stored rounded.
                stopped_at_wall += bool(np.isclose(gym_state[0], -1.2, rtol=0, atol=1e-6) and gym_state[1] == 0.0)
        terminations += int(terminated.sum())
        truncations += int(truncated.sum())
        both += int((terminated & truncated).sum())

    # The comparison covered what it is meant to: ends of both kinds, both at once, the wall of MountainCar.
    assert truncations > 0
    if case.terminates:
        assert terminations > 0 and both > 0
    if case.env_id.startswith("MountainCar"):
        assert stopped_at_wall > 0
    for env in theirs:
        env.close()


@pytest.mark.parametrize("case", DEFAULT_CASES, ids=case_id)
def test_ended_rows_restart_from_the_reset_distribution_in_the_same_step(case: Case) -> None:
    # float64 in the tests of the reset ranges: a float32 draw can round up onto a bound like float32(pi) > pi.
    env_kwargs = {"max_episode_steps": 1, "dtype": torch.float64}
    env = make_vector_env(case.env_id, 256, vectorization="torch", env_kwargs=env_kwargs)
    env.reset(seed=0)
    # A one-step time limit ends every episode at every step: every row must restart.
    observations, _, _, truncated, info = env.step(torch.as_tensor(draw_actions(case, env, np.random.default_rng(0))))
    assert bool(truncated.all())
    assert torch.equal(observations, env.observe(env.state))
    assert not torch.equal(observations, info["final_obs"])
    low, high = torch.tensor(case.reset_low), torch.tensor(case.reset_high)
    assert bool(((env.state >= low) & (env.state <= high)).all())


@pytest.mark.parametrize("case", DEFAULT_CASES, ids=case_id)
def test_reset_draws_from_gymnasiums_ranges(case: Case) -> None:
    env = make_vector_env(case.env_id, 4096, vectorization="torch", env_kwargs={"dtype": torch.float64})
    observations, _ = env.reset(seed=0)
    assert torch.equal(observations, env.observe(env.state))
    low, high = torch.tensor(case.reset_low), torch.tensor(case.reset_high)
    states = env.state
    assert bool((states.min(0).values >= low).all()) and bool((states.max(0).values <= high).all())
    # ... and fills them: a narrower range would leave the outer percent of the range empty.
    margin = (high - low) / 100
    assert bool((states.min(0).values <= low + margin).all()) and bool((states.max(0).values >= high - margin).all())


@pytest.mark.parametrize(
    ("env_id", "options", "bounds"),
    [
        ("CartPole-v1", {"low": -0.2, "high": 0.3}, [(-0.2, 0.3)] * 4),
        ("Acrobot-v1", {"low": -0.5, "high": 0.5}, [(-0.5, 0.5)] * 4),
        ("MountainCar-v0", {"low": -0.9, "high": -0.1}, [(-0.9, -0.1), (0.0, 0.0)]),
        ("MountainCarContinuous-v0", {"low": -0.9, "high": -0.1}, [(-0.9, -0.1), (0.0, 0.0)]),
        ("Pendulum-v1", {"x_init": 0.5, "y_init": 4.0}, [(-0.5, 0.5), (-4.0, 4.0)]),
    ],
)
def test_reset_options_take_gymnasiums_keys(env_id: str, options: dict[str, float], bounds: list) -> None:
    env = make_vector_env(env_id, 4096, vectorization="torch", env_kwargs={"dtype": torch.float64})
    env.reset(seed=0, options=options)
    for column, (low, high) in enumerate(bounds):
        values = env.state[:, column]
        margin = (high - low) / 100
        assert low <= values.min() <= low + margin and high - margin <= values.max() <= high, f"column {column}"


@pytest.mark.parametrize("env_id", sorted({case.env_id for case in CASES}))
def test_episodes_are_truncated_at_gymnasiums_time_limit(env_id: str) -> None:
    limit = gym.spec(env_id).max_episode_steps
    env = make_vector_env(env_id, 4, vectorization="torch", env_kwargs={"autoreset_mode": AutoresetMode.NEXT_STEP})
    env.reset(seed=0)
    start = env.state.clone()
    space = env.single_action_space
    if isinstance(space, gym.spaces.Discrete):
        actions = torch.full((4,), space.n // 2)  # the middle action: no torque, no acceleration, a push right
    else:
        actions = torch.zeros((4, *space.shape))
    for step in range(1, limit + 1):
        # Pinned to the first state, which no one step from can end: only the time limit ends these episodes.
        env.state = start.clone()
        _, _, terminated, truncated, _ = env.step(actions)
        assert not bool(terminated.any()), f"step {step}"
        assert bool(truncated.all()) == (step == limit) and bool(truncated.any()) == (step == limit), f"step {step}"
    # NEXT_STEP: the next step starts the new episodes with reward 0.
    _, rewards, _, truncated, _ = env.step(actions)
    assert not bool(truncated.any()) and bool((rewards == 0).all())
    assert bool((env.elapsed_steps == 0).all())


@pytest.mark.parametrize("case", DEFAULT_CASES, ids=case_id)
def test_float32_envs_step_like_the_float64_ones_to_float32_rounding(case: Case) -> None:
    single, double = (
        make_vector_env(case.env_id, 256, vectorization="torch", env_kwargs={"dtype": dtype})
        for dtype in (torch.float32, torch.float64)
    )
    single.reset(seed=0)
    double.reset(seed=0)
    rng = np.random.default_rng(0)
    states = rng.uniform(case.state_low, case.state_high, size=(256, len(case.state_low)))
    # States exact in float32, so that both envs start from the very same numbers.
    single.state, double.state = torch.as_tensor(states, dtype=torch.float32), torch.as_tensor(states).float().double()
    actions = torch.as_tensor(draw_actions(case, single, rng))
    _, single_rewards, single_terminated, _, single_info = single.step(
        actions.float() if actions.is_floating_point() else actions
    )
    _, double_rewards, double_terminated, _, double_info = double.step(actions)
    assert single_info["final_obs"].dtype == torch.float32 and single_rewards.dtype == torch.float32
    np.testing.assert_allclose(single_info["final_obs"].numpy(), double_info["final_obs"].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(single_rewards.numpy(), double_rewards.numpy(), rtol=1e-5, atol=1e-5)
    # Terminations agree except where float32 rounding crosses a threshold: a few rows at most.
    assert int((single_terminated != double_terminated).sum()) <= 2
