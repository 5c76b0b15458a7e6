"""Stepping a vector env: observations as tensors on the module's device, transitions, episode records."""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from torch import Tensor

from rl_lightning.data.episode_sums import DeviceEpisodes, episode_sums
from rl_lightning.distributed import first_over_ranks
from rl_lightning.envs import (
    ACTION_MASK_KEY,
    EnvStateError,
    TorchVectorEnv,
    action_masks_of,
    env_action_masks,
    has_action_masks_method,
    load_vector_env_state,
    reset_vector_env,
    steps_tensors,
    vector_env_state,
)
from rl_lightning.envs.torch_vector import where_rows
from rl_lightning.errors import ConfigurationError, RunFault
from rl_lightning.tree import Observations, assign, to_device, tree_map

NEVER = torch.iinfo(torch.int64).max
"""The step recorded for an env whose values have all been finite."""

EVAL_CHECK_EVERY = 16
"""Vector steps between two checks (host syncs) of whether a torch env's evaluation has played its episodes."""

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
        is the first of an episode: a policy with memory resets its state there. Where the env gives valid-action
        masks (``info["action_mask"]``, see :mod:`rl_lightning.envs.masks`), they come as the keyword
        ``action_masks`` (bool, ``(num_envs, n)``, on the observations' device); only then.
        """
        ...


class Transition(NamedTuple):
    """One step of every sub-environment.

    Flags are host (numpy) arrays for a numpy env, bool tensors on the env's device for a torch env; the rest are
    tensors.
    """

    observations: Observations
    actions: Tensor
    rewards: Tensor
    next_observations: Observations
    """The true next observations: at an episode end, the final observation (of either autoreset mode)."""
    terminations: np.ndarray | Tensor
    truncations: np.ndarray | Tensor
    valid: np.ndarray | Tensor | None
    """False for an env whose step was the autoreset step (NEXT_STEP mode): that is no transition and is stored
    nowhere. None in SAME_STEP mode, where every step is a transition."""


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

    Two kinds of vector env, and both of gymnasium's autoreset modes:

    - A **numpy env** (gymnasium's): observations cross from numpy to torch once, onto ``device``; flags and
      episode records stay on the host.
    - A **torch env** (:func:`~rl_lightning.envs.steps_tensors`: a :class:`~rl_lightning.envs.TorchVectorEnv`, or
      any batched env with a ``device`` whose ``step`` returns tensors) on ``device``: nothing leaves the device
      and nothing waits for it; episode returns are accumulated there, and finished episodes are kept as sums
      (:meth:`pop_episode_sums`), not one by one.
    - **NEXT_STEP** autoreset: the step after an episode end only resets that sub-env (its action is ignored, its
      reward is 0). The collector marks that step invalid in the :class:`Transition` so that no buffer stores
      it, and keeps it out of the episode records.
    - **SAME_STEP** autoreset: an ended sub-env is reset within the step; its true final observation (the
      transition's next observation) comes in ``info["final_obs"]``, masked by ``info["_final_obs"]``. Every step
      is a transition (``valid`` is None).

    Where a numpy env gives valid-action masks beside its observations (``info["action_mask"]``, or its sub-envs'
    ``action_masks()`` method: see :mod:`rl_lightning.envs.masks` for which wins), :attr:`action_masks` holds those
    of the current observations, and the policy is given them.

    Observations of a numpy env's ``Dict`` or ``Tuple`` space are a dict or tuple of tensors, one per key, each of
    its own dtype (uint8 images stay uint8); a torch env's observations are one tensor.

    With ``check_finite``, an observation or reward holding a NaN or an infinity stops the run with a
    :class:`~rl_lightning.errors.RunFault` naming the env, the step and which of the two it was:

    - a numpy env's values are checked on the host, where the env made them, so the check never waits for the
      device; with ``stop_at_once`` (one process) the fault is raised there, before anything acts on the values
      or stores them.
    - a torch env's values are checked on its device, with tensor ops only: the first non-finite value of each
      env is recorded there, and read back by :meth:`pop_fault` where the run syncs anyway (the end of a rollout,
      an epoch, an evaluation; :func:`refuse_faults`).
    - Where the fault is not raised at once (a torch env, or ``stop_at_once=False``, as under DDP, where all ranks
      must stop together), the non-finite values are replaced by zeros until the run stops, so that the policy
      and the buffers never see them.

    Args:
        vector_env: the environments to step.
        device: where observations are placed for the policy (the module's device); a torch env's tensors must
            live there already.
        check_finite: refuse non-finite observations and rewards (a few microseconds per vector step).
        stop_at_once: raise at a numpy env's first non-finite value; False keeps its message for :meth:`pop_fault`
            (under DDP, where a rank raising alone would leave the others waiting in the next collective).
        env_records: report the episodes a numpy env records itself (gymnasium's ``RecordEpisodeStatistics``,
            ``info["episode"]``) instead of summing the rewards seen here: where wrappers above the recorder
            change the training signal (Atari's life-loss episode ends and clipped rewards), the env's records
            are the whole games with their own rewards.
    """

    def __init__(
        self,
        vector_env: VectorEnv | TorchVectorEnv,
        device: torch.device | str = "cpu",
        check_finite: bool = True,
        env_records: bool = False,
        stop_at_once: bool = True,
    ) -> None:
        self.env = vector_env
        self.env_records = env_records
        self.num_envs = vector_env.num_envs
        self.device = torch.device(device)
        self.check_finite, self.stop_at_once = check_finite, stop_at_once
        self.steps = 0  # vector steps since the envs were first reset: where error messages place a step
        self._fault: str | None = None  # the first non-finite value a numpy env returned, not yet raised
        self._on_cpu = self.device.type == "cpu"
        self.on_device = steps_tensors(vector_env)
        """Whether the env steps torch tensors (see the class docstring)."""
        declared = getattr(vector_env, "metadata", {}).get("autoreset_mode")
        if declared is None and self.on_device:
            # A wrong guess would store autoreset steps as transitions, or bootstrap from first observations.
            raise ConfigurationError(
                f"{type(vector_env).__name__} does not say how it autoresets: set its metadata['autoreset_mode'] to "
                f"gymnasium.vector.AutoresetMode.SAME_STEP (final observations in info['final_obs']) or NEXT_STEP."
            )
        mode = AutoresetMode.NEXT_STEP if declared is None else declared  # gymnasium's default
        if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise ConfigurationError(
                f"{type(vector_env).__name__} autoresets in mode {mode}: the collector needs AutoresetMode.NEXT_STEP "
                f"or AutoresetMode.SAME_STEP, where the env resets its ended episodes itself."
            )
        self.same_step = mode == AutoresetMode.SAME_STEP
        self.observations: Observations | None = None
        self.policy_state: PolicyState = None
        self.action_masks: Tensor | None = None
        """The valid-action masks of :attr:`observations` (bool, ``(num_envs, n)``), or None if the env gives none.
        After :meth:`step` they are those of the transition's ``next_observations``, the final one at an end."""
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._episode_starts = np.ones(self.num_envs, dtype=bool)
        self._episode_returns = np.zeros(self.num_envs, dtype=np.float64)
        self._episode_lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._finished: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._warned_env_state = False
        self._masks_method = False  # whether masks come from the sub-envs' action_masks(), decided at reset
        # A torch env's counterparts of the host arrays above, on its device.
        self.device_episodes = DeviceEpisodes(self.num_envs, self.device) if self.on_device else None
        self._device_autoreset = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        self._device_starts = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        # Per env of a torch env, the vector step of its first non-finite observation and reward since the last
        # pop_fault() (NEVER: none); the earliest, as steps only grow.
        self._bad_observation_step = torch.full((self.num_envs,), NEVER, dtype=torch.int64, device=self.device)
        self._bad_reward_step = self._bad_observation_step.clone()

    def _to_tensor(self, arrays: Any) -> Observations:
        """The env's arrays (a dict or tuple of them for a ``Dict`` or ``Tuple`` space) as tensors on the device."""
        return tree_map(self._array_to_tensor, arrays)

    def _array_to_tensor(self, array: np.ndarray) -> Tensor:
        array = np.asarray(array)
        if array.dtype == np.float64:  # networks and buffers work in float32
            array = array.astype(np.float32)
        # On the CPU the tensor shares the env's fresh array: as_tensor and .to() would only add dispatch cost.
        tensor = torch.from_numpy(array)
        return tensor if self._on_cpu else tensor.to(self.device, non_blocking=True)

    def _check_tensor(self, name: str, value: Any) -> Tensor:
        """A torch env's output ``value``, refused unless it is a tensor on the collector's device."""
        if not isinstance(value, Tensor):
            raise ConfigurationError(
                f"{type(self.env).__name__} returned its {name} as {type(value).__name__}, not a torch tensor: a "
                f"torch vector env (one with a `device` attribute) returns tensors on its device. Return tensors, "
                f"or build the env as a gymnasium VectorEnv without a `device` attribute."
            )
        if value.device != self.device:
            raise ConfigurationError(
                f"{type(self.env).__name__} returned its {name} on {value.device}, but the module lives on "
                f"{self.device}: build the env on the module's device (RLAlgorithm passes it as device=)."
            )
        return value

    def _observations_tensor(self, observations: Any) -> Tensor:
        """A torch env's observations, checked (tensor, device, one row per env) and in float32 if float64."""
        if isinstance(observations, dict | tuple):
            raise ConfigurationError(
                f"{type(self.env).__name__} returned {type(observations).__name__} observations: torch-native envs "
                f"give one tensor of observations. Concatenate the keys into one tensor in the env, or build it as a "
                f"gymnasium env (vectorization='sync' or 'async'), which takes Dict and Tuple observations."
            )
        observations = self._check_tensor("observations", observations)
        if observations.shape[:1] != (self.num_envs,):
            raise ConfigurationError(
                f"{type(self.env).__name__} has num_envs={self.num_envs} but returned observations of shape "
                f"{tuple(observations.shape)}: the first dimension must be num_envs."
            )
        return observations.float() if observations.dtype == torch.float64 else observations

    def reset(self, seed: int, rank: int = 0) -> Tensor:
        """Reset every sub-env with seeds derived from ``seed`` and ``rank``; forget unfinished episodes."""
        observations, infos = reset_vector_env(self.env, seed, rank)
        if not self.on_device:
            if self.check_finite:
                observations = self._finite("observation", observations)
            self._masks_method = ACTION_MASK_KEY not in infos and has_action_masks_method(self.env)
            self._read_action_masks(infos)
        self.policy_state = None
        if self.on_device:
            self.observations = self._observations_tensor(observations)
            if self.check_finite:
                self.observations, _ = self._finite_on_device(self.observations)
            self.device_episodes.reset()
            self._device_autoreset = torch.zeros_like(self._device_autoreset)
            self._device_starts = torch.ones_like(self._device_starts)
            return self.observations
        self.observations = self._to_tensor(observations)
        self._autoreset[:] = False
        self._episode_starts[:] = True
        self._episode_returns[:] = 0.0
        self._episode_lengths[:] = 0
        self._finished.clear()
        return self.observations

    @property
    def episode_starts(self) -> Tensor:
        """Which current observations are the first of an episode (bool, ``(num_envs,)``; on the host for a numpy
        env): where a policy with memory resets its state."""
        return self._device_starts if self.on_device else torch.from_numpy(self._episode_starts)

    def act(self, policy: Policy, deterministic: bool = False) -> Tensor:
        """``policy``'s actions for the current observations; its state is kept here, one per env."""
        starts = self.episode_starts
        if self.action_masks is None:
            actions, self.policy_state = policy.policy_step(self.observations, self.policy_state, starts, deterministic)
        else:
            actions, self.policy_state = policy.policy_step(
                self.observations, self.policy_state, starts, deterministic, action_masks=self.action_masks
            )
        return actions

    def _read_action_masks(self, infos: dict[str, Any]) -> None:
        masks = env_action_masks(self.env) if self._masks_method else action_masks_of(infos, self.num_envs)
        self.action_masks = None if masks is None else self._to_tensor(masks)

    def step(self, actions: Tensor, env_actions: Tensor | None = None) -> Transition:
        """Step every sub-env with ``actions`` (``env_actions``, e.g. clipped ones, are sent instead if given)."""
        if self.observations is None:
            raise RuntimeError("call Collector.reset(seed) before the first step")
        sent = actions if env_actions is None else env_actions
        if self.on_device:
            return self._step_on_device(actions, sent)
        next_obs, rewards, terminations, truncations, infos = self.env.step(sent.numpy(force=True))
        terminations, truncations = np.asarray(terminations, bool), np.asarray(truncations, bool)
        valid = ~self._autoreset
        rewards = np.asarray(rewards, dtype=np.float64)
        self.steps += 1
        if self.check_finite:
            next_obs = self._finite("observation", next_obs)
            rewards = self._finite("reward", rewards)

        # In place and masked in one ufunc each: this bookkeeping runs once per vector step.
        np.add(self._episode_returns, rewards, out=self._episode_returns, where=valid)
        self._episode_lengths += valid
        done = terminations | truncations
        if self.env_records and "_episode" in infos:
            recorded = np.flatnonzero(infos["_episode"])
            returns, lengths = infos["episode"]["r"][recorded], infos["episode"]["l"][recorded]
            self._finished.append((recorded, returns.astype(np.float64), lengths.astype(np.int64)))
        if done.any():
            ended = np.flatnonzero(done)
            if not self.env_records:
                # Indexing with an index array copies already.
                self._finished.append((ended, self._episode_returns[ended], self._episode_lengths[ended]))
            self._episode_returns[ended] = 0.0
            self._episode_lengths[ended] = 0
        observations = self._to_tensor(next_obs)
        if self.same_step:
            # The returned observation of an ended env is its next episode's first.
            self._episode_starts = done
            next_observations = None
            if done.any():
                final_obs = _with_final_observations(next_obs, infos)
                if self.check_finite:
                    final_obs = self._finite("observation", final_obs)
                next_observations = self._to_tensor(final_obs)
            transition_valid = None
        else:
            # An observation after the autoreset step is the first of an episode.
            self._episode_starts = self._autoreset
            self._autoreset = done
            next_observations, transition_valid = None, valid

        transition = Transition(
            observations=self.observations,
            actions=actions,
            rewards=torch.from_numpy(rewards.astype(np.float32)),
            next_observations=observations if next_observations is None else next_observations,
            terminations=terminations,
            truncations=truncations,
            valid=transition_valid,
        )
        self.observations = observations
        self._read_action_masks(infos)
        return transition

    def _step_on_device(self, actions: Tensor, sent: Tensor) -> Transition:
        """:meth:`step` of a torch env: tensor ops only, no host sync."""
        next_obs, rewards, terminations, truncations, info = self.env.step(sent)
        observations = self._observations_tensor(next_obs)
        rewards = self._check_tensor("rewards", rewards).float()
        terminations = self._check_tensor("terminated flags", terminations).bool()
        truncations = self._check_tensor("truncated flags", truncations).bool()
        done = terminations | truncations
        self.steps += 1
        if self.check_finite:
            observations, rewards = self._finite_on_device(observations, rewards)
        if self.same_step:
            if "final_obs" not in info or "_final_obs" not in info:
                raise ConfigurationError(
                    f"{type(self.env).__name__} autoresets in SAME_STEP mode but its step's info holds no "
                    f"'final_obs' and '_final_obs': return the ended episodes' final observations and their mask "
                    f"under these names (gymnasium 1.x's), e.g. from a wrapper renaming the env's own keys."
                )
            final_observations = self._observations_tensor(info["final_obs"])
            if self.check_finite:
                final_observations, _ = self._finite_on_device(final_observations)
            next_observations = where_rows(info["_final_obs"], final_observations, observations)
            valid = None
            self._device_starts = done
        else:
            next_observations, valid = observations, ~self._device_autoreset
            self._device_starts, self._device_autoreset = self._device_autoreset, done
        self.device_episodes.record(rewards, done, valid)
        transition = Transition(
            observations=self.observations,
            actions=actions,
            rewards=rewards,
            next_observations=next_observations,
            terminations=terminations,
            truncations=truncations,
            valid=valid,
        )
        self.observations = observations
        return transition

    def _finite(self, kind: str, values: Any) -> Any:
        """A numpy env's ``values`` (one row per env; a dict or tuple of such arrays for a ``Dict`` or ``Tuple``
        space), if they are finite. Else: raise :class:`RunFault` naming the first env holding a NaN or infinity (and
        the key), or, without ``stop_at_once``, keep that message (the first only) for :meth:`pop_fault` and return
        the values with zeros in place of the non-finite ones."""
        if isinstance(values, dict):
            return {key: self._finite_array(f"{kind} (key {key!r})", np.asarray(part)) for key, part in values.items()}
        if isinstance(values, tuple):
            return tuple(
                self._finite_array(f"{kind} (key {str(i)!r})", np.asarray(part)) for i, part in enumerate(values)
            )
        return self._finite_array(kind, values)

    def _finite_array(self, kind: str, values: np.ndarray) -> np.ndarray:
        if values.dtype.kind not in "fc" or np.isfinite(values).all():  # integers (images) are always finite
            return values
        finite = np.isfinite(values.reshape(self.num_envs, -1)).all(axis=1)
        env_index = int(np.flatnonzero(~finite)[0])
        if self.stop_at_once:
            raise RunFault(non_finite_message(env_index, kind, self.steps, values[env_index].tolist()))
        if self._fault is None:
            self._fault = non_finite_message(env_index, kind, self.steps, values[env_index].tolist(), replaced=True)
        return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)

    def _finite_on_device(self, observations: Tensor, rewards: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """A torch env's ``observations`` and ``rewards`` with zeros in place of NaNs and infinities; the first such
        value of each env is recorded on the device (no host sync) for :meth:`pop_fault`."""
        # Few ops per step (each a kernel launch on a GPU): a step's mark is min(recorded, step where not finite).
        if observations.is_floating_point():  # integers (images) are always finite
            marks = torch.where(observations.isfinite().flatten(1).all(dim=1), NEVER, self.steps)
            self._bad_observation_step = torch.minimum(self._bad_observation_step, marks)
            observations = observations.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
        if rewards is not None:
            marks = torch.where(rewards.isfinite(), NEVER, self.steps)
            self._bad_reward_step = torch.minimum(self._bad_reward_step, marks)
            rewards = rewards.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
        return observations, rewards

    def pop_fault(self) -> str | None:
        """The message naming the first non-finite value the envs returned since the last call, or None.

        A numpy env's is kept on the host (without ``stop_at_once``); a torch env's is read from its device: one
        host sync, which the callers make where the run waits for the device anyway (:func:`refuse_faults`).
        """
        fault, self._fault = self._fault, None
        if not (self.on_device and self.check_finite):
            return fault
        observation_steps, reward_steps = torch.stack([self._bad_observation_step, self._bad_reward_step]).tolist()
        self._bad_observation_step.fill_(NEVER)
        self._bad_reward_step.fill_(NEVER)
        # The earliest step, the lowest env index at it; an observation before a reward of the same step.
        step, env_index = min((min(observation_steps[i], reward_steps[i]), i) for i in range(self.num_envs))
        if step == NEVER:
            return fault
        kind = "observation" if observation_steps[env_index] == step else "reward"
        return non_finite_message(env_index, kind, step, replaced=True)

    def _finished_episodes(self) -> Episodes:
        if not self._finished:
            return Episodes.none()
        return Episodes(*(np.concatenate(parts) for parts in zip(*self._finished)))

    def pop_episodes(self) -> Episodes:
        """The episodes finished since the last call (env index, return, length), of a numpy env.

        Raises:
            RuntimeError: the env is a torch env, whose episodes are kept as sums only (see :meth:`pop_episode_sums`).
        """
        if self.on_device:
            raise RuntimeError(
                "a torch env's finished episodes are kept as sums on its device: call Collector.pop_episode_sums()"
            )
        episodes = self._finished_episodes()
        self._finished.clear()
        return episodes

    def pop_episode_sums(self) -> Tensor:
        """Sums over the episodes finished since the last call: count, return sum, squared-return sum, length sum.

        On the env's device for a torch env (no host sync), on the CPU for a numpy env; float64 where the device
        has it. What :meth:`~rl_lightning.algos.metrics.EpisodeStatistics.update_sums` takes.
        """
        if self.on_device:
            return self.device_episodes.pop_sums()
        episodes = self.pop_episodes()
        return episode_sums(episodes.returns, episodes.lengths)

    def _env_state(self) -> tuple[Any, str | None]:
        """The environments' state and None, or None and why there is none."""
        if not self.on_device:
            try:
                return vector_env_state(self.env), None
            except EnvStateError as err:
                return None, str(err)
        if not callable(getattr(self.env, "state_dict", None)):
            return None, f"{type(self.env).__name__} offers no state_dict()"
        return to_device(self.env.state_dict(), "cpu"), None

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to go on exactly: the environments' state and the collector's place in their episodes.

        Tensors, numbers and bytes, so that checkpoints load with ``torch.load(weights_only=True)``. A numpy env's
        state is pickled bytes (:func:`~rl_lightning.envs.vector_env_state`), a torch env's is its ``state_dict()``.
        An env that cannot be pickled, or a torch env without ``state_dict()``, is left out (``"env"`` is None and
        ``"env_error"`` says why), with a warning the first time.
        """
        env_state, env_error = self._env_state()
        if env_error is not None and not self._warned_env_state:
            self._warned_env_state = True
            warnings.warn(
                f"The environments' state cannot be saved in checkpoints: {env_error}. A run resumed from a "
                f"checkpoint starts new episodes, so it does not repeat the uninterrupted run exactly.",
                stacklevel=2,
            )
        common = {
            "env": env_state,
            "env_error": env_error,
            "observations": to_device(self.observations, "cpu"),
            "policy_state": to_device(self.policy_state, "cpu"),
            "steps": self.steps,
        }
        if self.on_device:
            return {
                **common,
                "autoreset": self._device_autoreset.cpu(),
                "episode_starts": self._device_starts.cpu(),
                "episodes": self.device_episodes.state_dict(),
            }
        finished = self._finished_episodes()
        return {
            **common,
            "autoreset": torch.from_numpy(self._autoreset.copy()),
            "episode_starts": torch.from_numpy(self._episode_starts.copy()),
            "action_masks": to_device(self.action_masks, "cpu"),
            "episode_returns": torch.from_numpy(self._episode_returns.copy()),
            "episode_lengths": torch.from_numpy(self._episode_lengths.copy()),
            "finished": [torch.from_numpy(part.copy()) for part in finished],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go on from ``state``: the environments exactly where they were, and the episodes they are in.

        A state without the environments' state (``"env"`` is None, see :meth:`state_dict`) changes nothing: the
        caller starts new episodes with :meth:`reset` instead. Loading a numpy env's state unpickles it, which runs
        code named in it: load only states you trust.
        """
        if state["env"] is None:
            return
        self.observations = to_device(state["observations"], self.device)
        self.policy_state = to_device(state.get("policy_state"), self.device)
        self.steps = state.get("steps", 0)
        if self.on_device:
            self.env.load_state_dict(state["env"])
            self._device_autoreset = state["autoreset"].to(self.device)
            self._device_starts = state["episode_starts"].to(self.device)
            self.device_episodes.load_state_dict(state["episodes"])
            return
        load_vector_env_state(self.env, state["env"])
        self._autoreset = state["autoreset"].numpy().copy()
        # States saved before policies could carry state hold neither: every env is then mid-episode, stateless.
        starts = state.get("episode_starts")
        self._episode_starts = np.zeros(self.num_envs, bool) if starts is None else starts.numpy().copy()
        self.action_masks = to_device(state.get("action_masks"), self.device)
        self._episode_returns = state["episode_returns"].numpy().copy()
        self._episode_lengths = state["episode_lengths"].numpy().copy()
        env_indices, returns, lengths = (part.numpy() for part in state["finished"])
        self._finished = [(env_indices, returns, lengths)] if len(env_indices) else []

    def close(self) -> None:
        self.env.close()


def non_finite_message(
    env_index: int, kind: str, step: int, values: list[float] | float | None = None, replaced: bool = False
) -> str:
    """What a :class:`RunFault` says of env ``env_index``'s non-finite ``kind`` (observation or reward) at vector
    step ``step`` (0: its reset); ``replaced``: the run went on with zeros in its place until a check point."""
    when = f"vector step {step}" if step else "reset"
    shown = "" if values is None else f" ({values})"
    handled = (
        "it was replaced by zeros until the run stopped here" if replaced else "nothing was learned from it"
    )
    return (
        f"env {env_index} returned a non-finite {kind} at {when}{shown}; {handled}, and no checkpoint is written after "
        f"it. Fix the env (or wrap it to replace such values), then resume from the last checkpoint with "
        f"--ckpt_path last."
    )


def refuse_faults(*collectors: Collector | None) -> None:
    """Raise :class:`RunFault` for the first non-finite value that ``collectors`` (None: none on this rank) recorded.

    Under DDP a collective, which every rank calls at the same point: every rank raises, with the message of the
    first rank that met a fault, so that none is left waiting for the others.
    """
    messages = [collector.pop_fault() for collector in collectors if collector is not None]
    fault = first_over_ranks(next((message for message in messages if message is not None), None))
    if fault is not None:
        raise RunFault(fault)


def _with_final_observations(observations: Any, info: dict[str, Any]) -> Any:
    """A SAME_STEP numpy env's observations (arrays, or a dict or tuple of them) with the rows of ended envs replaced
    by their final observations."""
    merged = tree_map(lambda array: np.array(array, copy=True), observations)
    for env_index in np.flatnonzero(info["_final_obs"]):
        assign(merged, env_index, info["final_obs"][env_index])
    return merged


def evaluate_policy(policy: Policy, collector: Collector, episodes: int, seed: int) -> Episodes:
    """Play ``episodes`` whole episodes with ``policy``'s deterministic actions and return them.

    Each sub-env plays a fixed share of the episodes (the first ``episodes % num_envs`` envs one more),
    so short episodes are not over-represented, and every call starts from the same seeded states. A torch env's
    episodes are kept on its device (:func:`_evaluate_on_device`).
    """
    if collector.on_device:
        return _evaluate_on_device(policy, collector, episodes, seed)
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


def _evaluate_on_device(policy: Policy, collector: Collector, episodes: int, seed: int) -> Episodes:
    """:func:`evaluate_policy` on a torch env: each env's kept episodes fill a row of a table on its device.

    Whether every env has played its quota is read on the host only every :data:`EVAL_CHECK_EVERY` steps; the
    steps played past it change nothing, since an env's episodes past its quota are not kept.
    """
    num_envs, device = collector.num_envs, collector.device
    quota = torch.full((num_envs,), episodes // num_envs, device=device)
    quota[: episodes % num_envs] += 1
    width = -(-episodes // num_envs)
    tracked = collector.device_episodes
    returns = torch.zeros(num_envs, width, dtype=tracked.dtype, device=device)
    lengths = torch.zeros(num_envs, width, dtype=torch.int64, device=device)
    played = torch.zeros(num_envs, dtype=torch.int64, device=device)
    rows = torch.arange(num_envs, device=device)
    collector.reset(seed)
    steps = 0
    while steps % EVAL_CHECK_EVERY or not bool((played >= quota).all()):
        collector.step(collector.act(policy, deterministic=True))
        kept = tracked.ended & (played < quota)
        column = played.clamp(max=width - 1)
        returns[rows, column] = torch.where(kept, tracked.ended_returns, returns[rows, column])
        lengths[rows, column] = torch.where(kept, tracked.ended_lengths, lengths[rows, column])
        played += kept
        steps += 1
    taken = torch.arange(width, device=device) < quota[:, None]
    env_indices = rows[:, None].expand(num_envs, width)
    return Episodes(*(part[taken].cpu().numpy() for part in (env_indices, returns.double(), lengths)))
