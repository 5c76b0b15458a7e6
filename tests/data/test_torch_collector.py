"""The Collector over torch-native vector envs (and SAME_STEP gymnasium ones): transitions, episode sums, buffers and
evaluation with device flags, no host sync per step, saving, and the refusals of misbuilt envs.

``TorchCountingEnv(2, terminate_at=[2, None], max_episode_steps=3)`` is the ``ending_envs`` fixture's pair as a torch
env: env 0 terminates at its 2nd step, env 1 is truncated at its 3rd; observation ``[t]`` after ``t`` steps, reward
``t`` for the ``t``-th step.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from rl_lightning.buffers import ReplayBuffer, RolloutBuffer
from rl_lightning.data import Collector, Transition, evaluate_policy
from rl_lightning.envs import CartPole
from rl_lightning.errors import ConfigurationError
from tests.envs.test_torch_vector import moved_to_meta
from tests.helpers import StepsSinceStartPolicy, ZeroPolicy
from tests.toy_envs import TorchCountingEnv, TorchNonFiniteEnv, counting_env


def torch_ending_envs(mode: AutoresetMode = AutoresetMode.SAME_STEP) -> TorchCountingEnv:
    return TorchCountingEnv(2, terminate_at=[2, None], max_episode_steps=3, autoreset_mode=mode)


def play(collector: Collector, steps: int) -> list[Transition]:
    return [collector.step(torch.zeros(collector.num_envs, dtype=torch.long)) for _ in range(steps)]


def column(steps: list[Transition], field: str) -> list[list[float] | None]:
    """``field`` of each step as a list of (env 0, env 1) values; None where the field is None (SAME_STEP's valid)."""
    values = [getattr(step, field) for step in steps]
    return [None if v is None else np.asarray(torch.as_tensor(v), float).reshape(2).tolist() for v in values]


def saved_and_loaded(state: dict) -> dict:
    """``state`` after torch.save and a weights-only torch.load, as in a checkpoint."""
    stream = io.BytesIO()
    torch.save(state, stream)
    stream.seek(0)
    return torch.load(stream, weights_only=True)


# (env 0, env 1) at t0..t3. Env 0: 0->1, 1->2 terminated (reset to 0 in the step), 0->1, 1->2 terminated.
# Env 1: 0->1, 1->2, 2->3 truncated (reset to 0), 0->1.
SAME_STEP_EXPECTED = {
    "observations": [[0, 0], [1, 1], [0, 2], [1, 0]],
    "next_observations": [[1, 1], [2, 2], [1, 3], [2, 1]],
    "rewards": [[1, 1], [2, 2], [1, 3], [2, 1]],
    "terminations": [[0, 0], [1, 0], [0, 0], [1, 0]],
    "truncations": [[0, 0], [0, 0], [0, 1], [0, 0]],
}
# Finished: env 0's two episodes (return 3, length 2 each) and env 1's one (return 6, length 3).
SAME_STEP_SUMS = [3.0, 12.0, 9.0 + 9.0 + 36.0, 7.0]


def test_same_step_torch_env_gives_final_observations_and_no_invalid_step() -> None:
    collector = Collector(torch_ending_envs())
    collector.reset(seed=0)
    steps = play(collector, 4)
    for field, expected in SAME_STEP_EXPECTED.items():
        assert column(steps, field) == expected, field
    assert all(step.valid is None for step in steps)
    assert all(isinstance(step.terminations, torch.Tensor) for step in steps)
    assert collector.pop_episode_sums().tolist() == SAME_STEP_SUMS
    assert collector.pop_episode_sums().tolist() == [0.0] * 4  # popped


def test_same_step_gymnasium_env_is_collected_like_the_torch_one() -> None:
    vector_env = SyncVectorEnv(
        [lambda: counting_env(2, None), lambda: counting_env(None, 3)], autoreset_mode=AutoresetMode.SAME_STEP
    )
    collector = Collector(vector_env)
    collector.reset(seed=0)
    steps = play(collector, 4)
    for field, expected in SAME_STEP_EXPECTED.items():
        assert column(steps, field) == expected, field
    assert all(step.valid is None for step in steps)
    assert collector.pop_episode_sums().tolist() == SAME_STEP_SUMS


def test_next_step_torch_env_matches_the_numpy_collector(ending_envs: SyncVectorEnv) -> None:
    numpy_collector, torch_collector = Collector(ending_envs), Collector(torch_ending_envs(AutoresetMode.NEXT_STEP))
    numpy_collector.reset(seed=0)
    torch_collector.reset(seed=0)
    numpy_steps, torch_steps = play(numpy_collector, 5), play(torch_collector, 5)
    for field in ("observations", "next_observations", "rewards", "terminations", "truncations", "valid"):
        assert column(torch_steps, field) == column(numpy_steps, field), field
    assert column(torch_steps, "valid") == [[1, 1], [1, 1], [0, 1], [1, 0], [1, 1]]
    assert torch.equal(torch_collector.pop_episode_sums(), numpy_collector.pop_episode_sums())


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP], ids=lambda mode: mode.name)
def test_episode_starts_reach_the_policy_where_episodes_start(mode: AutoresetMode) -> None:
    collector = Collector(torch_ending_envs(mode))
    collector.reset(seed=0)
    policy = StepsSinceStartPolicy()
    for _ in range(4):
        collector.step(collector.act(policy))
    # The policy's count of observations since the episode started equals the observation [t] plus one.
    expected = [[1, 1], [2, 2], [1, 3], [2, 1]] if mode == AutoresetMode.SAME_STEP else [[1, 1], [2, 2], [3, 3], [1, 4]]
    assert [seen.tolist() for seen in policy.seen] == expected


