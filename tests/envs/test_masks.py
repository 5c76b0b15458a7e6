"""Reading valid-action masks from a vector env's infos."""

from __future__ import annotations

import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from rl_lightning.envs import action_masks_of
from tests.toy_envs import CountingEnv, MaskedCountingEnv


def test_no_mask_key_means_no_masks() -> None:
    assert action_masks_of({"episode": 1}, 2) is None


def test_masks_become_bool_rows_one_per_env() -> None:
    infos = {"action_mask": np.array([[1, 0, 1], [0, 1, 1]], np.int8), "_action_mask": np.array([True, True])}
    assert action_masks_of(infos, 2).tolist() == [[True, False, True], [False, True, True]]


def test_an_env_that_gave_no_mask_allows_every_action() -> None:
    envs = SyncVectorEnv([MaskedCountingEnv, CountingEnv], autoreset_mode=AutoresetMode.NEXT_STEP)
    _, infos = envs.reset(seed=0)
    assert action_masks_of(infos, 2).tolist() == [[True, False], [True, True]]
