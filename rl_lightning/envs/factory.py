"""Building vector environments from an id, an ``Env`` class or a factory: gymnasium's, or our torch-native ones."""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

from rl_lightning.envs.atari import for_evaluation, register_pixel_envs, with_emulator_state
from rl_lightning.envs.classic_control import Acrobot, CartPole, MountainCar, MountainCarContinuous, Pendulum
from rl_lightning.envs.torch_vector import TorchVectorEnv
from rl_lightning.errors import ConfigurationError

EnvSpec = str | type[gym.Env] | Callable[[], gym.Env]
"""What users pass as ``env=``: a registered id (``"CartPole-v1"``, ``"my_pkg.envs:Maze-v0"``), an
``Env`` subclass, or a zero-argument factory returning an ``Env``."""

TorchEnvFactory = Callable[..., TorchVectorEnv]
"""A ``TorchVectorEnv`` subclass or a function building one, called as ``factory(num_envs=..., device=...,
**env_kwargs)``."""

TorchEnvSpec = str | TorchEnvFactory
"""What ``env=`` may be with ``vectorization="torch"``: an id of :data:`TORCH_ENVS` or a :data:`TorchEnvFactory`."""

Wrapper = Callable[[gym.Env], gym.Env]
Vectorization = Literal["sync", "async", "native", "torch"]

TORCH_ENVS: dict[str, TorchEnvFactory] = {
    "Acrobot-v1": Acrobot,
    "CartPole-v1": CartPole,
    "MountainCar-v0": MountainCar,
    "MountainCarContinuous-v0": MountainCarContinuous,
    "Pendulum-v1": Pendulum,
}
"""The gymnasium ids that ``vectorization="torch"`` builds as torch vector envs, and what builds each."""


def _import_module_of(env_id: str) -> str:
    """Import the module of a ``module:EnvId`` id (which registers the env) and return the bare id."""
    if ":" not in env_id:
        return env_id
    module, _, bare_id = env_id.partition(":")
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise ConfigurationError(
            f"env={env_id!r}: cannot import module {module!r} ({err}). Install the package that "
            f"provides it, or check the spelling of the part before ':'."
        ) from None
    return bare_id


def check_env_id(env_id: str) -> str:
    """Return the registered id of ``env_id``; raise with close matches when it is unknown."""
    bare_id = _import_module_of(env_id)
    register_pixel_envs(bare_id)
    if bare_id in gym.registry:
        return bare_id
    matches = difflib.get_close_matches(bare_id, list(gym.registry), n=3, cutoff=0.6)
    if not matches:
        lowered = bare_id.lower()
        matches = [name for name in gym.registry if lowered in name.lower()][:3]
    hint = f" Did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""
    raise ConfigurationError(
        f"env={env_id!r} is not a registered gymnasium environment.{hint} Registered ids are listed by "
        f"`python -c 'import gymnasium; gymnasium.pprint_registry()'`; an env from another package is "
        f"given as 'package.module:EnvId'."
    )


EXTRAS = {"mujoco": 'pip install "rl-lightning[mujoco]"'}
"""What installs a gymnasium extra that rl-lightning has an extra of its own for."""


def missing_dependency(env_id: str, error: gym.error.DependencyNotInstalled) -> str:
    """The message for ``env_id``, whose package needs what ``error`` says is not installed: what to install."""
    extra = re.search(r'gymnasium\[(\w+)\]', str(error))
    name = extra.group(1) if extra else None
    install = EXTRAS.get(name) or (f'pip install "gymnasium[{name}]"' if name else "the package it names")
    reason = str(error).splitlines()[0]
    return f"env={env_id!r} needs a package that is not installed ({reason}). Install it: {install}."


def register_torch_env(env_id: str, factory: TorchEnvFactory) -> None:
    """Let ``vectorization="torch"`` build ``env_id`` with ``factory(num_envs=..., device=..., **env_kwargs)``.

    A package registering its torch envs when imported can be named as ``"package.module:EnvId"``.
    """
    TORCH_ENVS[env_id] = factory