def test_the_replay_buffer_stores_every_same_step_transition_with_its_final_observation() -> None:
    collector = Collector(torch_ending_envs())
    collector.reset(seed=0)
    buffer = ReplayBuffer(100, (1,), torch.float32, (), torch.long, num_envs=2, gamma=0.5)
    assert [buffer.add(*transition) for transition in play(collector, 4)] == [2, 2, 2, 2]
    observations = buffer.storage["observations"][: len(buffer), 0]
    assert torch.equal(buffer.storage["next_observations"][: len(buffer), 0], observations + 1)
    assert buffer.storage["terminations"][: len(buffer)].tolist() == [0, 0, 1, 0, 0, 0, 1, 0]


def test_the_n_step_replay_buffer_takes_device_flags() -> None:
    collector = Collector(torch_ending_envs())
    collector.reset(seed=0)
    buffer = ReplayBuffer(100, (1,), torch.float32, (), torch.long, num_envs=2, n_step=2, gamma=0.5)
    stored = [buffer.add(*transition) for transition in play(collector, 4)]
    # Env 0's episodes (2 steps) flush both steps at their end (t1, t3); env 1's first 2-step return is complete at
    # t1, and its truncation at t2 writes the t1 step's and flushes the t2 step's.
    assert stored == [0, 3, 2, 2]
    # Env 0's first transition: 1 + 0.5 * 2 = 2 over 2 rewards, terminated.
    first = buffer.storage["rewards"][0].item(), buffer.storage["discounts"][0].item()
    assert first == (2.0, 0.25)


def test_gae_with_device_flags_equals_gae_with_host_flags() -> None:
    def advantages(flags_as_tensors: bool) -> torch.Tensor:
        collector = Collector(torch_ending_envs())
        collector.reset(seed=0)
        buffer = RolloutBuffer(4, 2, (1,), torch.float32, (), torch.long, gamma=0.5, gae_lambda=0.5)
        for transition in play(collector, 4):
            flags = [transition.terminations, transition.truncations]
            if not flags_as_tensors:
                flags = [flag.numpy() for flag in flags]
            values = transition.observations[:, 0] / 10
            final_values = transition.next_observations[:, 0] / 10
            if not flags_as_tensors and not flags[1].any():
                final_values = None
            buffer.add(transition.observations, transition.actions, transition.rewards, values, values, *flags, None,
                       final_values)
        buffer.compute_returns_and_advantages(collector.observations[:, 0] / 10)
        return buffer.advantages.clone()

    on_device = advantages(True)
    assert torch.equal(on_device, advantages(False))
    # Env 1 truncated at t2 bootstraps from V(3) = 0.3: delta = 3 + 0.5 * 0.3 - 0.2.
    assert on_device[2, 1].item() == pytest.approx(3 + 0.5 * 0.3 - 0.2)


