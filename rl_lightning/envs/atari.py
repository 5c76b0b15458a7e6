"""Pixel environments: Atari (ALE) and MinAtar by id, and the preprocessing of the DQN/PPO literature as presets.

``ALE/...`` and ``...NoFrameskip-v4`` ids register ``ale_py``'s envs on first use (the ``atari`` extra), and
``MinAtar/...`` ids MinAtar's (the ``minatar`` extra), so a config names them without user code. The presets
are wrappers a config names like any other (``wrappers: [{class_path: rl_lightning.envs.AtariPreset}]``):

- :class:`AtariPreset`: no-op starts, frame skip 4 with max-pooling of the last two frames, 84x84 grayscale,
  fire on reset, a 4-frame stack (Mnih et al. 2015; Machado et al. 2018), and two changes of the *training*
  signal: the end of a life ends the episode, rewards are clipped to their sign (:class:`TrainingSignal`
  wrappers, switched off in evaluation envs, which play whole games with the game's own rewards). The returns
  reported in training are those of whole games too (gymnasium's ``RecordEpisodeStatistics`` beneath the
  training-only wrappers, which the collector reads).
- :class:`MinAtarPreset`: MinAtar's ``(10, 10, C)`` boolean frames as ``(C, 10, 10)`` uint8 images (0 or 255),
  which the default small-image CNN takes.
"""

from __future__ import annotations

import importlib
import math
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from rl_lightning.envs.state import EnvStateError
from rl_lightning.errors import ConfigurationError

_EXTRAS = {"ale_py": "atari", "minatar": "minatar"}