def torch_env_factory(env_id: str) -> TorchEnvFactory:
    """What builds ``env_id`` (``module:EnvId`` imports ``module`` first) as a torch vector env.

    Raises:
        ConfigurationError: ``env_id`` has no torch implementation; the message lists the ids that have one.
    """
    bare_id = _import_module_of(env_id)
    if bare_id in TORCH_ENVS:
        return TORCH_ENVS[bare_id]
    raise ConfigurationError(
        f"env={env_id!r} has no torch implementation for vectorization='torch'; the ids that have one are "
        f"{', '.join(repr(name) for name in sorted(TORCH_ENVS))}. Use vectorization='sync', 'async' or 'native' "
        f"for other envs, or pass your own TorchVectorEnv subclass as env (register_torch_env gives it an id)."
    )


def _is_torch_env_class(env: object) -> bool:
    return isinstance(env, type) and issubclass(env, TorchVectorEnv)


def _build_torch_vector_env(
    env: TorchEnvSpec,
    num_envs: int,
    device: torch.device | str | None,
    env_kwargs: dict[str, Any],
    wrappers: Sequence[Wrapper],
    render_mode: str | None,
) -> TorchVectorEnv:
    """``num_envs`` torch envs of ``env`` (a :data:`TORCH_ENVS` id or a :data:`TorchEnvFactory`) on ``device``."""
    if wrappers:
        raise ConfigurationError(
            "wrappers apply to single gymnasium environments and cannot wrap a torch vector env: use "
            "vectorization='sync' or 'async' with wrappers."
        )
    if render_mode is not None:
        raise ConfigurationError(
            f"render_mode={render_mode!r}: torch vector envs do not render. Record videos from an env built with "
            f"vectorization='sync'."
        )
    if isinstance(env, str):
        factory = torch_env_factory(env)
    elif callable(env):
        factory = env
    else:
        raise ConfigurationError(
            f"env={env!r} ({type(env).__name__}) is not an env id, a TorchVectorEnv subclass or a factory. Pass "
            f"e.g. env='CartPole-v1' with vectorization='torch'."
        )
    made = factory(num_envs=num_envs, device=device, **env_kwargs)
    if not isinstance(made, TorchVectorEnv):
        raise ConfigurationError(
            f"env={env!r} returned {type(made).__name__}, not a TorchVectorEnv, with vectorization='torch'. Pass a "
            f"TorchVectorEnv subclass or a factory returning one, or use vectorization='sync' for a gymnasium.Env."
        )
    if made.num_envs != num_envs:
        raise ConfigurationError(
            f"env={env!r} built {made.num_envs} envs where num_envs={num_envs} was asked for: the factory must pass "
            f"its num_envs argument on."
        )
    return made


def _single_env_factory(
    env: EnvSpec, env_kwargs: dict[str, Any], wrappers: Sequence[Wrapper], evaluation: bool = False
) -> Callable[[], gym.Env]:
    """A zero-argument callable building one (wrapped) environment; for ``evaluation``, with its
    :class:`~rl_lightning.envs.atari.TrainingSignal` wrappers switched off (in the process that builds it)."""
    if _is_torch_env_class(env):
        raise ConfigurationError(
            f"env={env.__name__} is a TorchVectorEnv, which steps its envs as a batch: build it with "
            f"vectorization='torch'."
        )
    if isinstance(env, str):
        check_env_id(env)

        def build() -> gym.Env:
            # The full 'module:EnvId' id, so that gymnasium imports the module again in a spawned subprocess
            # (async vectorization), where the registration made in this process does not exist; Atari and
            # MinAtar ids are registered there again for the same reason.
            register_pixel_envs(env.rpartition(":")[2])
            try:
                made = gym.make(env, **env_kwargs)
            except gym.error.DependencyNotInstalled as err:
                raise ConfigurationError(missing_dependency(env, err)) from None
            made = with_emulator_state(made)
            for wrap in wrappers:
                made = wrap(made)
            return for_evaluation(made) if evaluation else made

    elif callable(env):

        def build() -> gym.Env:
            made = env(**env_kwargs)
            if not isinstance(made, gym.Env):
                torch_env = isinstance(made, TorchVectorEnv)
                hint = " (a TorchVectorEnv is built with vectorization='torch')" if torch_env else ""
                raise ConfigurationError(
                    f"env={env!r} returned {type(made).__name__}, not a gymnasium.Env. Pass an env id, an "
                    f"Env subclass, or a factory that returns an Env{hint}."
                )
            made = with_emulator_state(made)
            for wrap in wrappers:
                made = wrap(made)
            return for_evaluation(made) if evaluation else made

    else:
        raise ConfigurationError(
            f"env={env!r} ({type(env).__name__}) is not an env id, an Env subclass or a factory. Pass "
            f"e.g. env='CartPole-v1'."
        )
    return build


