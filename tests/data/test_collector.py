"""The Collector under gymnasium 1.x NEXT_STEP autoreset, and evaluate_policy's episode quotas.

The ``ending_envs`` fixture (tests/conftest.py) steps two counting envs: env 0 terminates at its 2nd
step, env 1 is truncated by a time limit at its 3rd. Observation ``[t]`` after ``t`` steps, reward ``t``
for the ``t``-th step; the step after an episode end only resets that env.
"""

from __future__ import annotations

import io
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from rl_lightning.buffers import ReplayBuffer
from rl_lightning.data import Collector, Transition, evaluate_policy
from rl_lightning.envs import make_vector_env
from rl_lightning.errors import RunFault
from tests.helpers import StepsSinceStartPolicy, ZeroPolicy
from tests.toy_envs import (
    CountingEnv,
    DictEnv,
    MaskedCountingEnv,
    MethodMaskedCountingEnv,
    NonFiniteEnv,
    TupleEnv,
    counting_env,
    counting_vector_env,
)


class MaskRecordingPolicy(ZeroPolicy):
    """Action 0 always; records the masks it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.masks: list[torch.Tensor] = []

    def policy_step(self, observations, state, episode_starts, deterministic=False, action_masks=None):
        self.masks.append(action_masks.long())
        return super().policy_step(observations, state, episode_starts, deterministic)


def play(collector: Collector, steps: int) -> list[Transition]:
    return [collector.step(torch.zeros(collector.num_envs, dtype=torch.long)) for _ in range(steps)]


def test_step_before_reset_raises(ending_envs: SyncVectorEnv) -> None:
    with pytest.raises(RuntimeError, match=r"call Collector\.reset"):
        Collector(ending_envs).step(torch.zeros(2, dtype=torch.long))


def test_final_observation_is_kept_and_the_autoreset_step_is_invalid(ending_envs: SyncVectorEnv) -> None:
    collector = Collector(ending_envs)
    collector.reset(seed=0)
    steps = play(collector, 5)

    def column(field: str) -> list[list[float]]:
        return [np.asarray(getattr(step, field), dtype=float).reshape(2).tolist() for step in steps]

    # (env 0, env 1) at t0..t4. Env 0: 0->1, 1->2 terminated, autoreset 2->0, 0->1, 1->2 terminated.
    # Env 1: 0->1, 1->2, 2->3 truncated, autoreset 3->0, 0->1.
    assert column("observations") == [[0, 0], [1, 1], [2, 2], [0, 3], [1, 0]]
    assert column("next_observations") == [[1, 1], [2, 2], [0, 3], [1, 0], [2, 1]]
    assert column("rewards") == [[1, 1], [2, 2], [0, 3], [1, 0], [2, 1]]
    assert column("terminations") == [[0, 0], [1, 0], [0, 0], [0, 0], [1, 0]]
    assert column("truncations") == [[0, 0], [0, 0], [0, 1], [0, 0], [0, 0]]
    assert column("valid") == [[1, 1], [1, 1], [0, 1], [1, 0], [1, 1]]


def test_episode_records_exclude_the_autoreset_step(ending_envs: SyncVectorEnv) -> None:
    collector = Collector(ending_envs)
    collector.reset(seed=0)
    play(collector, 3)
    # Env 0 ends at t1 (rewards 1 + 2 = 3, 2 steps), env 1 at t2 (1 + 2 + 3 = 6, 3 steps).
    episodes = collector.pop_episodes()
    assert episodes.env_indices.tolist() == [0, 1]
    assert episodes.returns.tolist() == [3.0, 6.0]
    assert episodes.lengths.tolist() == [2, 3]
    play(collector, 2)
    # Env 0's second episode: its autoreset step t2 is not counted, so t3 and t4 give length 2, return 3.
    episodes = collector.pop_episodes()
    assert (episodes.env_indices.tolist(), episodes.returns.tolist(), episodes.lengths.tolist()) == ([0], [3.0], [2])
    assert len(collector.pop_episodes().returns) == 0


def test_no_stored_transition_comes_from_an_autoreset_step(ending_envs: SyncVectorEnv) -> None:
    collector = Collector(ending_envs)
    collector.reset(seed=0)
    buffer = ReplayBuffer(100, (1,), torch.float32, (), torch.long, num_envs=2, gamma=0.5)
    stored = [buffer.add(*transition) for transition in play(collector, 5)]
    # 10 env steps minus the 2 autoreset steps (env 0 at t2, env 1 at t3).
    assert stored == [2, 2, 1, 1, 2]
    observations = buffer.storage["observations"][: len(buffer), 0]
    next_observations = buffer.storage["next_observations"][: len(buffer), 0]
    # Every real transition counts one step up; an autoreset one would go from 2 or 3 down to 0.
    assert torch.equal(next_observations, observations + 1)
    # Terminations: env 0's two 1 -> 2 steps only; env 1's truncated 2 -> 3 keeps its bootstrap.
    terminated = buffer.storage["terminations"][: len(buffer)].bool()
    assert observations[terminated].tolist() == [1.0, 1.0]
    assert len(observations[~terminated & (observations == 2)]) == 1


def saved_and_loaded(state: dict) -> dict:
    """``state`` after torch.save and a weights-only torch.load, as in a checkpoint."""
    stream = io.BytesIO()
    torch.save(state, stream)
    stream.seek(0)
    return torch.load(stream, weights_only=True)


def test_state_dict_restores_the_envs_autoreset_flags_and_episode_accumulators(ending_envs: SyncVectorEnv) -> None:
    collector = Collector(ending_envs)
    collector.reset(seed=0)
    play(collector, 3)
    collector.pop_episodes()
    state = saved_and_loaded(collector.state_dict())
    expected = play(collector, 2)

    # A fresh collector over fresh envs, never reset: the envs' own state comes from the saved one.
    other_envs = counting_vector_env([(2, None), (None, 3)])
    restored = Collector(other_envs)
    restored.load_state_dict(state)
    replayed = play(restored, 2)
    other_envs.close()

    for got, want in zip(replayed, expected):
        assert torch.equal(got.observations, want.observations)
        assert torch.equal(got.next_observations, want.next_observations)
        assert got.valid.tolist() == want.valid.tolist()  # env 1's t3 is still its autoreset step
    # Env 0's episode was 1 step old at the save: it ends at t4 with return 1 + 2 = 3 and length 2.
    episodes = restored.pop_episodes()
    assert (episodes.returns.tolist(), episodes.lengths.tolist()) == ([3.0], [2])


def test_state_dict_keeps_finished_episodes_not_yet_popped(ending_envs: SyncVectorEnv) -> None:
    collector = Collector(ending_envs)
    collector.reset(seed=0)
    play(collector, 3)  # env 0 ended at t1 (return 3), env 1 at t2 (return 6)
    restored = Collector(counting_vector_env([(2, None), (None, 3)]))
    restored.load_state_dict(saved_and_loaded(collector.state_dict()))
    episodes = restored.pop_episodes()
    assert (episodes.env_indices.tolist(), episodes.returns.tolist()) == ([0, 1], [3.0, 6.0])


def test_envs_that_cannot_be_pickled_are_left_out_with_one_warning(ending_envs: SyncVectorEnv) -> None:
    ending_envs.envs[0].unpicklable = lambda: None  # as a wrapper holding a lambda would
    collector = Collector(ending_envs)
    collector.reset(seed=0)
    play(collector, 1)
    with pytest.warns(UserWarning, match="cannot be saved in checkpoints: SyncVectorEnv cannot be pickled"):
        state = saved_and_loaded(collector.state_dict())
    assert state["env"] is None and "lambda" in state["env_error"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        collector.state_dict()  # warned once only
    # Loading such a state changes nothing: the caller starts new episodes.
    fresh = Collector(counting_vector_env([(2, None), (None, 3)]))
    fresh.load_state_dict(state)
    assert fresh.observations is None


@pytest.mark.parametrize(
    ("episodes", "env_indices", "returns", "lengths"),
    [
        # Quota (3, 2). Env 0 ends episodes (return 1 + 2 = 3, 2 steps) at t1, t4, t7; env 1 (return
        # 1 + 2 + 3 = 6, 3 steps) at t2, t6: play stops after t7, when both quotas are met.
        (5, [0, 1, 0, 1, 0], [3, 6, 3, 6, 3], [2, 3, 2, 3, 2]),
        # Quota (1, 0): one episode of env 0, at t1.
        (1, [0], [3], [2]),
    ],
)
def test_evaluation_plays_each_envs_quota_of_episodes(
    ending_envs: SyncVectorEnv, episodes: int, env_indices: list, returns: list, lengths: list
) -> None:
    played = evaluate_policy(ZeroPolicy(), Collector(ending_envs), episodes, seed=0)
    assert played.env_indices.tolist() == env_indices
    assert played.returns.tolist() == returns
    assert played.lengths.tolist() == lengths


def test_evaluation_drops_episodes_beyond_an_envs_quota() -> None:
    # Env 0 terminates every 2 steps (episodes end at t1, t4), env 1 is truncated at its 5th step (t4).
    # Quota (1, 1): env 0's second episode, ending at t4 with env 1's first, is not kept.
    vector_env = counting_vector_env([(2, None), (None, 5)])
    played = evaluate_policy(ZeroPolicy(), Collector(vector_env), episodes=2, seed=0)
    vector_env.close()
    assert played.env_indices.tolist() == [0, 1]
    assert played.returns.tolist() == [3.0, 1 + 2 + 3 + 4 + 5]
    assert played.lengths.tolist() == [2, 5]


class LeanPolicy:
    """Push the cart toward the side the pole leans to: episodes of a few dozen steps that vary by seed."""

    def policy_step(self, observations, state, episode_starts, deterministic=False):
        return (observations[:, 2] > 0).long(), state


def test_evaluation_is_reproducible_with_the_same_seed() -> None:
    collector = Collector(make_vector_env("CartPole-v1", num_envs=3))
    first = evaluate_policy(LeanPolicy(), collector, episodes=7, seed=5)
    again = evaluate_policy(LeanPolicy(), collector, episodes=7, seed=5)
    other_seed = evaluate_policy(LeanPolicy(), collector, episodes=7, seed=6)
    collector.close()
    # Quota: 7 episodes over 3 envs is (3, 2, 2).
    assert np.bincount(first.env_indices).tolist() == [3, 2, 2]
    for got, want in zip(again, first):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(other_seed.lengths, first.lengths)


def test_a_policy_state_is_carried_per_env_and_reset_where_an_episode_starts(ending_envs):
    """Env 0 terminates at its 2nd step, env 1 is truncated at its 3rd; each end is followed by the autoreset step,
    whose observation (the new episode's first) starts the count again."""
    collector, policy = Collector(ending_envs), StepsSinceStartPolicy()
    collector.reset(seed=0)
    for _ in range(6):
        collector.step(collector.act(policy))
    # Observations seen since the episode started, env 0 / env 1, at each of the 6 calls: env 0's episode ends at
    # call 2, call 3 is its autoreset step (still the old episode's final observation), call 4 starts anew.
    assert [list(seen) for seen in policy.seen] == [[1, 1], [2, 2], [3, 3], [1, 4], [2, 1], [3, 2]]
    state = collector.state_dict()
    resumed = Collector(make_vector_env("CartPole-v1", 2))
    resumed.load_state_dict(state)
    assert torch.equal(resumed.policy_state, collector.policy_state)
    collector.reset(seed=0)
    assert collector.policy_state is None


def test_action_masks_are_those_of_the_current_observations_and_reach_the_policy() -> None:
    """``MaskedCountingEnv``'s mask is ``[1, t % 2]``: env 0 terminates at its 2nd step, env 1 at its 3rd."""
    envs = SyncVectorEnv(
        [lambda: MaskedCountingEnv(terminate_at=2), lambda: MaskedCountingEnv(terminate_at=3)],
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )
    collector, policy = Collector(envs), MaskRecordingPolicy()
    collector.reset(seed=0)
    for _ in range(4):
        collector.step(collector.act(policy))
    # Env 0: t 0, 1, 2 (final), 0 (autoreset step); env 1: t 0, 1, 2, 3 (final): mask [1, t % 2] of each.
    assert [masks[:, 1].tolist() for masks in policy.masks] == [[0, 0], [1, 1], [0, 0], [0, 1]]
    assert collector.action_masks.tolist() == [[True, True], [True, False]]  # env 0 at t 1, env 1 reset to t 0
    resumed = Collector(SyncVectorEnv([CountingEnv, CountingEnv], autoreset_mode=AutoresetMode.NEXT_STEP))
    resumed.load_state_dict(collector.state_dict())
    assert torch.equal(resumed.action_masks, collector.action_masks)


@pytest.mark.parametrize("info_mask", [False, True], ids=["method", "info-and-method"])
def test_masks_come_from_the_envs_action_masks_method_and_the_info_wins_over_it(info_mask: bool) -> None:
    """``MethodMaskedCountingEnv``'s method says ``[1, t % 2]``; with ``info_mask`` its info says the opposite."""
    envs = SyncVectorEnv(
        [lambda: MethodMaskedCountingEnv(terminate_at=2, info_mask=info_mask)] * 2,
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )
    collector, policy = Collector(envs), MaskRecordingPolicy()
    collector.reset(seed=0)
    for _ in range(3):
        collector.step(collector.act(policy))
    method = [[0, 0], [1, 1], [0, 0]]  # t 0, 1, 2 (the final observation, NEXT_STEP: the env is not reset yet)
    expected = [[1 - bit for bit in row] for row in method] if info_mask else method
    assert [masks[:, 1].tolist() for masks in policy.masks] == expected


def test_an_env_without_masks_gives_the_policy_none() -> None:
    collector = Collector(counting_vector_env([(None, 3)]))
    collector.reset(seed=0)
    assert collector.action_masks is None
    collector.step(collector.act(ZeroPolicy()))  # ZeroPolicy's policy_step takes no action_masks keyword
    assert collector.action_masks is None


def test_env_records_report_the_episodes_beneath_wrappers_that_change_the_training_signal() -> None:
    """As Atari's clipped rewards and life-loss ends do: rewards zeroed and every step an episode end above
    gymnasium's recorder, whose episodes (rewards 1 + 2 + 3 over 3 steps) are what the collector reports."""

    def build() -> gym.Env:
        env = gym.wrappers.RecordEpisodeStatistics(counting_env(terminate_at=3))
        env = gym.wrappers.TransformReward(env, lambda reward: 0.0)
        return _EveryStepEnds(env)

    collector = Collector(SyncVectorEnv([build], autoreset_mode=AutoresetMode.NEXT_STEP), env_records=True)
    collector.reset(seed=0)
    ends = sum(bool(collector.step(torch.zeros(1, dtype=torch.long)).terminations[0]) for _ in range(8))
    episodes = collector.pop_episodes()
    collector.close()
    # Per game: the agent's step 1 ends, the continuing reset plays step 2, the agent's step 3 ends the game.
    assert ends == 4
    assert episodes.returns.tolist() == [6.0, 6.0] and episodes.lengths.tolist() == [3, 3]


class _EveryStepEnds(gym.Wrapper):
    """Every step terminates, and a reset mid-game continues it (a life lost, in Atari's terms)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._game_over = True

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._game_over = terminated
        return observation, reward, True, truncated, info

    def reset(self, *, seed=None, options=None):
        if self._game_over or seed is not None:
            self._game_over = False
            return self.env.reset(seed=seed, options=options)
        observation, _, self._game_over, _, info = self.env.step(0)
        return observation, info


def non_finite_envs(nan_at: tuple[int | None, ...], nan_in: str) -> SyncVectorEnv:
    """One ``NonFiniteEnv`` per entry of ``nan_at``, NaN in ``nan_in`` at that step."""
    return SyncVectorEnv(
        [lambda at=at: NonFiniteEnv(nan_at=at, nan_in=nan_in) for at in nan_at],
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )


@pytest.mark.parametrize("nan_in", ["observation", "reward"])
def test_a_non_finite_value_is_refused_naming_the_env_and_step(nan_in: str) -> None:
    collector = Collector(non_finite_envs((None, 3, 4), nan_in))
    collector.reset(seed=0)
    collector.step(collector.act(ZeroPolicy()))
    collector.step(collector.act(ZeroPolicy()))
    with pytest.raises(RunFault, match=rf"^env 1 returned a non-finite {nan_in} at vector step 3 "):
        collector.step(collector.act(ZeroPolicy()))
    collector.close()


def test_check_finite_false_lets_non_finite_values_through() -> None:
    collector = Collector(non_finite_envs((1, 1), "observation"), check_finite=False)
    collector.reset(seed=0)
    transition = collector.step(collector.act(ZeroPolicy()))
    assert transition.next_observations.isnan().all()
    collector.close()


# ---------------------------------------------------------------------------------------------- dict observations
@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP], ids=["next-step", "same-step"])
def test_dict_observations_come_as_a_dict_of_tensors_with_the_final_observation_at_an_end(mode) -> None:
    """``DictEnv(max_steps=2)`` truncates at its 2nd step; its image's first pixel is the step ``t``."""
    envs = SyncVectorEnv([lambda: DictEnv(max_steps=2)] * 2, autoreset_mode=mode)
    collector = Collector(envs)
    observations = collector.reset(seed=0)
    assert {key: t.dtype for key, t in observations.items()} == {
        "flag": torch.float32, "image": torch.uint8, "target": torch.int64
    }
    assert observations["image"].shape == (2, 1, 4, 4) and observations["target"].shape == (2,)
    first, second = play(collector, 2)
    assert first.observations["image"][:, 0, 0, 0].tolist() == [0, 0]
    assert first.next_observations["image"][:, 0, 0, 0].tolist() == [1, 1]
    assert second.truncations.tolist() == [True, True]
    assert second.next_observations["image"][:, 0, 0, 0].tolist() == [2, 2]  # the final observations
    assert collector.observations["image"][:, 0, 0, 0].tolist() == ([0, 0] if mode == AutoresetMode.SAME_STEP
                                                                     else [2, 2])  # fmt: skip
    resumed = Collector(SyncVectorEnv([lambda: DictEnv(max_steps=2)] * 2, autoreset_mode=mode))
    resumed.load_state_dict(collector.state_dict())
    for key, tensor in collector.observations.items():
        assert torch.equal(resumed.observations[key], tensor), key


def test_tuple_observations_come_as_a_tuple_of_tensors() -> None:
    collector = Collector(SyncVectorEnv([TupleEnv] * 2))
    flags, targets = collector.reset(seed=0)
    assert flags.shape == (2, 1) and flags.dtype == torch.float32 and targets.dtype == torch.int64


class NanFlagEnv(DictEnv):
    """``DictEnv`` whose flag is NaN from the 2nd step on."""

    def _observation(self) -> dict:
        observation = super()._observation()
        if self.t >= 2:
            observation["flag"][0] = np.nan
        return observation


def test_a_non_finite_value_in_a_key_is_refused_naming_the_key() -> None:
    collector = Collector(SyncVectorEnv([NanFlagEnv]))
    collector.reset(seed=0)
    play(collector, 1)
    with pytest.raises(RunFault, match=r"env 0 returned a non-finite observation \(key 'flag'\) at vector step 2"):
        play(collector, 1)


@pytest.mark.parametrize("nan_in", ["observation", "reward"])
def test_without_stop_at_once_the_first_non_finite_value_is_zeroed_and_kept_for_the_check_point(nan_in: str) -> None:
    """As under DDP: env 1 has a NaN at step 3, env 2 at step 4; the run goes on with zeros until pop_fault()."""
    collector = Collector(non_finite_envs((None, 3, 4), nan_in), stop_at_once=False)
    collector.reset(seed=0)
    steps = [collector.step(collector.act(ZeroPolicy())) for _ in range(4)]
    field = "next_observations" if nan_in == "observation" else "rewards"
    assert [getattr(step, field).reshape(3).tolist() for step in steps] == [
        [1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [3.0, 0.0, 3.0], [4.0, 4.0, 0.0]
    ]
    shown = "[nan]" if nan_in == "observation" else "nan"  # the env's row as it was
    assert collector.pop_fault() == (
        f"env 1 returned a non-finite {nan_in} at vector step 3 ({shown}); it was replaced by zeros until the run "
        f"stopped here, and no checkpoint is written after it. Fix the env (or wrap it to replace such values), then "
        f"resume from the last checkpoint with --ckpt_path last."
    )
    assert collector.pop_fault() is None
    collector.close()