def test_the_per_step_path_never_synchronises_with_the_host() -> None:
    # On the meta device (shapes, no data) any host sync raises: stepping, episode sums and both buffers pass there.
    collector = Collector(CartPole(4, max_episode_steps=5))
    collector.reset(seed=0)
    replay = ReplayBuffer(64, (4,), torch.float32, (), torch.long, num_envs=4)
    rollout = RolloutBuffer(3, 4, (4,), torch.float32, (), torch.long)
    moved_to_meta(collector.env)
    for owner in (collector, collector.device_episodes, replay, rollout):
        for name, value in vars(owner).items():
            if isinstance(value, torch.Tensor):
                setattr(owner, name, value.to("meta"))
    replay.storage = {name: tensor.to("meta") for name, tensor in replay.storage.items()}
    collector.device = collector.device_episodes.device = replay.device = rollout.device = torch.device("meta")
    values = torch.zeros(4, device="meta")
    for _ in range(3):
        transition = collector.step(torch.zeros(4, dtype=torch.long, device="meta"))
        replay.add(*transition)
        rollout.add(transition.observations, transition.actions, transition.rewards, values, values,
                    transition.terminations, transition.truncations, transition.valid, values)
    rollout.compute_returns_and_advantages(values)
    assert collector.pop_episode_sums().device.type == "meta"
    # The check can fail: the n-step window's bookkeeping is on the host, so it syncs.
    n_step = ReplayBuffer(64, (4,), torch.float32, (), torch.long, num_envs=4, n_step=2)
    with pytest.raises((NotImplementedError, RuntimeError)):
        n_step.add(*transition)


@pytest.mark.parametrize("nan_in", ["observation", "reward"])
def test_a_torch_envs_non_finite_value_is_zeroed_and_named_when_read_back(nan_in: str) -> None:
    """Env 1 of 3 returns a NaN at its 2nd step (observation [2] or reward 2), in each episode of 3 steps."""
    collector = Collector(TorchNonFiniteEnv(3, nan_env=1, nan_at=2, nan_in=nan_in, max_episode_steps=3))
    collector.reset(seed=0)
    steps = play(collector, 5)
    field = "next_observations" if nan_in == "observation" else "rewards"
    # Env 1's 2nd and 5th steps are the NaN's (the 4th starts a new episode): zeros there, env 0's counts elsewhere.
    assert [float(getattr(step, field)[1]) for step in steps] == [1.0, 0.0, 3.0, 1.0, 0.0]
    assert [float(getattr(step, field)[0]) for step in steps] == [1.0, 2.0, 3.0, 1.0, 2.0]
    assert collector.pop_fault() == (
        f"env 1 returned a non-finite {nan_in} at vector step 2; it was replaced by zeros until the run stopped "
        f"here, and no checkpoint is written after it. Fix the env (or wrap it to replace such values), then resume "
        f"from the last checkpoint with --ckpt_path last."
    )
    assert collector.pop_fault() is None  # read and forgotten
    play(collector, 3)  # the 8th step is the next NaN
    assert collector.pop_fault().startswith(f"env 1 returned a non-finite {nan_in} at vector step 8;")


def test_the_first_non_finite_value_over_the_envs_is_named_and_the_check_can_be_turned_off() -> None:
    env = TorchNonFiniteEnv(3, nan_env=2, nan_at=2, max_episode_steps=3)
    env.poisoned[0] = True  # env 0 too, at the same step: the lower index is named
    collector = Collector(env)
    collector.reset(seed=0)
    play(collector, 2)
    assert collector.pop_fault().startswith("env 0 returned a non-finite observation at vector step 2;")

    unchecked = Collector(TorchNonFiniteEnv(3, nan_env=2, nan_at=2, max_episode_steps=3), check_finite=False)
    unchecked.reset(seed=0)
    steps = play(unchecked, 2)
    assert torch.isnan(steps[1].next_observations[2, 0])  # passed on as the env gave it
    assert unchecked.pop_fault() is None