def env_name(env: EnvSpec) -> str:
    """A short readable name of ``env`` for run names and error messages."""
    if isinstance(env, str):
        return env.rpartition(":")[2]
    return getattr(env, "__name__", type(env).__name__)


class FrameStack(NamedTuple):
    """Observations that are stacks of the env's last frames (gymnasium's ``FrameStackObservation``)."""

    size: int
    """Frames in one observation, stacked along its first axis."""
    padding: Literal["reset", "zero"]
    """What fills the stack of a new episode: its first frame repeated, or zeros."""


class EnvTraits(NamedTuple):
    """What the rest of the library needs to know of an environment, read from one instance of it."""

    observation_space: gym.Space
    action_space: gym.Space
    frame_stack: FrameStack | None
    """Set when each observation is the previous one shifted by one new frame (within an episode)."""
    records_episodes: bool
    """The env reports its episodes itself (gymnasium's ``RecordEpisodeStatistics`` in ``info["episode"]``),
    beneath wrappers that change rewards or episode ends for training, such as :class:`AtariPreset`'s."""


def _frame_stack(env: gym.Env) -> FrameStack | None:
    """The outermost wrapper's frame stack, when no wrapper above it changes the observations."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.FrameStackObservation):
            padding = env.padding_type
            return FrameStack(env.stack_size, padding) if padding in ("reset", "zero") else None
        if isinstance(env, gym.ObservationWrapper) or env.observation_space != env.env.observation_space:
            return None
        env = env.env
    return None


def _records_episodes(env: gym.Env) -> bool:
    """Whether a wrapper of ``env`` is gymnasium's ``RecordEpisodeStatistics``."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.RecordEpisodeStatistics):
            return True
        env = env.env
    return False


def probe_env(
    env: EnvSpec | TorchEnvSpec,
    env_kwargs: dict[str, Any] | None = None,
    wrappers: Sequence[Wrapper] = (),
    *,
    vectorization: Vectorization = "sync",
) -> EnvTraits:
    """The spaces and traits of one environment, as the vector env's sub-envs will have them (with
    ``vectorization="torch"`` or a ``TorchVectorEnv`` subclass, of a torch env of one env built on the CPU)."""
    kwargs = dict(env_kwargs or {})
    if vectorization == "torch" or _is_torch_env_class(env):
        torch_env = _build_torch_vector_env(env, 1, "cpu", kwargs, wrappers, render_mode=None)
        try:
            return EnvTraits(torch_env.single_observation_space, torch_env.single_action_space, None, False)
        finally:
            torch_env.close()
    single = _single_env_factory(env, kwargs, wrappers)()
    try:
        return EnvTraits(single.observation_space, single.action_space, _frame_stack(single), _records_episodes(single))
    finally:
        single.close()


def probe_spaces(
    env: EnvSpec | TorchEnvSpec,
    env_kwargs: dict[str, Any] | None = None,
    wrappers: Sequence[Wrapper] = (),
    *,
    vectorization: Vectorization = "sync",
) -> tuple[gym.Space, gym.Space]:
    """The (observation, action) spaces of one environment (see :func:`probe_env`)."""
    traits = probe_env(env, env_kwargs, wrappers, vectorization=vectorization)
    return traits.observation_space, traits.action_space


