"""Atari and MinAtar by id, the presets' preprocessing, training-only changes, and the messages for bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rl_lightning.data import Collector
from rl_lightning.envs import AtariPreset, MinAtarPreset, make_vector_env, probe_env
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