def _import_extra(module: str, env_id: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        extra = _EXTRAS[module]
        raise ConfigurationError(
            f"env={env_id!r} needs the {module!r} package, which is not installed: install the {extra!r} extra "
            f"with `pip install \"rl-lightning[{extra}]\"`."
        ) from None


def is_atari_id(env_id: str) -> bool:
    """Whether ``env_id`` names an env of ale_py (``ALE/Pong-v5``, ``PongNoFrameskip-v4``)."""
    return env_id.startswith("ALE/") or "NoFrameskip-v" in env_id


def register_pixel_envs(env_id: str) -> None:
    """Register the envs of the package behind ``env_id`` (ale_py for Atari ids, MinAtar's for ``MinAtar/``).

    Does nothing for other ids, or when ``env_id`` is registered already. Raises :class:`ConfigurationError`
    naming the extra to install when the package is missing.
    """
    if env_id in gym.registry:
        return
    if is_atari_id(env_id):
        gym.register_envs(_import_extra("ale_py", env_id))
    elif env_id.startswith("MinAtar/"):
        _import_extra("minatar", env_id)
        importlib.import_module("minatar.gym").register_envs()


class EmulatorState(gym.Wrapper):
    """Makes a pickled ALE env continue exactly where it was (a checkpoint's env state, a deep copy).

    ale-py's env pickles as its constructor arguments only (gymnasium's ``EzPickle``), so an unpickled one starts a
    new game. This wrapper's pickle adds what moves: the emulator's state with its random generator, the env's own
    attributes (``np_random``: no-op starts, random frame skips), and, with sticky actions, the held action.

    The held action is the one sticky actions repeat: on each frame the emulator keeps applying it with
    probability ``p`` and otherwise takes the action passed. It lives outside the emulator's saved state, and is not
    always the last action passed (that one may itself have been dropped). It is found when pickling: from the
    saved state, ``frames`` NOOP frames are played with the true held action and then with each candidate, and the
    first candidate whose emulator states match frame for frame is held. Until a frame's draw takes the action
    passed, the held one is applied whatever is passed, so a candidate that matches over those frames continues
    exactly as the true one. An action is held by taking it for ``frames`` frames (restoring the state after):
    ``frames`` makes ``p ** frames < 2 ** -100``, the chance that every draw said "repeat".
    :func:`make_vector_env` puts this wrapper on every ALE env it builds.
    """

    def __getstate__(self) -> dict[str, Any]:
        base = self.env.unwrapped
        emulator = base.ale.cloneState(include_rng=True)
        state = dict(vars(self))
        state["_base_attributes"] = {name: value for name, value in vars(base).items() if name != "ale"}
        state["_emulator"] = emulator
        state["_held_action"] = _held_action(base, emulator)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        base_attributes, emulator, held_action = (
            state.pop("_base_attributes"), state.pop("_emulator"), state.pop("_held_action")
        )
        vars(self).update(state)
        base = self.env.unwrapped  # a new game, built from its constructor arguments by its own pickle
        if held_action is not None:
            _hold(base.ale, held_action, emulator)
        base.ale.restoreState(emulator)
        vars(base).update(base_attributes)


_MISS_BITS = 100
"""An action is held unless this many bits' worth of sticky draws in a row all said "repeat"."""


def _sticky_frames(ale: Any) -> int:
    """Frames after which an action taken on each is held, but for a chance under ``2 ** -_MISS_BITS``; 0 without
    sticky actions (``p`` of 0, or of 1, where the action held from the game's start is never replaced)."""
    repeat_probability = ale.getFloat("repeat_action_probability")
    if not 0.0 < repeat_probability < 1.0:
        return 0
    return math.ceil(_MISS_BITS / -math.log2(repeat_probability))


def _hold(ale: Any, action: Any, emulator: Any) -> None:
    """Make ``action`` the emulator's held action, leaving it in the state ``emulator``."""
    for _ in range(_sticky_frames(ale)):
        ale.act(action)
    ale.restoreState(emulator)


def _noop_trace(ale: Any, emulator: Any) -> list[Any]:
    """The emulator's states over the sticky frames of NOOPs from ``emulator`` (which it is left in)."""
    ale.restoreState(emulator)
    trace = []
    for _ in range(_sticky_frames(ale)):
        ale.act(0)  # NOOP
        trace.append(ale.cloneState())
    ale.restoreState(emulator)
    return trace


def _held_action(base: gym.Env, emulator: Any) -> Any:
    """The action ``base``'s emulator holds for sticky actions (None without them), leaving it as it was.

    Raises:
        EnvStateError: no action of the env's set continues as the held one does (a continuous-action env holds a
            paddle strength too, which this does not look for).
    """
    ale = base.ale
    if _sticky_frames(ale) == 0:
        return None
    reference = _noop_trace(ale, emulator)
    for candidate in base._action_set:
        _hold(ale, candidate, emulator)
        if _noop_trace(ale, emulator) == reference:
            _hold(ale, candidate, emulator)
            return candidate
    raise EnvStateError(
        f"{base.spec.id if base.spec else 'the ALE env'} holds a sticky action that no action of its action set "
        f"reproduces, so its state cannot be saved exactly: pass env_kwargs={{'repeat_action_probability': 0.0}} "
        f"(no sticky actions) to checkpoint it."
    )


def with_emulator_state(env: gym.Env) -> gym.Env:
    """``env`` under :class:`EmulatorState` if it is an ALE env, so that its pickle continues exactly; else ``env``."""
    return EmulatorState(env) if hasattr(env.unwrapped, "ale") else env


class TrainingSignal(gym.Wrapper):
    """A wrapper that changes the training signal only (life-loss episode ends, clipped rewards): in evaluation
    envs (``make_vector_env(..., evaluation=True)``) it is switched off and passes everything through."""

    training = True


class EpisodicLife(TrainingSignal):
    """The loss of a life terminates the episode, for training (Mnih et al. 2015).

    The next reset only continues the game (one no-op step) unless the game is over, so that an agent sees
    every life of a game, and a reset with a seed always starts a new game.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._lives = 0
        self._game_over = True

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        if not self.training:
            return observation, reward, terminated, truncated, info
        self._game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        life_lost = 0 < lives < self._lives
        self._lives = lives
        return observation, reward, terminated or life_lost, truncated, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if not self.training or self._game_over or seed is not None:
            observation, info = self.env.reset(seed=seed, options=options)
        else:
            observation, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:  # the no-op ended the game: start a new one
                observation, info = self.env.reset(options=options)
        self._game_over = False
        self._lives = self.env.unwrapped.ale.lives()
        return observation, info


class FireReset(gym.Wrapper):
    """Press FIRE after each reset, for games that wait for it (Breakout's serve).

    Where a lost life does not end the episode (evaluation), FIRE is pressed after it too, folded into the step
    that lost the life: otherwise a deterministic policy that never fires would wait for the serve until the
    game's time limit.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._lives = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self.env.reset(seed=seed, options=options)
        observation, _, terminated, truncated, info = self.env.step(1)
        if terminated or truncated:
            observation, info = self.env.reset(options=options)
        self._lives = self.env.unwrapped.ale.lives()
        return observation, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        lives = self.env.unwrapped.ale.lives()
        if lives < self._lives and not (terminated or truncated):
            observation, fire_reward, terminated, truncated, info = self.env.step(1)
            reward = float(reward) + float(fire_reward)
        self._lives = lives
        return observation, reward, terminated, truncated, info


class SignReward(TrainingSignal):
    """Rewards clipped to their sign, -1, 0 or 1, for training (the scale of Q-values is then alike in all games)."""

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        return observation, float(np.sign(reward)) if self.training else reward, terminated, truncated, info


def for_evaluation(env: gym.Env) -> gym.Env:
    """Switch off every :class:`TrainingSignal` wrapper of ``env``: whole games with the game's own rewards."""
    layer = env
    while isinstance(layer, gym.Wrapper):
        if isinstance(layer, TrainingSignal):
            layer.training = False
        layer = layer.env
    return env


class AtariPreset(gym.Wrapper):
    """The standard Atari preprocessing of an ALE env built with ``frameskip=1``.

    For ``ALE/*-v5`` ids pass ``env_kwargs={"frameskip": 1}`` (the preset skips frames itself, max-pooling the
    last two); ``*NoFrameskip-v4`` ids skip none already. The returns reported are those of whole games with the
    game's own rewards, whatever ``terminal_on_life_loss`` and ``clip_rewards`` do to the training signal, and
    evaluation envs play whole games with the game's rewards.

    In a config: ``wrappers: [{class_path: rl_lightning.envs.AtariPreset, init_args: {noop_max: 30}}]``.

    Args:
        env: an ALE env without frame skipping.
        noop_max: at most this many no-op actions after a new game (a random number of them): varied starts.
        frame_skip: emulator frames per agent step, the action repeated; the observation is the pixel-wise
            maximum of the last two frames (sprites flicker on the Atari).
        screen_size: side of the square grayscale frame.
        frame_stack: frames stacked into one observation, ``(frame_stack, screen_size, screen_size)`` uint8; the
            stack of a new episode is its first frame repeated.
        fire_reset: press FIRE after each reset (and each lost life), in games whose second action is FIRE.
        terminal_on_life_loss: in training, the loss of a life ends the episode (no bootstrap across it).
        clip_rewards: in training, rewards clipped to their sign.
    """

    def __init__(
        self,
        env: gym.Env,
        noop_max: int = 30,
        frame_skip: int = 4,
        screen_size: int = 84,
        frame_stack: int = 4,
        fire_reset: bool = True,
        terminal_on_life_loss: bool = True,
        clip_rewards: bool = True,
    ) -> None:
        for name, value in (("frame_skip", frame_skip), ("screen_size", screen_size), ("frame_stack", frame_stack)):
            if value < 1:
                raise ConfigurationError(f"AtariPreset({name}={value}) must be at least 1.")
        if noop_max < 0:
            raise ConfigurationError(f"AtariPreset(noop_max={noop_max}) must be >= 0 (0 turns it off).")
        base = env.unwrapped
        if not hasattr(base, "ale"):
            raise ConfigurationError(
                f"AtariPreset wraps Atari envs, not {base.spec.id if base.spec else type(base).__name__}: use an "
                f"'ALE/...' or '...NoFrameskip-v4' id."
            )
        if getattr(base, "_frameskip", None) != 1:
            raise ConfigurationError(
                f"AtariPreset skips frames itself, but {base.spec.id} skips {base._frameskip} already: pass "
                f"env_kwargs={{'frameskip': 1}} (or use a 'NoFrameskip-v4' id)."
            )
        env = gym.wrappers.AtariPreprocessing(env, noop_max=noop_max, frame_skip=frame_skip, screen_size=screen_size)
        # Beneath the training-only wrappers: whole games, the game's own rewards (read by the collector).
        env = gym.wrappers.RecordEpisodeStatistics(env)
        if terminal_on_life_loss:
            env = EpisodicLife(env)
        if fire_reset and base.get_action_meanings()[1:2] == ["FIRE"]:
            env = FireReset(env)
        if clip_rewards:
            env = SignReward(env)
        if frame_stack > 1:
            env = gym.wrappers.FrameStackObservation(env, frame_stack, padding_type="reset")
        super().__init__(env)


class MinAtarPreset(gym.ObservationWrapper):
    """MinAtar's ``(10, 10, C)`` boolean frames as ``(C, 10, 10)`` uint8 images of 0 and 255, for the default
    small-image CNN (Young & Tian 2019 feed the frames unstacked: their channels show all motion).

    Args:
        env: a MinAtar env (``MinAtar/Breakout-v1``, ...).
        max_episode_steps: episodes longer than this are truncated (MinAtar sets no limit, and a good agent's
            Breakout never ends); None for no limit.
    """

    def __init__(self, env: gym.Env, max_episode_steps: int | None = 10_000) -> None:
        if not hasattr(env.unwrapped, "game"):
            raise ConfigurationError(
                "MinAtarPreset wraps MinAtar envs: use a 'MinAtar/...' id, e.g. 'MinAtar/Breakout-v1'."
            )
        if max_episode_steps is not None:
            env = gym.wrappers.TimeLimit(env, max_episode_steps)
        super().__init__(env)
        height, width, channels = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 255, (channels, height, width), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(observation, -1, 0), dtype=np.uint8) * np.uint8(255)
