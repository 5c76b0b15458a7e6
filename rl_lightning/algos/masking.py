"""Which algorithms take an env's valid-action masks (``info["action_mask"]`` or ``action_masks()``), and the checks
of their width."""

from __future__ import annotations

import gymnasium as gym
from lightning.pytorch import LightningModule
from torch import Tensor

from rl_lightning.errors import ConfigurationError


class ActionMasking(LightningModule):
    """Mixin of :class:`~rl_lightning.RLAlgorithm`: an env that gives masks is refused unless the algorithm says
    it can use them (by overriding :meth:`check_action_masks`), when fitting starts, before anything is written."""

    action_space: gym.Space

    def check_action_masks(self, action_masks: Tensor) -> None:
        """Refuse the env's valid-action masks (``(num_envs, n)``) unless this algorithm can use them as they are.

        The default refuses every mask; an algorithm that masks its actions overrides it to check the width.
        """
        raise ConfigurationError(
            f"The environment gives valid-action masks (info['action_mask'] or an action_masks() method), which "
            f"{type(self).__name__} cannot "
            f"use: masking is for Discrete and MultiDiscrete actions in DQN, PPO and A2C. Use one of those, or drop "
            f"the key from the env's info."
        )

    def check_action_mask_width(self, action_masks: Tensor, width: int, what: str) -> None:
        """Refuse masks whose rows are not ``width`` entries wide (``what`` says what they should cover)."""
        if action_masks.shape[-1] != width:
            raise ConfigurationError(
                f"info['action_mask'] has {action_masks.shape[-1]} entries, but {type(self).__name__} needs one per "
                f"{what}: {width} for {self.action_space!r}. Give the env's masks that width."
            )
