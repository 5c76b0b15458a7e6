"""Building gymnasium vector environments from an id, an ``Env`` class or a factory."""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from rl_lightning.errors import ConfigurationError

EnvSpec = str | type[gym.Env] | Callable[[], gym.Env]
"""What users pass as ``env=``: a registered id (``"CartPole-v1"``, ``"my_pkg.envs:Maze-v0"``), an
``Env`` subclass, or a zero-argument factory returning an ``Env``."""

Wrapper = Callable[[gym.Env], gym.Env]
Vectorization = Literal["sync", "async", "native"]


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
    if bare_id in gym.registry:
        return bare_id
    matches = difflib.get_close_matches(bare_id, list(gym.registry), n=3, cutoff=0.6)
    if not matches:
        lowered = bare_id.lower()
        matches = [name for name in gym.registry if lowered in name.lower()][:3]
    hint = f" Did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""
    if bare_id.startswith("ALE/"):
        hint += f" Atari envs come with ale-py (pip install ale-py), registered by importing it: 'ale_py:{bare_id}'."
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


def _single_env_factory(
    env: EnvSpec, env_kwargs: dict[str, Any], wrappers: Sequence[Wrapper]
) -> Callable[[], gym.Env]:
    """A zero-argument callable building one (wrapped) environment."""
    if isinstance(env, str):
        check_env_id(env)

        def build() -> gym.Env:
            # The full 'module:EnvId' id, so that gymnasium imports the module again in a spawned subprocess
            # (async vectorization), where the registration made in this process does not exist.
            try:
                made = gym.make(env, **env_kwargs)
            except gym.error.DependencyNotInstalled as err:
                raise ConfigurationError(missing_dependency(env, err)) from None
            for wrap in wrappers:
                made = wrap(made)
            return made

    elif callable(env):

        def build() -> gym.Env:
            made = env(**env_kwargs)
            if not isinstance(made, gym.Env):
                raise ConfigurationError(
                    f"env={env!r} returned {type(made).__name__}, not a gymnasium.Env. Pass an env id, an "
                    f"Env subclass, or a factory that returns an Env."
                )
            for wrap in wrappers:
                made = wrap(made)
            return made

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


def probe_spaces(
    env: EnvSpec, env_kwargs: dict[str, Any] | None = None, wrappers: Sequence[Wrapper] = ()
) -> tuple[gym.Space, gym.Space]:
    """The (observation, action) spaces of one environment, as the vector env's sub-envs will have them."""
    single = _single_env_factory(env, dict(env_kwargs or {}), wrappers)()
    try:
        return single.observation_space, single.action_space
    finally:
        single.close()


def make_vector_env(
    env: EnvSpec,
    num_envs: int = 1,
    *,
    vectorization: Vectorization = "sync",
    env_kwargs: dict[str, Any] | None = None,
    wrappers: Sequence[Wrapper] = (),
    render_mode: str | None = None,
) -> VectorEnv:
    """A gymnasium vector env in NEXT_STEP autoreset mode with ``num_envs`` copies of ``env``.

    Args:
        env: a registered id (``module:EnvId`` imports ``module`` first), an ``Env`` subclass, or a factory.
        num_envs: number of sub-environments.
        vectorization: ``"sync"`` steps the sub-envs one after the other in this process, ``"async"`` in
            one subprocess each, ``"native"`` uses the env's own vectorized implementation (gymnasium's
            ``vector_entry_point``, e.g. CartPole), which is fastest where it exists.
        env_kwargs: keyword arguments for the env's constructor.
        wrappers: callables applied, in order, to each sub-environment (not with ``"native"``).
        render_mode: passed to the env's constructor, e.g. ``"rgb_array"`` for videos.
    """
    if num_envs < 1:
        raise ConfigurationError(f"num_envs={num_envs} must be at least 1.")
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
        factory = _single_env_factory(env, kwargs, wrappers)
        vector_cls = gym.vector.SyncVectorEnv if vectorization == "sync" else gym.vector.AsyncVectorEnv
        vector_env = vector_cls([factory] * num_envs, autoreset_mode=AutoresetMode.NEXT_STEP)
    else:
        raise ConfigurationError(f"vectorization={vectorization!r} must be one of 'sync', 'async', 'native'.")
    mode = vector_env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if mode != AutoresetMode.NEXT_STEP:
        vector_env.close()
        raise ConfigurationError(f"{env!r} autoresets in mode {mode}; rl-lightning needs NEXT_STEP.")
    return vector_env


def env_seeds(seed: int, num_envs: int, rank: int = 0) -> list[int]:
    """Seeds of one rank's sub-environments: ``seed + rank * num_envs + i``, so no two envs share one."""
    return [seed + rank * num_envs + i for i in range(num_envs)]


def seed_vector_env(vector_env: VectorEnv, seed: int, rank: int = 0) -> np.ndarray:
    """Reset ``vector_env`` with per-env seeds and seed its action space; return the first observations."""
    seeds = env_seeds(seed, vector_env.num_envs, rank)
    try:
        observations, _ = vector_env.reset(seed=seeds)
    except (TypeError, AssertionError, gym.error.Error):
        # Native vector envs hold one generator for all sub-envs and take a single seed.
        observations, _ = vector_env.reset(seed=seeds[0])
    vector_env.action_space.seed(seeds[0])
    return observations
