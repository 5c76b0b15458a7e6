"""Stepping a vector env: observations as tensors on the module's device, transitions, episode records."""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from gymnasium.vector import VectorEnv
from torch import Tensor

from rl_lightning.envs import EnvStateError, load_vector_env_state, seed_vector_env, vector_env_state
from rl_lightning.errors import RunFault

PolicyState = Any
"""What a policy with memory carries from one step to the next (e.g. an LSTM's hidden and cell states); None for
a memoryless policy, and at the start of collection."""


class Policy(Protocol):
    """The policy contract that collection, evaluation, videos and ``rl-lightning evaluate`` use."""

    def policy_step(
        self, observations: Tensor, state: PolicyState, episode_starts: Tensor, deterministic: bool = False
    ) -> tuple[Tensor, PolicyState]:
        """Actions for ``observations`` and the state to pass with the next ones.

        ``episode_starts`` (bool, ``(num_envs,)``, on the host for numpy envs) marks the envs whose observation
        is the first of an episode: a policy with memory resets its state there.
        """
        ...


class Transition(NamedTuple):
    """One step of every sub-environment. Flags are host (numpy) arrays; the rest are tensors."""

    observations: Tensor
    actions: Tensor
    rewards: Tensor
    next_observations: Tensor
    """The true next observations: at an episode end, the final observation (NEXT_STEP autoreset)."""
    terminations: np.ndarray
    truncations: np.ndarray
    valid: np.ndarray
    """False for an env whose step was the autoreset step: that is no transition and is stored nowhere."""


class Episodes(NamedTuple):
    """Episodes finished since the last :meth:`Collector.pop_episodes`."""

    env_indices: np.ndarray
    returns: np.ndarray
    lengths: np.ndarray

    @classmethod
    def none(cls) -> Episodes:
        """No episode."""
        empty = np.zeros(0)
        return cls(empty.astype(np.int64), empty, empty.astype(np.int64))


