"""Atari and MinAtar by id, the presets' preprocessing, training-only changes, and the messages for bad input."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch

from rl_lightning.data import Collector
from rl_lightning.envs import (
    AtariPreset,
    MinAtarPreset,
    load_vector_env_state,
    make_vector_env,
    probe_env,
    vector_env_state,
)
from rl_lightning.envs import atari as atari_module
from rl_lightning.errors import ConfigurationError

BREAKOUT = {"env": "ALE/Breakout-v5", "env_kwargs": {"frameskip": 1}}


def test_an_ale_id_works_without_user_code_and_the_preset_gives_stacked_gray_frames() -> None:
    traits = probe_env(BREAKOUT["env"], BREAKOUT["env_kwargs"], [AtariPreset])
    assert traits.observation_space == gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    assert traits.frame_stack == (4, "reset")
    assert traits.records_episodes
    assert probe_env("ALE/Pong-v5").frame_stack is None  # no preset: raw RGB frames, no stack


def test_a_missing_extra_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(atari_module.importlib, "import_module", missing)
    with pytest.raises(ConfigurationError, match=r'pip install "rl-lightning\[atari\]"'):
        atari_module.register_pixel_envs("ALE/NotYetRegistered-v5")
    with pytest.raises(ConfigurationError, match=r'pip install "rl-lightning\[minatar\]"'):
        atari_module.register_pixel_envs("MinAtar/NotYetRegistered-v1")


def test_a_v5_env_that_skips_frames_itself_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigurationError, match=r"env_kwargs=\{'frameskip': 1\}"):
        probe_env("ALE/Breakout-v5", None, [AtariPreset])
    with pytest.raises(ConfigurationError, match="Atari envs"):
        probe_env("CartPole-v1", None, [AtariPreset])


def play(evaluation: bool, steps: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Random play of Breakout on 2 envs: episode ends seen by the learner, and the games the collector reports."""
    vector_env = make_vector_env(
        BREAKOUT["env"], 2, env_kwargs=BREAKOUT["env_kwargs"], wrappers=[AtariPreset], evaluation=evaluation
    )
    collector = Collector(vector_env, env_records=True)
    collector.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    ends = 0
    for _ in range(steps):
        transition = collector.step(torch.randint(4, (2,), generator=generator))
        ends += int((transition.terminations | transition.truncations).sum())
    episodes = collector.pop_episodes()
    collector.close()
    return ends, episodes.returns, episodes.lengths


def test_lives_end_training_episodes_but_whole_games_are_reported_and_evaluated() -> None:
    training_ends, training_returns, _ = play(False, 400)
    evaluation_ends, evaluation_returns, _ = play(True, 400)
    # Breakout has 5 lives: the learner sees about 5 episode ends per reported game in training, one in evaluation.
    assert len(training_returns) >= 2 and training_ends >= 4 * len(training_returns)
    assert len(evaluation_returns) >= 2 and evaluation_ends == len(evaluation_returns)


def test_rewards_are_clipped_in_training_only() -> None:
    rewards = {}
    for evaluation in (False, True):
        vector_env = make_vector_env(
            "ALE/Pong-v5", 1, env_kwargs={"frameskip": 1}, wrappers=[AtariPreset], evaluation=evaluation
        )
        clipper = vector_env.envs[0].env.env  # the preset, then its frame stack, then the clipper
        vector_env.close()
        assert isinstance(clipper, atari_module.SignReward)
        clipper.env.step = lambda action: (None, 21.0, False, False, {})  # a game's score, more than 1
        rewards[evaluation] = clipper.step(0)[1]
    assert rewards == {False: 1.0, True: 21.0}


def test_minatar_by_id_as_channels_first_uint8_images() -> None:
    vector_env = make_vector_env("MinAtar/Breakout-v1", 1, wrappers=[MinAtarPreset])
    observations, _ = vector_env.reset(seed=0)
    vector_env.close()
    assert observations.shape == (1, 4, 10, 10) and observations.dtype == np.uint8
    assert set(np.unique(observations)) == {0, 255}


def play_recorded(vector_env: gym.vector.VectorEnv, actions: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """Each step's observations, rewards, terminations and truncations for ``actions``, one row per step."""
    return [tuple(np.copy(part) for part in vector_env.step(action)[:4]) for action in actions]


@pytest.mark.parametrize(
    ("env_id", "env_kwargs"),
    [("BreakoutNoFrameskip-v4", {}), ("ALE/Breakout-v5", {"frameskip": 1})],  # without and with sticky actions
)
def test_a_restored_atari_env_continues_exactly_across_episode_ends(env_id: str, env_kwargs: dict) -> None:
    def make() -> gym.vector.VectorEnv:
        return make_vector_env(env_id, 1, env_kwargs=env_kwargs, wrappers=[AtariPreset])

    original = make()
    original.reset(seed=0)
    actions = np.random.default_rng(0).integers(4, size=(900, 1))
    play_recorded(original, actions[:100])
    state = vector_env_state(original)
    uninterrupted = play_recorded(original, actions[100:])
    restored = make()
    load_vector_env_state(restored, state)
    resumed = play_recorded(restored, actions[100:])
    original.close()
    restored.close()
    episode_ends = sum(int((terminations | truncations).sum()) for _, _, terminations, truncations in uninterrupted)
    assert episode_ends >= 15  # lives lost, and games over
    for step, (expected, got) in enumerate(zip(uninterrupted, resumed, strict=True)):
        for part, name in zip(range(4), ("observations", "rewards", "terminations", "truncations")):
            assert np.array_equal(expected[part], got[part]), f"{name} differ at step {step} after the restore"


def test_the_held_sticky_action_is_restored_even_when_it_is_not_the_last_action_passed() -> None:
    # On each frame the emulator applies its held action instead of the one passed with probability 0.25; which
    # action it holds is not in its saved state. Hold each action in turn (the last action passed is always a NOOP),
    # copy the env, and compare the emulators frame by frame until the held action can no longer matter.
    env = make_vector_env("ALE/Pong-v5", 1, env_kwargs={"frameskip": 1}).envs[0]
    env.reset(seed=0)
    base = env.unwrapped
    actions = np.random.default_rng(1).integers(base.action_space.n, size=10)
    for held in [*base._action_set] * 4:
        atari_module._hold(base.ale, held, base.ale.cloneState(include_rng=True))
        copy = pickle.loads(pickle.dumps(env))
        for frame, action in enumerate(actions):
            env.step(action)
            copy.step(action)
            assert base.ale.cloneState() == copy.unwrapped.ale.cloneState(), f"held {held}: differ at frame {frame}"
        env.step(0)