def make_vector_env(
    env: EnvSpec | TorchEnvSpec,
    num_envs: int = 1,
    *,
    vectorization: Vectorization = "sync",
    env_kwargs: dict[str, Any] | None = None,
    wrappers: Sequence[Wrapper] = (),
    render_mode: str | None = None,
    device: torch.device | str | None = None,
    evaluation: bool = False,
) -> VectorEnv | TorchVectorEnv:
    """A vector env with ``num_envs`` copies of ``env``: gymnasium's (NEXT_STEP autoreset, or SAME_STEP where a native
    vector env uses it), or a torch one.

    Args:
        env: a registered id (``module:EnvId`` imports ``module`` first), an ``Env`` subclass, or a factory;
            with ``vectorization="torch"``, an id of :data:`TORCH_ENVS`, a ``TorchVectorEnv`` subclass, or a
            factory called as ``factory(num_envs=..., device=..., **env_kwargs)``.
        num_envs: number of sub-environments.
        vectorization: ``"sync"`` steps the sub-envs one after the other in this process, ``"async"`` in
            one subprocess each, ``"native"`` uses the env's own vectorized implementation (gymnasium's
            ``vector_entry_point``, e.g. CartPole), which is fastest where it exists. ``"torch"`` builds a
            :class:`TorchVectorEnv` stepping all envs as tensors on ``device``, autoresetting in its own mode
            (``SAME_STEP`` unless ``env_kwargs`` give ``autoreset_mode``).
        env_kwargs: keyword arguments for the env's constructor (for the torch envs of :data:`TORCH_ENVS` e.g.
            ``dtype``, ``autoreset_mode``, ``max_episode_steps``).
        wrappers: callables applied, in order, to each sub-environment (not with ``"native"`` or ``"torch"``).
        render_mode: passed to the env's constructor, e.g. ``"rgb_array"`` for videos (not with ``"torch"``).
        device: where a torch env's tensors live (``None``: the CPU); the other kinds step numpy arrays on the
            host and ignore it.
        evaluation: switch off the wrappers that change the training signal only
            (:class:`~rl_lightning.envs.atari.TrainingSignal`: Atari's life-loss episode ends and clipped rewards).
    """
    if num_envs < 1:
        raise ConfigurationError(f"num_envs={num_envs} must be at least 1.")
    if vectorization == "torch":
        return _build_torch_vector_env(env, num_envs, device, dict(env_kwargs or {}), wrappers, render_mode)
    kwargs = dict(env_kwargs or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if vectorization == "native":
        if not isinstance(env, str) or gym.spec(check_env_id(env)).vector_entry_point is None:
            raise ConfigurationError(
                f"vectorization='native' needs an env id with a native vector implementation; {env!r} has "
                f"none. Use vectorization='sync' or 'async'."
            )
        if wrappers:
            raise ConfigurationError(
                "wrappers apply to single environments and cannot wrap a native vector env: use "
                "vectorization='sync' or 'async' with wrappers."
            )
        vector_env = gym.make_vec(
            check_env_id(env), num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs
        )
    elif vectorization in ("sync", "async"):
        factory = _single_env_factory(env, kwargs, wrappers, evaluation)
        vector_cls = gym.vector.SyncVectorEnv if vectorization == "sync" else gym.vector.AsyncVectorEnv
        vector_env = vector_cls([factory] * num_envs, autoreset_mode=AutoresetMode.NEXT_STEP)
    else:
        raise ConfigurationError(
            f"vectorization={vectorization!r} must be one of 'sync', 'async', 'native', 'torch'."
        )
    mode = vector_env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        vector_env.close()
        raise ConfigurationError(f"{env!r} autoresets in mode {mode}; rl-lightning needs NEXT_STEP or SAME_STEP.")
    return vector_env


def env_seeds(seed: int, num_envs: int, rank: int = 0) -> list[int]:
    """Seeds of one rank's sub-environments: ``seed + rank * num_envs + i``, so no two envs share one."""
    return [seed + rank * num_envs + i for i in range(num_envs)]


def seed_vector_env(vector_env: VectorEnv, seed: int, rank: int = 0) -> np.ndarray:
    """Reset ``vector_env`` with per-env seeds and seed its action space; return the first observations."""
    return reset_vector_env(vector_env, seed, rank)[0]


def reset_vector_env(vector_env: VectorEnv, seed: int, rank: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`seed_vector_env`, returning the reset's ``infos`` beside the first observations."""
    seeds = env_seeds(seed, vector_env.num_envs, rank)
    try:
        reset = vector_env.reset(seed=seeds)
    except (TypeError, AssertionError, gym.error.Error):
        # Native vector envs hold one generator for all sub-envs and take a single seed.
        reset = vector_env.reset(seed=seeds[0])
    vector_env.action_space.seed(seeds[0])
    return reset