class Collector:
    """Steps ``vector_env`` with actions chosen by the caller and keeps what a learner needs to know.

    The vector env autoresets in NEXT_STEP mode: the step after an episode end only resets that
    sub-env (its action is ignored, its reward is 0). The collector marks that step invalid in the
    :class:`Transition` so that no buffer stores it, and keeps it out of the episode records.
    Observations cross from numpy to torch once, onto ``device``, and are reused as the next step's
    observations.

    With ``check_finite``, an observation or reward holding a NaN or an infinity raises
    :class:`~rl_lightning.errors.RunFault` naming the env and the step, before anything can act on it or store
    it. The values are checked on the host, where the env made them, so the check never waits for the device.

    Args:
        vector_env: the environments to step.
        device: where observations are placed for the policy (the module's device).
        check_finite: refuse non-finite observations and rewards (a few microseconds per vector step).
    """

    def __init__(self, vector_env: VectorEnv, device: torch.device | str = "cpu", check_finite: bool = True) -> None:
        self.env = vector_env
        self.num_envs = vector_env.num_envs
        self.device = torch.device(device)
        self.check_finite = check_finite
        self.steps = 0  # vector steps since the envs were first reset: where error messages place a step
        self._on_cpu = self.device.type == "cpu"
        self.observations: Tensor | None = None
        self.policy_state: PolicyState = None
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._episode_starts = np.ones(self.num_envs, dtype=bool)
        self._episode_returns = np.zeros(self.num_envs, dtype=np.float64)
        self._episode_lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._finished: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._warned_env_state = False

    def _to_tensor(self, array: np.ndarray) -> Tensor:
        array = np.asarray(array)
        if array.dtype == np.float64:  # networks and buffers work in float32
            array = array.astype(np.float32)
        # On the CPU the tensor shares the env's fresh array: as_tensor and .to() would only add dispatch cost.
        tensor = torch.from_numpy(array)
        return tensor if self._on_cpu else tensor.to(self.device, non_blocking=True)

    def reset(self, seed: int, rank: int = 0) -> Tensor:
        """Reset every sub-env with seeds derived from ``seed`` and ``rank``; forget unfinished episodes."""
        observations = seed_vector_env(self.env, seed, rank)
        if self.check_finite:
            self._refuse_non_finite("observation", observations)
        self.observations = self._to_tensor(observations)
        self.policy_state = None
        self._autoreset[:] = False
        self._episode_starts[:] = True
        self._episode_returns[:] = 0.0
        self._episode_lengths[:] = 0
        self._finished.clear()
        return self.observations

    def act(self, policy: Policy, deterministic: bool = False) -> Tensor:
        """``policy``'s actions for the current observations; its state is kept here, one per env."""
        actions, self.policy_state = policy.policy_step(
            self.observations, self.policy_state, torch.from_numpy(self._episode_starts), deterministic
        )
        return actions

    def step(self, actions: Tensor, env_actions: Tensor | None = None) -> Transition:
        """Step every sub-env with ``actions`` (``env_actions``, e.g. clipped ones, are sent instead if given)."""
        if self.observations is None:
            raise RuntimeError("call Collector.reset(seed) before the first step")
        sent = actions if env_actions is None else env_actions
        next_obs, rewards, terminations, truncations, _ = self.env.step(sent.numpy(force=True))
        terminations, truncations = np.asarray(terminations, bool), np.asarray(truncations, bool)
        valid = ~self._autoreset
        rewards = np.asarray(rewards, dtype=np.float64)
        self.steps += 1
        if self.check_finite:
            self._refuse_non_finite("observation", next_obs)
            self._refuse_non_finite("reward", rewards)

        # In place and masked in one ufunc each: this bookkeeping runs once per vector step.
        np.add(self._episode_returns, rewards, out=self._episode_returns, where=valid)
        self._episode_lengths += valid
        done = terminations | truncations
        if done.any():
            ended = np.flatnonzero(done)
            # Indexing with an index array copies already.
            self._finished.append((ended, self._episode_returns[ended], self._episode_lengths[ended]))
            self._episode_returns[ended] = 0.0
            self._episode_lengths[ended] = 0
        # An observation after the autoreset step is the first of an episode.
        self._episode_starts = self._autoreset
        self._autoreset = done

        transition = Transition(
            observations=self.observations,
            actions=actions,
            rewards=torch.from_numpy(rewards.astype(np.float32)),
            next_observations=self._to_tensor(next_obs),
            terminations=terminations,
            truncations=truncations,
            valid=valid,
        )
        self.observations = transition.next_observations
        return transition

    def _refuse_non_finite(self, kind: str, values: np.ndarray) -> None:
        """Raise :class:`RunFault` naming the first env whose ``values`` (one row per env) hold a NaN or infinity."""
        if values.dtype.kind not in "fc" or np.isfinite(values).all():  # integers (images) are always finite
            return
        finite = np.isfinite(values.reshape(self.num_envs, -1)).all(axis=1)
        env_index = int(np.flatnonzero(~finite)[0])
        when = f"vector step {self.steps}" if self.steps else "reset"
        raise RunFault(
            f"env {env_index} returned a non-finite {kind} at {when} ({values[env_index].tolist()}); nothing was "
            f"learned from it and no checkpoint is written after it. Fix the env (or wrap it to replace such values), "
            f"then resume from the last checkpoint with --ckpt_path last."
        )

    def _finished_episodes(self) -> Episodes:
        if not self._finished:
            return Episodes.none()
        return Episodes(*(np.concatenate(parts) for parts in zip(*self._finished)))

    def pop_episodes(self) -> Episodes:
        """The episodes finished since the last call (env index, return, length)."""
        episodes = self._finished_episodes()
        self._finished.clear()
        return episodes

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to go on exactly: the environments' state and the collector's place in their episodes.

        Tensors, numbers and bytes, so that checkpoints load with ``torch.load(weights_only=True)``; the
        environments' state is pickled bytes (:func:`~rl_lightning.envs.vector_env_state`). An env that cannot
        be pickled is left out (``"env"`` is None and ``"env_error"`` says why), with a warning the first time.
        """
        try:
            env_state, env_error = vector_env_state(self.env), None
        except EnvStateError as err:
            env_state, env_error = None, str(err)
            if not self._warned_env_state:
                self._warned_env_state = True
                warnings.warn(
                    f"The environments' state cannot be saved in checkpoints: {err}. A run resumed from a checkpoint "
                    f"starts new episodes, so it does not repeat the uninterrupted run exactly.",
                    stacklevel=2,
                )
        finished = self._finished_episodes()
        return {
            "env": env_state,
            "env_error": env_error,
            "observations": None if self.observations is None else self.observations.cpu(),
            "autoreset": torch.from_numpy(self._autoreset.copy()),
            "episode_starts": torch.from_numpy(self._episode_starts.copy()),
            "policy_state": _to_device(self.policy_state, "cpu"),
            "episode_returns": torch.from_numpy(self._episode_returns.copy()),
            "episode_lengths": torch.from_numpy(self._episode_lengths.copy()),
            "finished": [torch.from_numpy(part.copy()) for part in finished],
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go on from ``state``: the environments exactly where they were, and the episodes they are in.

        A state without the environments' state (``"env"`` is None: they could not be pickled, see
        :meth:`state_dict`) changes nothing: the caller starts new episodes with :meth:`reset` instead. Loading
        unpickles the saved environments, which runs code named in them: load only states you trust.
        """
        if state["env"] is None:
            return
        load_vector_env_state(self.env, state["env"])
        obs = state["observations"]
        self.observations = None if obs is None else obs.to(self.device)
        self._autoreset = state["autoreset"].numpy().copy()
        # States saved before policies could carry state hold neither: every env is then mid-episode, stateless.
        starts = state.get("episode_starts")
        self._episode_starts = np.zeros(self.num_envs, bool) if starts is None else starts.numpy().copy()
        self.policy_state = _to_device(state.get("policy_state"), self.device)
        self._episode_returns = state["episode_returns"].numpy().copy()
        self._episode_lengths = state["episode_lengths"].numpy().copy()
        self.steps = state.get("steps", 0)
        env_indices, returns, lengths = (part.numpy() for part in state["finished"])
        self._finished = [(env_indices, returns, lengths)] if len(env_indices) else []

    def close(self) -> None:
        self.env.close()