def test_evaluation_on_a_torch_env_keeps_each_envs_quota() -> None:
    collector = Collector(TorchCountingEnv(2, terminate_at=[2, 3]))
    episodes = evaluate_policy(ZeroPolicy(), collector, 3, seed=0)
    # Env 0 plays 2 episodes (return 1 + 2 = 3, length 2), env 1 one (1 + 2 + 3 = 6, length 3).
    assert episodes.env_indices.tolist() == [0, 0, 1]
    assert episodes.returns.tolist() == [3.0, 3.0, 6.0]
    assert episodes.lengths.tolist() == [2, 2, 3]
    assert episodes.returns.dtype == np.float64


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP], ids=lambda mode: mode.name)
def test_state_dict_continues_a_torch_env_exactly(mode: AutoresetMode) -> None:
    collector = Collector(torch_ending_envs(mode))
    collector.reset(seed=0)
    play(collector, 3)
    state = saved_and_loaded(collector.state_dict())
    expected = play(collector, 3)
    expected_sums = collector.pop_episode_sums()

    restored = Collector(torch_ending_envs(mode))  # never reset: everything comes from the state
    restored.load_state_dict(state)
    replayed = play(restored, 3)
    for field in ("observations", "next_observations", "rewards", "terminations", "truncations", "valid"):
        assert column(replayed, field) == column(expected, field), field
    # The sums include the episodes finished before the save and not yet popped.
    assert torch.equal(restored.pop_episode_sums(), expected_sums)


class StatelessTorchEnv:
    """A torch env of another library (not a TorchVectorEnv): the counting envs, with no ``state_dict()``."""

    def __init__(self, **overrides: Any) -> None:
        self._env = torch_ending_envs()
        self.num_envs, self.device, self.metadata = 2, torch.device("cpu"), self._env.metadata
        self.action_space, self.overrides = self._env.action_space, overrides

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        observations, info = self._env.reset(seed=seed)
        return self.overrides.get("observations", observations), info

    def step(self, actions: torch.Tensor) -> tuple[Any, ...]:
        observations, rewards, terminated, truncated, info = self._env.step(actions)
        observations = self.overrides.get("step_observations", observations)
        return observations, rewards, terminated, truncated, self.overrides.get("info", info)

    def close(self) -> None:
        self._env.close()


def test_a_torch_env_without_state_dict_is_collected_and_saved_without_its_state() -> None:
    collector = Collector(StatelessTorchEnv())
    collector.reset(seed=0)
    assert column(play(collector, 2), "next_observations") == SAME_STEP_EXPECTED["next_observations"][:2]
    with pytest.warns(UserWarning, match="StatelessTorchEnv offers no state_dict"):
        state = saved_and_loaded(collector.state_dict())
    assert state["env"] is None and "no state_dict" in state["env_error"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"observations": torch.zeros(2, 1, device="meta")}, r"observations on meta, but the module lives on cpu"),
        ({"observations": torch.zeros(3, 1)}, r"num_envs=2 but returned observations of shape \(3, 1\)"),
        ({"step_observations": np.zeros((2, 1), np.float32)}, r"returned its observations as ndarray, not a torch"),
        ({"info": {"final_observation": torch.zeros(2, 1)}}, r"info holds no 'final_obs' and '_final_obs'"),
    ],
    ids=["other-device", "num-envs", "numpy", "no-final-obs"],
)
def test_misbuilt_torch_envs_are_refused_with_one_message(overrides: dict, message: str) -> None:
    collector = Collector(StatelessTorchEnv(**overrides))
    with pytest.raises(ConfigurationError, match=message):
        collector.reset(seed=0)
        play(collector, 1)


def test_a_torch_envs_episodes_are_popped_as_sums_only() -> None:
    collector = Collector(torch_ending_envs())
    collector.reset(seed=0)
    with pytest.raises(RuntimeError, match="pop_episode_sums"):
        collector.pop_episodes()


def test_an_env_that_does_not_autoreset_is_refused() -> None:
    vector_env = SyncVectorEnv([lambda: counting_env(2, None)], autoreset_mode=AutoresetMode.DISABLED)
    with pytest.raises(ConfigurationError, match=r"needs AutoresetMode\.NEXT_STEP or AutoresetMode\.SAME_STEP"):
        Collector(vector_env)


def test_each_rank_seeds_its_torch_envs_differently_and_reproducibly() -> None:
    def first_observations(rank: int) -> torch.Tensor:
        collector = Collector(CartPole(4))
        return collector.reset(seed=7, rank=rank)

    # Seed 7 + rank * num_envs: rank 1's envs start elsewhere than rank 0's, and each rank the same every time.
    assert torch.equal(first_observations(1), first_observations(1))
    assert not torch.equal(first_observations(0), first_observations(1))


def test_a_torch_env_that_does_not_say_how_it_autoresets_is_refused() -> None:
    env = StatelessTorchEnv()
    env.metadata = {}
    with pytest.raises(ConfigurationError, match=r"does not say how it autoresets: set its metadata\['autoreset"):
        Collector(env)
