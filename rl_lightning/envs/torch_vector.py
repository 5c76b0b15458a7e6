"""Vector environments that step a batch of torch tensors on a device, without leaving it."""

from __future__ import annotations

import abc
import operator
import warnings
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rl_lightning.errors import ConfigurationError

FLOAT_DTYPES = {"float32": torch.float32, "float64": torch.float64}
"""The floating dtypes a torch env may compute in: float32 for speed, float64 for tight comparisons."""

AUTORESET_MODES = (AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP)


def resolve_float_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """``torch.float32`` or ``torch.float64`` from a dtype or its name (``"float64"``, ``"torch.float64"``).

    Names are accepted so that a YAML config can give ``dtype: float64``.
    """
    if isinstance(dtype, str):
        resolved = FLOAT_DTYPES.get(dtype.removeprefix("torch."))
    else:
        resolved = dtype if dtype in FLOAT_DTYPES.values() else None
    if resolved is None:
        raise ConfigurationError(f"dtype={dtype!r} must be torch.float32 or torch.float64 (or their names).")
    return resolved


def resolve_autoreset_mode(mode: AutoresetMode | str) -> AutoresetMode:
    """``SAME_STEP`` or ``NEXT_STEP`` from the enum, its name or its value (``"next_step"``, ``"NextStep"``)."""
    if isinstance(mode, str):
        wanted = mode.replace("_", "").lower()
        mode = next((m for m in AutoresetMode if wanted in (m.name.replace("_", "").lower(), m.value.lower())), mode)
    if mode not in AUTORESET_MODES:
        raise ConfigurationError(
            f"autoreset_mode={mode!r} must be AutoresetMode.SAME_STEP or AutoresetMode.NEXT_STEP: a torch vector "
            f"env always resets its ended episodes itself."
        )
    return AutoresetMode(mode)


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The numpy dtype of a torch floating dtype, for the gymnasium spaces of an env computing in it."""
    return np.dtype(np.float64 if dtype == torch.float64 else np.float32)


def stack_columns(*columns: torch.Tensor) -> torch.Tensor:
    """The ``(rows, len(columns))`` tensor of ``columns`` (each ``(rows,)``), laid out column by column as
    :meth:`TorchVectorEnv.laid_out` keeps a state: one contiguous copy (stacking into rows copies with a stride)."""
    return torch.stack(columns).T


def where_rows(mask: torch.Tensor, if_true: torch.Tensor, if_false: torch.Tensor) -> torch.Tensor:
    """Row ``i`` of ``if_true`` where ``mask[i]``, else row ``i`` of ``if_false``; ``mask`` has shape ``(rows,)``."""
    return torch.where(mask.view(-1, *([1] * (if_false.dim() - 1))), if_true, if_false)


class CompiledTransition:
    """A pure function of tensors compiled with ``torch.compile`` on its first call, or run as is where compiling
    fails: a missing compiler shows only then, when inductor builds its kernel.

    Args:
        transition: the function; pure, so that running it again uncompiled after a failed compile is safe.
    """

    def __init__(self, transition: Callable[..., Any]) -> None:
        self.eager = transition
        self.compiled: Callable[..., Any] | None = None
        try:
            self.compiled = torch.compile(transition, dynamic=False)
        except RuntimeError as err:  # torch.compile refuses some Python versions outright
            self.fall_back(err)

    def __call__(self, *args: torch.Tensor) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except torch._dynamo.exc.BackendCompilerFailed as err:
                self.fall_back(err)
        return self.eager(*args)

    def fall_back(self, err: Exception) -> None:
        """Run uncompiled from now on, saying why once."""
        warnings.warn(
            f"compile=True: torch.compile could not build the env's step ({str(err).strip().splitlines()[0]}); "
            f"stepping uncompiled. Install a C++ compiler (CPU) or triton (GPU), or pass compile=False.",
            stacklevel=4,
        )
        self.compiled = None


class TorchVectorEnv(abc.ABC):
    """A batch of ``num_envs`` environments stepped together as tensors on ``device``.

    **Contract** (what the data-collection layer relies on):

    - Attributes: ``num_envs``; ``device`` (a ``torch.device``); ``dtype`` (``torch.float32`` by default);
      ``single_observation_space`` and ``single_action_space`` (gymnasium spaces of one env);
      ``observation_space`` and ``action_space`` (the batched spaces, as ``gymnasium.vector.utils.batch_space``
      gives); ``max_episode_steps`` (``None``: no time limit); ``metadata["autoreset_mode"]``
      (``AutoresetMode.SAME_STEP`` or ``AutoresetMode.NEXT_STEP``); ``render_mode = None``.
    - ``reset(seed=None, options=None) -> (observations, info)`` starts every env anew. ``seed`` (one int for
      all envs) reseeds the env's ``torch.Generator`` on ``device``, the only source of its randomness: the same
      seed and actions give the same trajectory. Without a seed the generator goes on (it starts from a
      non-deterministic seed, as gymnasium's unseeded envs do).
    - ``step(actions) -> (observations, rewards, terminated, truncated, info)``. Actions: integer tensors of shape
      ``(num_envs,)`` for a ``Discrete`` space, float tensors ``(num_envs, *shape)`` for a ``Box``; they are not
      checked against the space (that would cost a host sync). All results are tensors on ``device``:
      observations ``(num_envs, *obs_shape)`` (the classic control envs' come column-major, as gymnasium's native
      vector CartPole's do) and rewards ``(num_envs,)`` in ``dtype``, terminated and
      truncated bool ``(num_envs,)``. ``truncated`` is set when an episode reaches ``max_episode_steps``, also
      when it terminates at that step (as gymnasium's ``TimeLimit`` does).
    - ``SAME_STEP`` (the default): an env whose episode ended at this step is reset within it: its row of the
      returned observations is the first observation of the next episode, and ``info["final_obs"]`` (always
      present) is a tensor ``(num_envs, *obs_shape)`` holding the episode's true final observation in that row;
      its other rows equal the returned observations. ``info["_final_obs"]`` is the bool mask of those rows
      (``terminated | truncated``), gymnasium's name for it.
    - ``NEXT_STEP``: as gymnasium's NEXT_STEP, the step after an episode ended only resets that env: its action is
      ignored, its observation is the first of the next episode, its reward 0 and terminated/truncated False.
      ``info`` is empty.
    - ``step`` never synchronises with the host: no ``.item()``, no copy to the CPU, no Python branch on a
      tensor's value; ended envs are reset with masked tensor ops (``torch.where``).
    - ``state_dict()`` holds tensors and numbers only (the physics state, step counters, NEXT_STEP reset flags
      and the generator's state); ``load_state_dict(state)`` on an env built with the same arguments continues
      exactly where the saved one was. ``close()`` releases the tensors.

    **Writing an env.** A subclass gives its spaces, time limit and defaults to ``__init__`` and implements three
    pure functions of a state tensor ``(num_envs, state_size)``: :meth:`initial_state` (the reset distribution,
    drawn from :attr:`generator`, e.g. with :meth:`uniform`), :meth:`dynamics` (one step of every env) and
    :meth:`observe`. This class adds the time limit, autoreset in both modes, seeding and saving. The state lives
    in the public attribute ``state`` (like ``env.unwrapped.state`` of gymnasium's classic control envs), so tests
    may set it; it is kept column by column (:meth:`laid_out`), so ``dynamics`` should build its next state with
    :func:`stack_columns`. A step is one random draw (:meth:`initial_state` for every env) and then
    :meth:`transition`, a pure function of tensors that ``compile=True`` hands to ``torch.compile``: ``dynamics``
    and ``observe`` must then be traceable by it (tensor ops, branches on Python values only, as they must anyway
    to never synchronise).

    Args:
        num_envs: number of environments in the batch.
        single_observation_space: the observation space of one env.
        single_action_space: the action space of one env.
        max_episode_steps: episodes are truncated after this many steps; ``None`` for no limit.
        device: where the tensors live (``"cpu"``, ``"cuda"``, ``"cuda:1"``...); ``None`` for the CPU.
        dtype: the floating dtype of the state, observations and rewards: ``torch.float32`` or ``torch.float64``
            (or their names).
        autoreset_mode: ``AutoresetMode.SAME_STEP`` (no wasted step) or ``AutoresetMode.NEXT_STEP`` (or the mode's
            name, e.g. ``"next_step"``).
        compile: compile :meth:`transition` (the whole step but the random draw) with ``torch.compile``, which fuses
            its many small tensor ops into one kernel: faster where each op costs more to launch than to compute
            (the CPU up to tens of thousands of envs), at the price of compiling at the first step (seconds) and
            again for each new shape or dtype. The random stream is unchanged; the floats may differ from the
            uncompiled step's in the last bits. Where compiling fails (no C++ compiler on the CPU, no triton on a
            GPU) the env warns once and steps uncompiled. All envs share torch.compile's cache of
            :meth:`transition`: a process compiles it for at most ``torch._dynamo.config.recompile_limit`` (8)
            combinations of env class, autoreset mode, number of envs and dtype; envs past that step uncompiled,
            as torch's log warns.
    """

    def __init__(
        self,
        num_envs: int,
        *,
        single_observation_space: gym.Space,
        single_action_space: gym.Space,
        max_episode_steps: int | None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str = torch.float32,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
        compile: bool = False,
    ) -> None:
        if num_envs < 1:
            raise ConfigurationError(f"num_envs={num_envs} must be at least 1.")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ConfigurationError(f"max_episode_steps={max_episode_steps} must be at least 1 (or None).")
        self.num_envs = num_envs
        self.device = torch.device("cpu" if device is None else device)
        self.dtype = resolve_float_dtype(dtype)
        self.max_episode_steps = max_episode_steps
        self.single_observation_space = single_observation_space
        self.single_action_space = single_action_space
        self.observation_space = batch_space(single_observation_space, num_envs)
        self.action_space = batch_space(single_action_space, num_envs)
        self.metadata: dict[str, Any] = {"autoreset_mode": resolve_autoreset_mode(autoreset_mode), "render_modes": []}
        self.render_mode: str | None = None
        self.generator = torch.Generator(device=self.device)
        self.generator.seed()
        self.state: torch.Tensor | None = None
        self.elapsed_steps = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self.needs_reset = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self._compile = compile
        self._transition = CompiledTransition(self.transition_with_int_flags) if compile else self.transition
        self.counts = self.constants(torch.int64, one=1, limit=max_episode_steps or 0)

    observation_is_state = False
    """Whether :meth:`observe` returns a copy of the state as is (CartPole's, MountainCar's): SAME_STEP then hands
    out :meth:`dynamics`' next state as ``info["final_obs"]``, which must therefore be a new tensor."""

    @abc.abstractmethod
    def initial_state(self, options: dict[str, Any] | None) -> torch.Tensor:
        """A fresh state for every env, ``(num_envs, state_size)`` in ``dtype``, drawn with :attr:`generator`.

        Args:
            options: the ``options`` given to :meth:`reset`; ``None`` at the autoresets of :meth:`step`.
        """

    @abc.abstractmethod
    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of every env from ``state`` (not modified): ``(next_state, rewards, terminated)``.

        Args:
            state: ``(num_envs, state_size)``.
            actions: the actions given to :meth:`step`, on ``device``.
        """

    @abc.abstractmethod
    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """The observations ``(num_envs, *obs_shape)`` of ``state``, as a new tensor (callers may modify it)."""

    def constants(self, dtype: torch.dtype | None = None, **numbers: float) -> SimpleNamespace:
        """``numbers`` as the attributes of a namespace, for :meth:`dynamics`: uncompiled, 0-dim tensors of ``dtype``
        (default: the env's) on ``device`` (an op given a Python number converts it to such a tensor at every call,
        which on the CPU costs about as much as the op on a thousand envs); compiled, the numbers themselves (the
        compiler bakes them into its kernel, where it would check tensors at every call)."""
        if self._compile:
            return SimpleNamespace(**numbers)
        dtype = self.dtype if dtype is None else dtype
        return SimpleNamespace(
            **{name: torch.tensor(value, dtype=dtype, device=self.device) for name, value in numbers.items()}
        )

    @staticmethod
    def laid_out(state: torch.Tensor) -> torch.Tensor:
        """``state`` as an env keeps it: column by column, each state variable contiguous over the envs (strides
        ``(1, num_envs)``), as gymnasium's native vector CartPole keeps its ``(4, num_envs)`` state. Each variable's
        ops then run over contiguous memory (vectorised, in the compiled kernel too, where rows of a few numbers give
        scalar code), and the next state is stacked without a transposing copy (:func:`stack_columns`). A copy only
        where ``state`` is laid out otherwise (a state set by hand)."""
        if state.dim() != 2 or state.stride(0) == 1:
            return state
        return state.T.contiguous().T

    def uniform(self, low: float | torch.Tensor, high: float | torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Uniform samples in ``[low, high]`` of ``shape`` from :attr:`generator`, drawn column by column into the
        layout of :meth:`laid_out`; bounds that are tensors must be on ``device`` already (a copy from the host
        inside :meth:`step` would synchronise). Float32 draws keep 24 random bits, float64 draws 53."""
        strides = [1] * len(shape)
        for dim in range(1, len(shape)):
            strides[dim] = strides[dim - 1] * shape[dim - 1]
        draws = torch.empty_strided(shape, strides, dtype=self.dtype, device=self.device)
        if isinstance(low, torch.Tensor) or isinstance(high, torch.Tensor):
            return draws.uniform_(generator=self.generator).mul_(high - low).add_(low)
        return draws.uniform_(low, high, generator=self.generator)  # one op, where a draw, a scale and a shift are 3

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Start a new episode in every env.

        Args:
            seed: reseeds the generator of all envs (one int); ``None`` continues its stream.
            options: passed to :meth:`initial_state`, e.g. gymnasium's reset bounds ``{"low": ..., "high": ...}``.

        Returns:
            The first observations ``(num_envs, *obs_shape)`` and an empty info dict.
        """
        if seed is not None:
            try:
                seed = operator.index(seed)
            except TypeError:
                # TypeError, so that seed_vector_env falls back to one seed, as for gymnasium's native vector envs.
                raise TypeError(
                    f"{type(self).__name__}.reset takes one int seed for all its envs, not {seed!r}."
                ) from None
            self.generator.manual_seed(seed)
        self.state = self.laid_out(self.initial_state(options))
        self.elapsed_steps = torch.zeros_like(self.elapsed_steps)
        self.needs_reset = torch.zeros_like(self.needs_reset)
        return self.observe(self.state), {}

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Step every env with its action; reset the ended ones as ``metadata["autoreset_mode"]`` says.

        Args:
            actions: ``(num_envs,)`` integers for a ``Discrete`` action space, ``(num_envs, *shape)`` floats for a
                ``Box``; moved to ``device`` if they are elsewhere.

        Returns:
            ``(observations, rewards, terminated, truncated, info)``, see the class docstring.
        """
        if self.state is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step().")
        actions = torch.as_tensor(actions, device=self.device)
        # A fresh state for every row, of which only the ended rows are kept: drawing for all rows keeps the
        # shapes fixed, where drawing for the ended rows only would need their number on the host. Drawn here, out
        # of the (possibly compiled) transition, so that the generator's stream is the same compiled or not.
        fresh_state = self.initial_state(None)
        (self.state, self.elapsed_steps, needs_reset), results = self._transition(
            self.state, self.elapsed_steps, self.needs_reset, actions, fresh_state
        )
        if self._compile:  # the flags as bools again (see transition_with_int_flags); .bool() of bools is a no-op
            observations, rewards, terminated, truncated, info = results
            if "_final_obs" in info:
                info["_final_obs"] = info["_final_obs"].bool()
            needs_reset = needs_reset.bool()
            results = (observations, rewards, terminated.bool(), truncated.bool(), info)
        self.needs_reset = needs_reset
        return results

    def transition(
        self,
        state: torch.Tensor,
        elapsed_steps: torch.Tensor,
        needs_reset: torch.Tensor,
        actions: torch.Tensor,
        fresh_state: torch.Tensor,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], tuple[Any, ...]]:
        """What :meth:`step` does once the fresh states are drawn, as a pure function of tensors (what ``compile``
        compiles): the next ``(state, elapsed_steps, needs_reset)`` and the step's results.

        Args:
            state, elapsed_steps, needs_reset: the env's current ones (not modified).
            actions: the actions, on ``device``.
            fresh_state: a state of every env drawn from the reset distribution, kept in the rows that reset.
        """
        next_state, rewards, terminated = self.dynamics(state, actions)
        elapsed_steps = elapsed_steps + self.counts.one
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = elapsed_steps >= self.counts.limit
        if self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP:
            ended = terminated | truncated
            # Where the observation is the state, next_state itself (the env keeps no reference to it): one copy less.
            final_observations = next_state if self.observation_is_state else self.observe(next_state)
            state = self.laid_out(where_rows(ended, fresh_state, next_state))
            info = {"final_obs": final_observations, "_final_obs": ended}
            # Observing the merged state rather than merging two observations: one torch.where (slow on the CPU,
            # where it costs several additions) on the state only. observe works row by row, so the rows that did
            # not end are the same numbers as in final_observations.
            results = (self.observe(state), rewards, terminated, truncated, info)
            return (state, elapsed_steps.masked_fill_(ended, 0), needs_reset), results
        state = self.laid_out(where_rows(needs_reset, fresh_state, next_state))
        terminated = terminated.masked_fill(needs_reset, False)
        truncated = truncated.masked_fill(needs_reset, False)
        results = (self.observe(state), rewards.masked_fill(needs_reset, 0.0), terminated, truncated, {})
        return (state, elapsed_steps.masked_fill_(needs_reset, 0), terminated | truncated), results

    def transition_with_int_flags(self, *tensors: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], tuple[Any, ...]]:
        """:meth:`transition` with its bool results (the flags and masks) as int32, which is what ``compile=True``
        compiles (:meth:`step` makes them bools again): inductor's CPU kernels store and load bool arrays an element
        at a time, about 5 ns each on the machine of BENCHMARKS.md against 0.3-0.6 ns for int32 or float32: 250 of
        the 590 µs of a compiled CartPole step at 16,384 envs."""
        (state, elapsed_steps, needs_reset), (observations, rewards, terminated, truncated, info) = self.transition(
            *tensors
        )
        if "_final_obs" in info:
            info = {**info, "_final_obs": info["_final_obs"].to(torch.int32)}
        else:  # NEXT_STEP: the reset flags are new (SAME_STEP passes them through untouched)
            needs_reset = needs_reset.to(torch.int32)
        flags = terminated.to(torch.int32), truncated.to(torch.int32)
        return (state, elapsed_steps, needs_reset), (observations, rewards, *flags, info)

    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`load_state_dict` needs to continue exactly from here: tensors only, copies.

        Raises:
            RuntimeError: the env has not been reset yet, so it has no state.
        """
        if self.state is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before state_dict(), there is no state yet.")
        return {
            "state": self.state.clone(),
            "elapsed_steps": self.elapsed_steps.clone(),
            "needs_reset": self.needs_reset.clone(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``, saved by :meth:`state_dict` of an env built with the same arguments.

        Raises:
            ConfigurationError: ``state`` lacks an entry, holds another number of envs, or its generator state
                does not fit this env's generator (saved on another kind of device).
        """
        missing = {"state", "elapsed_steps", "needs_reset", "generator"} - set(state)
        if missing:
            raise ConfigurationError(f"The saved env state lacks {sorted(missing)}: it was not saved by state_dict().")
        saved_envs = state["state"].shape[0]
        if saved_envs != self.num_envs:
            raise ConfigurationError(
                f"The saved env state holds {saved_envs} envs but this {type(self).__name__} has {self.num_envs}: "
                f"build it with num_envs={saved_envs}."
            )
        try:
            self.generator.set_state(state["generator"].cpu())
        except RuntimeError as err:
            raise ConfigurationError(
                f"The saved generator state does not fit this env's generator on {self.device} ({err}); was it "
                f"saved on another kind of device?"
            ) from None
        self.state = self.laid_out(state["state"].to(self.device, self.dtype, copy=True))
        self.elapsed_steps = state["elapsed_steps"].to(self.device, torch.int64, copy=True)
        self.needs_reset = state["needs_reset"].to(self.device, torch.bool, copy=True)

    def close(self) -> None:
        """Release the state; the env needs :meth:`reset` before it steps again."""
        self.state = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_envs={self.num_envs}, device={self.device}, dtype={self.dtype})"


def steps_tensors(env: object) -> bool:
    """Whether ``env`` is a torch-native vector env: a :class:`TorchVectorEnv`, or any other batched env with a
    ``device`` attribute that is no gymnasium ``VectorEnv`` (Isaac Lab's and ManiSkill's envs are of this kind)."""
    return isinstance(env, TorchVectorEnv) or (not isinstance(env, VectorEnv) and hasattr(env, "device"))