def _to_device(state: PolicyState, device: torch.device | str) -> PolicyState:
    """A policy state (tensors in tuples, lists and dicts, or None) with every tensor moved to ``device``."""
    if isinstance(state, Tensor):
        return state.to(device)
    if isinstance(state, tuple | list):
        return type(state)(_to_device(item, device) for item in state)
    if isinstance(state, dict):
        return {key: _to_device(value, device) for key, value in state.items()}
    return state


def evaluate_policy(policy: Policy, collector: Collector, episodes: int, seed: int) -> Episodes:
    """Play ``episodes`` whole episodes with ``policy``'s deterministic actions and return them.

    Each sub-env plays a fixed share of the episodes (the first ``episodes % num_envs`` envs one more),
    so short episodes are not over-represented, and every call starts from the same seeded states.
    """
    quota = np.full(collector.num_envs, episodes // collector.num_envs)
    quota[: episodes % collector.num_envs] += 1
    collector.reset(seed)
    kept: list[Episodes] = []
    played = np.zeros_like(quota)
    while (played < quota).any():
        collector.step(collector.act(policy, deterministic=True))
        finished = collector.pop_episodes()
        for env_index, ret, length in zip(*finished):
            if played[env_index] < quota[env_index]:
                played[env_index] += 1
                kept.append(Episodes(np.array([env_index]), np.array([ret]), np.array([length])))
    return Episodes(*(np.concatenate(parts) for parts in zip(*kept)))
