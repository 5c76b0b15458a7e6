"""Reading the valid-action masks that an environment gives in its ``info`` dict.

An env that masks actions puts ``info["action_mask"]`` beside every observation it returns (from ``reset`` and
from each ``step``, the final observation of an episode included): an array of 0/1 (or bool) with one entry per
action of a ``Discrete(n)`` space (``n``), or per choice of a ``MultiDiscrete(nvec)`` space, the dimensions'
entries one after the other (``sum(nvec)``); 1 (True) marks a valid action. That is gymnasium's own convention
(``Discrete.sample(mask=...)``) with SB3-contrib's flattening for ``MultiDiscrete``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ACTION_MASK_KEY = "action_mask"
"""The key of the valid-action mask in an env's ``info``."""


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
