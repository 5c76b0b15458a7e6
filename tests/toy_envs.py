"""A tiny deterministic environment whose every transition is known, for hand-computed expectations.

``CountingEnv`` counts the steps of its episode: after ``t`` steps the observation is ``[t]`` and the
``t``-th step's reward is ``t``, whatever the action. With ``terminate_at=k`` the ``k``-th step terminates
the episode; :func:`counting_env` adds a gymnasium ``TimeLimit`` so that an episode is truncated instead.
``TorchCountingEnv`` is the same env as a torch vector env.

:func:`spaces_env` makes an env class of any given spaces, for the checks of which spaces an algorithm takes.

``MaskedCountingEnv`` is ``CountingEnv`` with a known mask in its info: action 1 is valid after odd steps only.
``InvalidActionEnv`` offers a random set of valid actions at every step, in ``info["action_mask"]``: a valid
action earns a reward, an invalid one ends the episode with a penalty.

``NonFiniteEnv`` is a ``CountingEnv`` that returns a NaN observation or reward at one step; ``TorchNonFiniteEnv`` is
``TorchCountingEnv`` with a NaN at one step of one env.

``MethodMaskedCountingEnv`` gives ``MaskedCountingEnv``'s masks through an ``action_masks()`` method (SB3-contrib's
way) instead of its info.

``DictEnv`` and ``TupleEnv`` have structured observations (an image, a flag and a discrete target; a flag and a
target) and a task that needs two keys; ``BitCopyEnv`` has ``MultiBinary`` actions that must copy the observation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from rl_lightning.envs import TORCH_ENVS, TorchVectorEnv, register_torch_env

COUNTING_ID = "RLLightningCounting-v0"
"""``CountingEnv`` with a time limit of 3 steps, registered under this id when this module is imported."""
INVALID_ACTION_ID = "RLLightningInvalidAction-v0"
"""``InvalidActionEnv`` (4 actions, masked), registered under this id when this module is imported: configs name it
``tests.toy_envs:RLLightningInvalidAction-v0``."""

TORCH_COUNTING_ID = "RLLightningTorchCounting-v0"
"""``TorchCountingEnv``, registered for ``vectorization="torch"`` under this id when this module is imported."""
DICT_ID = "RLLightningDict-v0"
"""``DictEnv``, registered under this id when this module is imported (``tests.toy_envs:RLLightningDict-v0``)."""
NON_FINITE_ID = "RLLightningNonFinite-v0"
"""``NonFiniteEnv`` with a time limit of 50 steps, registered under this id when this module is imported."""
TORCH_NON_FINITE_ID = "RLLightningTorchNonFinite-v0"
"""``TorchNonFiniteEnv``, registered for ``vectorization="torch"`` under this id when this module is imported."""


class CountingEnv(gym.Env):
    """Observation ``[t]`` after ``t`` steps, reward ``t`` for the ``t``-th step, termination at ``terminate_at``."""

    observation_space = gym.spaces.Box(0.0, 1000.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, terminate_at: int | None = None, render_mode: str | None = None) -> None:
        self.terminate_at = terminate_at
        self.render_mode = render_mode
        self.t = 0

    def _observation(self) -> np.ndarray:
        return np.array([self.t], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._observation(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return self._observation(), float(self.t), self.t == self.terminate_at, False, {}


class MaskedCountingEnv(CountingEnv):
    """``CountingEnv`` whose info gives ``action_mask = [1, t % 2]`` with observation ``[t]``."""

    def _info(self) -> dict[str, Any]:
        return {"action_mask": np.array([1, self.t % 2], dtype=np.int8)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        observation, _ = super().reset(seed=seed, options=options)
        return observation, self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        observation, reward, terminated, truncated, _ = super().step(action)
        return observation, reward, terminated, truncated, self._info()
class MethodMaskedCountingEnv(CountingEnv):
    """``CountingEnv`` whose ``action_masks()`` method returns ``[1, t % 2]`` (as ``MaskedCountingEnv``'s info does);
    with ``info_mask``, its info also gives ``[1, 1 - t % 2]``, the opposite mask, so a test sees which one wins."""

    def __init__(self, terminate_at: int | None = None, info_mask: bool = False) -> None:
        super().__init__(terminate_at)
        self.info_mask = info_mask

    def action_masks(self) -> np.ndarray:
        return np.array([1, self.t % 2], dtype=np.int8)

    def _info(self) -> dict[str, Any]:
        return {"action_mask": np.array([1, 1 - self.t % 2], dtype=np.int8)} if self.info_mask else {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        observation, _ = super().reset(seed=seed, options=options)
        return observation, self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        observation, reward, terminated, truncated, _ = super().step(action)
        return observation, reward, terminated, truncated, self._info()


class DictEnv(gym.Env):
    """Observations ``{"flag": Box(1,) float32 in {0, 1}, "image": (1, 4, 4) uint8 noise, "target": Discrete(3)}``,
    drawn afresh at every step. The rewarded action is ``target`` when the flag is on and ``(target + 1) % 3`` when
    it is off: reward 1, else 0. Episodes are truncated after ``max_steps`` steps, so the best return is
    ``max_steps``, a policy that ignores the flag gets about half of it, one that ignores the target a third.

    Attributes:
        t: steps of the current episode (the image's first pixel holds it too, so observations differ by step).
    """

    observation_space = gym.spaces.Dict(
        {
            "image": gym.spaces.Box(0, 255, (1, 4, 4), np.uint8),
            "flag": gym.spaces.Box(0.0, 1.0, (1,), np.float32),
            "target": gym.spaces.Discrete(3),
        }
    )
    action_space = gym.spaces.Discrete(3)

    def __init__(self, max_steps: int = 8) -> None:
        self.max_steps = max_steps
        self.t = 0
        self.rewarded = 0

    def _observation(self) -> dict[str, Any]:
        image = self.np_random.integers(0, 256, (1, 4, 4), dtype=np.uint8)
        image[0, 0, 0] = self.t
        flag = np.array([self.np_random.integers(2)], dtype=np.float32)
        target = int(self.np_random.integers(3))
        self.rewarded = target if flag[0] else (target + 1) % 3
        return {"image": image, "flag": flag, "target": target}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._observation(), {}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        reward = float(int(action) == self.rewarded)
        self.t += 1
        return self._observation(), reward, False, self.t >= self.max_steps, {}


class TupleEnv(DictEnv):
    """``DictEnv``'s task with ``Tuple((flag, target))`` observations (no image)."""

    observation_space = gym.spaces.Tuple((gym.spaces.Box(0.0, 1.0, (1,), np.float32), gym.spaces.Discrete(3)))

    def _observation(self) -> tuple[np.ndarray, int]:
        observation = super()._observation()
        return observation["flag"], observation["target"]


class BitCopyEnv(gym.Env):
    """Observations: ``n`` random bits (a ``MultiBinary(n)``); actions: ``MultiBinary(n)``; the reward is the
    fraction of bits the action copies. Episodes are truncated after ``max_steps`` steps (best return ``max_steps``;
    random bits get half)."""

    def __init__(self, n: int = 4, max_steps: int = 4) -> None:
        self.observation_space = gym.spaces.MultiBinary(n)
        self.action_space = gym.spaces.MultiBinary(n)
        self.n, self.max_steps, self.t = n, max_steps, 0
        self.bits = np.zeros(n, dtype=np.int8)

    def _observation(self) -> np.ndarray:
        self.bits = self.np_random.integers(0, 2, self.n, dtype=np.int8)
        return self.bits.copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._observation(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(np.mean(np.asarray(action).reshape(-1) == self.bits))
        self.t += 1
        return self._observation(), reward, False, self.t >= self.max_steps, {}


class NonFiniteEnv(CountingEnv):
    """A ``CountingEnv`` whose ``nan_in`` (``"observation"`` or ``"reward"``) is NaN at every episode's ``nan_at``-th
    step (never with ``nan_at=None``); with ``nan_seed``, only if it was first reset with that seed (one env of a
    vector env, one rank's under DDP: env ``i`` of rank ``r`` gets ``seed + r * num_envs + i``)."""

    def __init__(
        self,
        nan_at: int | None = None,
        nan_in: str = "observation",
        nan_seed: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(render_mode=render_mode)
        self.nan_at, self.nan_in, self.nan_seed = nan_at, nan_in, nan_seed
        self.poisoned = nan_seed is None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None and self.nan_seed is not None:
            self.poisoned = seed == self.nan_seed
        return super().reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        observation, reward, terminated, truncated, info = super().step(action)
        if self.poisoned and self.t == self.nan_at:
            if self.nan_in == "observation":
                observation[0] = np.nan
            else:
                reward = float("nan")
        return observation, reward, terminated, truncated, info


def counting_env(terminate_at: int | None = None, truncate_at: int | None = None) -> gym.Env:
    """A ``CountingEnv`` terminating at step ``terminate_at`` or truncated by a time limit at ``truncate_at``."""
    env: gym.Env = CountingEnv(terminate_at)
    if truncate_at is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=truncate_at)
    return env


def counting_vector_env(limits: Sequence[tuple[int | None, int | None]]) -> SyncVectorEnv:
    """A NEXT_STEP vector env with one ``counting_env(terminate_at, truncate_at)`` per entry of ``limits``."""
    factories: list[Callable[[], gym.Env]] = [
        lambda term=term, trunc=trunc: counting_env(term, trunc) for term, trunc in limits
    ]
    return SyncVectorEnv(factories, autoreset_mode=AutoresetMode.NEXT_STEP)


class TorchCountingEnv(TorchVectorEnv):
    """``CountingEnv`` as a torch vector env: env ``i`` terminates at its ``terminate_at[i]``-th step.

    Args:
        num_envs: number of envs.
        device: where the tensors live.
        terminate_at: per env, the step that terminates its episodes (``None``: never); by default none terminates.
        max_episode_steps: the time limit of all envs (``None``: none).
        autoreset_mode: ``AutoresetMode.SAME_STEP`` or ``AutoresetMode.NEXT_STEP``.
    """

    def __init__(
        self,
        num_envs: int = 2,
        *,
        device: torch.device | str | None = None,
        terminate_at: Sequence[int | None] | None = None,
        max_episode_steps: int | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
    ) -> None:
        super().__init__(
            num_envs,
            single_observation_space=CountingEnv.observation_space,
            single_action_space=CountingEnv.action_space,
            max_episode_steps=max_episode_steps,
            device=device,
            autoreset_mode=autoreset_mode,
        )
        limits = [None] * num_envs if terminate_at is None else list(terminate_at)
        # Step 0 never ends a step, so 0 stands for "never".
        self.terminate_at = torch.tensor([limit or 0 for limit in limits], device=self.device)

    def initial_state(self, options: dict[str, Any] | None) -> torch.Tensor:
        """Every episode starts at ``t = 0``."""
        return torch.zeros(self.num_envs, 1, dtype=self.dtype, device=self.device)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``t + 1``, reward ``t + 1``, terminated at ``terminate_at``."""
        counted = state + 1
        return counted, counted[:, 0].clone(), counted[:, 0] == self.terminate_at

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """``[t]``."""
        return state.clone()
class TorchNonFiniteEnv(TorchCountingEnv):
    """``TorchCountingEnv`` whose env ``nan_env`` returns a NaN ``nan_in`` (``"observation"`` or ``"reward"``) at
    every episode's ``nan_at``-th step; the state itself stays finite."""

    def __init__(
        self, num_envs: int = 2, *, nan_env: int = 0, nan_at: int = 1, nan_in: str = "observation", **kwargs: Any
    ) -> None:
        super().__init__(num_envs, **kwargs)
        self.poisoned = torch.arange(num_envs, device=self.device) == nan_env
        self.nan_at, self.nan_in = nan_at, nan_in

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        counted, rewards, terminated = super().dynamics(state, actions)
        if self.nan_in == "reward":
            rewards = torch.where(self.poisoned & (counted[:, 0] == self.nan_at), float("nan"), rewards)
        return counted, rewards, terminated

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        observations = super().observe(state)
        if self.nan_in == "observation":
            poisoned = self.poisoned & (state[:, 0] == self.nan_at)
            observations = torch.where(poisoned[:, None], float("nan"), observations)
        return observations


def spaces_env(action_space: gym.Space, observation_space: gym.Space | None = None) -> type[gym.Env]:
    """An env class with ``action_space`` (and a 2-d float ``Box`` observation space unless one is given) whose
    every step samples its observation space and ends the episode."""

    class SpacesEnv(gym.Env):
        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
            super().reset(seed=seed)
            return self.observation_space.sample(), {}

        def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
            return self.observation_space.sample(), 0.0, True, False, {}

    SpacesEnv.action_space = action_space
    SpacesEnv.observation_space = observation_space or gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    SpacesEnv.__name__ = SpacesEnv.__qualname__ = f"SpacesEnv[{type(action_space).__name__}]"
    return SpacesEnv


class InvalidActionEnv(gym.Env):
    """At each step a random subset of the actions is valid (each choice with probability 1/2, at least one per
    dimension); the observation is that mask as floats, and ``info["action_mask"]`` gives it unless ``masked`` is
    False. A valid action earns the mean over dimensions of ``(choice + 1) / n``, so the best valid action is the
    highest; an invalid one terminates the episode with reward -1. Episodes are truncated after ``max_steps``.

    Args:
        nvec: choices per action dimension: ``(n,)`` makes a ``Discrete(n)`` action space, more a ``MultiDiscrete``.
        max_steps: steps before the episode is truncated.
        masked: give ``info["action_mask"]``.

    Attributes:
        invalid_actions: invalid actions taken since the env was made (for tests that none ever is).
    """

    def __init__(self, nvec: Sequence[int] = (4,), max_steps: int = 10, masked: bool = True) -> None:
        self.nvec, self.max_steps, self.masked = [int(n) for n in nvec], max_steps, masked
        self.action_space = gym.spaces.Discrete(self.nvec[0]) if len(self.nvec) == 1 else gym.spaces.MultiDiscrete(nvec)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (sum(self.nvec),), np.float32)
        self.invalid_actions = 0
        self.t = 0
        self.mask = np.ones(sum(self.nvec), dtype=np.int8)

    def _draw(self) -> tuple[np.ndarray, dict[str, Any]]:
        parts = []
        for n in self.nvec:
            part = (self.np_random.random(n) < 0.5).astype(np.int8)
            part[self.np_random.integers(n)] = 1  # at least one valid choice
            parts.append(part)
        self.mask = np.concatenate(parts)
        return self.mask.astype(np.float32), ({"action_mask": self.mask.copy()} if self.masked else {})

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._draw()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        choices = np.atleast_1d(np.asarray(action))
        offsets = np.cumsum([0, *self.nvec[:-1]])
        if not self.mask[offsets + choices].all():
            self.invalid_actions += 1
            observation, info = self._draw()
            return observation, -1.0, True, False, info
        reward = float(np.mean((choices + 1) / np.asarray(self.nvec)))
        observation, info = self._draw()
        return observation, reward, False, self.t >= self.max_steps, info


class MethodMaskedInvalidActionEnv(InvalidActionEnv):
    """``InvalidActionEnv`` whose valid actions come from an ``action_masks()`` method (SB3-contrib's way), not
    its info."""

    def __init__(self, nvec: Sequence[int] = (4,), max_steps: int = 10) -> None:
        super().__init__(nvec, max_steps, masked=False)

    def action_masks(self) -> np.ndarray:
        return self.mask.copy()


if COUNTING_ID not in gym.registry:
    gym.register(COUNTING_ID, entry_point=CountingEnv, max_episode_steps=3)
if TORCH_COUNTING_ID not in TORCH_ENVS:
    register_torch_env(TORCH_COUNTING_ID, TorchCountingEnv)
if TORCH_NON_FINITE_ID not in TORCH_ENVS:
    register_torch_env(TORCH_NON_FINITE_ID, TorchNonFiniteEnv)
if INVALID_ACTION_ID not in gym.registry:
    gym.register(INVALID_ACTION_ID, entry_point=InvalidActionEnv)


class RandomFramesEnv(gym.Env):
    """Random uint8 frames of shape ``(2, 3)``; each step terminates with probability ``termination_probability``."""

    observation_space = gym.spaces.Box(0, 255, (2, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, termination_probability: float = 0.1) -> None:
        self.termination_probability = termination_probability

    def _frame(self) -> np.ndarray:
        return self.np_random.integers(0, 256, (2, 3), dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self._frame(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        terminated = bool(self.np_random.random() < self.termination_probability)
        return self._frame(), float(self.np_random.normal()), terminated, False, {}


def stacked_frames_vector_env(
    num_envs: int, stack_size: int, padding: str, termination_probability: float = 0.1, truncate_at: int = 12
) -> SyncVectorEnv:
    """A NEXT_STEP vector env of ``RandomFramesEnv``s under gymnasium's ``FrameStackObservation`` (and a time limit)."""

    def build() -> gym.Env:
        env = gym.wrappers.TimeLimit(RandomFramesEnv(termination_probability), max_episode_steps=truncate_at)
        return gym.wrappers.FrameStackObservation(env, stack_size, padding_type=padding)

    return SyncVectorEnv([build] * num_envs, autoreset_mode=AutoresetMode.NEXT_STEP)
if DICT_ID not in gym.registry:
    gym.register(DICT_ID, entry_point=DictEnv)
if NON_FINITE_ID not in gym.registry:
    gym.register(NON_FINITE_ID, entry_point=NonFiniteEnv, max_episode_steps=50)
