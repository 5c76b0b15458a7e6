"""Reading the valid-action masks that an environment gives in its ``info`` dict.

An env that masks actions puts ``info["action_mask"]`` beside every observation it returns (from ``reset`` and
from each ``step``, the final observation of an episode included): an array of 0/1 (or bool) with one entry per
action of a ``Discrete(n)`` space (``n``), or per choice of a ``MultiDiscrete(nvec)`` space, the dimensions'
entries one after the other (``sum(nvec)``); 1 (True) marks a valid action. That is gymnasium's own convention
(``Discrete.sample(mask=...)``) with SB3-contrib's flattening for ``MultiDiscrete``.

An env may instead have an ``action_masks()`` method (on the env or any of its wrappers), returning the same array
for its current observation, as SB3-contrib's ``MaskablePPO`` expects: a vector env's sub-envs are then asked after
every reset and step (``VectorEnv.call``). Where an env gives both, ``info["action_mask"]`` wins: it comes with the
observation it belongs to, while the method answers for the env's state when asked (in SAME_STEP autoreset, after
an episode's end, that is the next episode's first observation, not the final one).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv

ACTION_MASK_KEY = "action_mask"
"""The key of the valid-action mask in an env's ``info``."""
ACTION_MASKS_METHOD = "action_masks"
"""The name of the env method that returns its valid-action mask (SB3-contrib's)."""


def has_action_masks_method(vector_env: VectorEnv) -> bool:
    """Whether every sub-env of ``vector_env`` (or one of its wrappers) has an ``action_masks()`` method."""
    if not callable(getattr(vector_env, "call", None)):  # a vector env without sub-envs to ask (native, torch)
        return False
    return all(vector_env.call("has_wrapper_attr", ACTION_MASKS_METHOD))


def env_action_masks(vector_env: VectorEnv) -> np.ndarray:
    """The ``(num_envs, n)`` bool masks that the sub-envs' ``action_masks()`` return for their current states."""
    masks = vector_env.call(ACTION_MASKS_METHOD)
    return np.stack([np.asarray(mask, dtype=bool).reshape(-1) for mask in masks])


def action_masks_of(infos: dict[str, Any], num_envs: int) -> np.ndarray | None:
    """The ``(num_envs, n)`` bool masks in a vector env's ``infos``, or None when no sub-env gave one.

    A sub-env that gave no mask with this observation (``infos["_action_mask"]`` False) allows every action.
    """
    masks = infos.get(ACTION_MASK_KEY)
    if masks is None:
        return None
    masks = np.asarray(masks, dtype=bool).reshape(num_envs, -1)
    given = np.asarray(infos.get("_" + ACTION_MASK_KEY, True), dtype=bool)
    return masks if given.all() else masks | ~given.reshape(num_envs, 1)
