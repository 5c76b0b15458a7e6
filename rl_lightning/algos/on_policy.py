"""The shared base of on-policy algorithms: an actor-critic, its rollouts, and the schedules and normalizers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from rl_lightning.algos.base import DEFAULT_EPOCH_STEPS, RLAlgorithm
from rl_lightning.algos.schedules import Schedule, ScheduleSpec
from rl_lightning.buffers import RolloutBatch, RolloutBuffer
from rl_lightning.data import PolicyState, RolloutDataset, RolloutStep
from rl_lightning.envs import (
    ACTION_SPACES,
    EnvSpec,
    check_action_space,
    check_observation_space,
    is_structured,
    observation_shape,
    torch_dtype,
)
from rl_lightning.errors import ConfigurationError, check_hyperparameters
from rl_lightning.nets import (
    ActorCritic,
    BernoulliHead,
    DiagGaussianHead,
    KeyedNormalizer,
    NetworkSpec,
    RunningMeanStd,
    build_network,
    check_output_shape,
    default_actor,
    default_critic,
    example_observations,
    is_image_space,
    make_action_head,
    mask_invalid,
)
from rl_lightning.nets.policies import Distribution
from rl_lightning.nets.recurrent import RecurrentActorCritic, RecurrentState, check_recurrent_policy
from rl_lightning.tree import Observations, first_leaf, tree_map

NORMALIZATION_CLIP = 10.0
"""Normalized observations and scaled rewards are clipped to [-10, 10] (Stable-Baselines3's VecNormalize)."""


def _fitting_values(rollout: int, batch_size: int, n_steps: int, num_envs: int) -> str:
    """Suggestions for a rollout of ``n_steps * num_envs`` that ``batch_size`` does not divide."""
    divisors = [d for d in range(1, rollout + 1) if rollout % d == 0]
    below = max((d for d in divisors if d < batch_size), default=None)
    above = min((d for d in divisors if d > batch_size), default=None)
    batch_sizes = " or ".join(str(d) for d in (below, above) if d is not None)
    step = batch_size // math.gcd(batch_size, num_envs)  # n_steps must be a multiple of this
    n_steps_fit = sorted({max(step, n_steps // step * step), (n_steps // step + 1) * step})
    return (
        f"Use a batch_size that divides {rollout} (e.g. {batch_sizes}), or n_steps such that n_steps * {num_envs} is "
        f"a multiple of {batch_size} (e.g. {' or '.join(map(str, n_steps_fit))})."
    )


def check_epoch_of_rollouts(steps_per_epoch: int, n_steps: int, num_envs: int, world_size: int = 1) -> None:
    """Refuse a ``steps_per_epoch`` that is not a whole number of rollouts (of every env of every process)."""
    factors = {"n_steps": n_steps, "num_envs": num_envs, **({"world_size": world_size} if world_size > 1 else {})}
    rollout = math.prod(factors.values())
    if steps_per_epoch % rollout:
        raise ConfigurationError(
            f"steps_per_epoch={steps_per_epoch} must be a whole number of rollouts of {' * '.join(factors)} = "
            f"{' * '.join(map(str, factors.values()))} = {rollout} env steps, e.g. "
            f"{rollout * max(1, round(steps_per_epoch / rollout))}."
        )


def _normalized_keys(space: gym.Space) -> list[str | int]:
    """What ``normalize_observations`` normalizes: a vector (non-image) ``Box`` space whole (``[""]``), the float
    vector keys of a ``Dict`` or ``Tuple`` space (images and discrete keys are left as they are), else nothing."""
    if not is_structured(space):
        return [""] if isinstance(space, gym.spaces.Box) and not is_image_space(space) else []
    items = space.spaces.items() if isinstance(space, gym.spaces.Dict) else enumerate(space.spaces)
    return [
        key
        for key, subspace in items
        if isinstance(subspace, gym.spaces.Box) and np.issubdtype(subspace.dtype, np.floating)
    ]


def _observation_normalizer(space: gym.Space) -> RunningMeanStd | KeyedNormalizer:
    """Running statistics of the observations: of the whole vector, or per normalized key (:func:`_normalized_keys`)."""
    if not is_structured(space):
        return RunningMeanStd(space.shape)
    subspaces = space.spaces if isinstance(space, gym.spaces.Dict) else dict(enumerate(space.spaces))
    return KeyedNormalizer({key: subspaces[key].shape for key in _normalized_keys(space)})


class OnPolicyAlgorithm(RLAlgorithm):
    """An actor-critic learning from rollouts of its current policy, discarded after each update round.

    Holds what PPO and A2C share: the actor and critic and the action distribution, the rollout buffer
    and dataset (GAE advantages), the learning-rate schedule, and the observation and reward normalizers. Where
    the env gives valid-action masks (``info["action_mask"]``, Discrete and MultiDiscrete actions), invalid actions
    get probability 0 when acting and in the update (the rollout keeps the masks each step was acted under).
    Subclasses write ``update(batch)`` (their loss) and ``configure_optimizers``.

    Args (the algorithms' own hyperparameters, ``learning_rate`` to ``normalize_advantage``, are documented by
    each algorithm; these are shared by all):
        actor: the policy network: an ``nn.Module`` mapping a batch of observations to the distribution's
            parameters (``(batch, n)`` logits for ``Discrete(n)``, ``(batch, sum(nvec))`` logits for
            ``MultiDiscrete``, ``(batch, action_dim)`` means for a ``Box``), or a factory
            ``(observation_space, action_space) -> nn.Module``. Default: an MLP of ``hidden_sizes``.
        critic: the value network: observations -> ``(batch, 1)`` values; a module or a factory as ``actor``.
        hidden_sizes: hidden layer widths of the default networks (tanh activations).
        shared_network: the default actor and critic share their hidden layers (two linear heads on one
            torso); otherwise each has its own. The encoder (the CNN for images) is always shared.
        ortho_init: orthogonal initialisation of the default networks (gains sqrt(2), 0.01 for the policy
            output, 1 for the value output).
        log_std_init: initial log standard deviation of the Gaussian policy (``Box`` actions).
        normalize_observations: feed the networks ``(obs - mean) / std`` under running statistics of the
            training observations, clipped to [-10, 10] (of each float vector key of a ``Dict`` or ``Tuple``
            observation; images and discrete keys are left as they are). The statistics are in checkpoints and frozen
            outside of collection (evaluation sees the same normalization and never changes it).
        normalize_rewards: learn from rewards divided by the running standard deviation of the discounted
            return, clipped to [-10, 10] (Stable-Baselines3's VecNormalize).
        recurrent: a policy with memory: ``"lstm"`` or ``"gru"`` (:class:`~rl_lightning.nets.RecurrentActorCritic`:
            encoder, one recurrent core shared by actor and critic, then MLP heads of ``hidden_sizes``), or a
            recurrent actor-critic of your own (a module or a factory of the spaces) keeping the contract of
            :mod:`rl_lightning.nets.recurrent`. Its state is carried per env and reset where an episode starts;
            minibatches are whole chunks of ``sequence_length`` steps, run again from the state at their start.
            None (default): the feed-forward ``actor`` and ``critic``.
        rnn_hidden_size: width of the default recurrent core's state.
        rnn_layers: stacked layers of the default recurrent core.
        sequence_length: steps per chunk of a recurrent policy's minibatches (each env's rollout is cut every
            ``sequence_length`` steps, the last chunk padded); default ``n_steps``: each env's whole rollout. A
            minibatch holds ``chunks / (n_steps * num_envs / batch_size)`` whole chunks.
        run: the run arguments (see :class:`RLAlgorithm`).
    """

    def __init__(
        self,
        env: EnvSpec,
        *,
        learning_rate: ScheduleSpec,
        n_steps: int,
        batch_size: int | None,
        n_epochs: int,
        gamma: float,
        gae_lambda: float,
        ent_coef: float,
        vf_coef: float,
        max_grad_norm: float | None,
        normalize_advantage: bool,
        actor: NetworkSpec = None,
        critic: NetworkSpec = None,
        hidden_sizes: Sequence[int] = (64, 64),
        shared_network: bool = False,
        ortho_init: bool = True,
        log_std_init: float = 0.0,
        normalize_observations: bool = False,
        normalize_rewards: bool = False,
        recurrent: str | NetworkSpec = None,
        rnn_hidden_size: int = 64,
        rnn_layers: int = 1,
        sequence_length: int | None = None,
        **run: Any,
    ) -> None:
        super().__init__(env, **run)
        name, num_envs = type(self).__name__, self.num_envs
        rollout = n_steps * num_envs
        batch_size = rollout if batch_size is None else batch_size
        check_hyperparameters(n_steps=n_steps, batch_size=batch_size, n_epochs=n_epochs, gamma=gamma)
        check_hyperparameters(gae_lambda=gae_lambda, ent_coef=ent_coef, vf_coef=vf_coef, max_grad_norm=max_grad_norm)
        if rollout % batch_size:
            raise ConfigurationError(
                f"n_steps * num_envs = {n_steps} * {num_envs} = {rollout} transitions per rollout is not a multiple "
                f"of batch_size={batch_size}. {_fitting_values(rollout, batch_size, n_steps, num_envs)}"
            )
        if normalize_advantage and batch_size < 2:
            raise ConfigurationError(
                "normalize_advantage=True needs batch_size >= 2 (one advantage has no standard deviation); raise "
                "batch_size or pass normalize_advantage=False."
            )
        if shared_network and (actor is not None or critic is not None):
            raise ConfigurationError(
                "shared_network=True configures the default networks; an actor or critic of your own must share "
                "layers itself. Drop shared_network=True, or actor= and critic=."
            )
        check_hyperparameters(rnn_hidden_size=rnn_hidden_size, rnn_layers=rnn_layers, sequence_length=sequence_length)
        if recurrent is not None and (actor is not None or critic is not None or shared_network):
            raise ConfigurationError(
                "recurrent= gives the policy its networks (one recurrent actor-critic); actor=, critic= and "
                "shared_network=True configure feed-forward ones. Drop one or the other."
            )
        if sequence_length is not None and sequence_length > n_steps:
            raise ConfigurationError(
                f"sequence_length={sequence_length} is longer than a rollout of n_steps={n_steps} steps per env: use "
                f"sequence_length <= n_steps (None: the whole rollout of each env)."
            )
        if run.get("steps_per_epoch") is None:
            self.steps_per_epoch = rollout * max(1, round(DEFAULT_EPOCH_STEPS / rollout))
        check_epoch_of_rollouts(self.steps_per_epoch, n_steps, num_envs)
        self.lr_schedule = Schedule.parse(learning_rate, "learning_rate")
        check_observation_space(self.observation_space, name)
        if normalize_observations and not _normalized_keys(self.observation_space):
            raise ConfigurationError(
                f"normalize_observations=True normalizes vector (non-image Box) observations, or the float vector "
                f"keys of Dict and Tuple ones; the observation space is {self.observation_space!r}, which has none. "
                f"Pass normalize_observations=False."
            )
        self.n_steps, self.batch_size, self.n_epochs = n_steps, batch_size, n_epochs
        self.gamma, self.gae_lambda, self.ent_coef, self.vf_coef = gamma, gae_lambda, ent_coef, vf_coef
        self.max_grad_norm, self.normalize_advantage = max_grad_norm, normalize_advantage

        # PPO's and A2C's rows of the table are the same: the spaces make_action_head has a head for.
        check_action_space(self.action_space, name, ACTION_SPACES["PPO"])
        self.action_head = make_action_head(self.action_space, name, log_std_init)
        outputs = self.action_head.outputs
        self.is_recurrent, self.sequence_length = recurrent is not None, sequence_length
        with self.seeded():
            if self.is_recurrent:
                spaces = (self.observation_space, self.action_space)
                cell = recurrent if isinstance(recurrent, str) else "lstm"
                own = partial(
                    RecurrentActorCritic, self.observation_space, outputs, cell, rnn_hidden_size, rnn_layers,
                    hidden_sizes, ortho_init,
                )
                spec = None if isinstance(recurrent, str) else recurrent
                self.policy = build_network(spec, *spaces, own, "recurrent")
            elif actor is None and critic is None:
                self.policy = ActorCritic.default(
                    self.observation_space, outputs, hidden_sizes, shared_network, ortho_init
                )
            else:
                spaces = (self.observation_space, self.action_space)
                own_actor = partial(default_actor, self.observation_space, outputs, hidden_sizes, ortho_init)
                own_critic = partial(default_critic, self.observation_space, hidden_sizes, ortho_init)
                self.policy = ActorCritic(
                    build_network(actor, *spaces, own_actor, "actor"),
                    build_network(critic, *spaces, own_critic, "critic"),
                )
        example = (example_observations(self.observation_space),)
        if self.is_recurrent:
            check_recurrent_policy(self.policy, example[0], outputs, self._actor_meaning())
        if actor is not None:
            check_output_shape(self.policy.actor, example, (2, outputs), "actor", self._actor_meaning())
        if critic is not None:
            check_output_shape(self.policy.critic, example, (2, 1), "critic", "(batch, 1) state values")

        space = self.observation_space
        self.observation_normalizer = _observation_normalizer(space) if normalize_observations else None
        self.reward_normalizer = RunningMeanStd() if normalize_rewards else None
        self.reward_returns: Tensor | None = None  # the discounted return of each env, for reward scaling
        self.buffer: RolloutBuffer | None = None
        self.rollout_updates_stopped = False

    def _actor_meaning(self) -> str:
        space, outputs = self.action_space, self.action_head.outputs
        if isinstance(space, gym.spaces.Box):
            return f"(batch, action_dim) Gaussian means for {space!r}"
        return f"(batch, {outputs}) logits for {space!r}"

    # ----------------------------------------------------------------------------------------- the policy
    @property
    def progress_remaining(self) -> float:
        """1 at the start of training, 0 once ``total_timesteps`` env steps are played: what schedules read."""
        return max(0.0, 1.0 - self.env_steps / self.total_timesteps)

    def preprocess(self, observations: Tensor, update_statistics: bool = False) -> Tensor:
        """Observations as the networks take them: normalized if ``normalize_observations`` (statistics
        updated first when ``update_statistics``), else unchanged."""
        if self.observation_normalizer is None:
            return observations
        if update_statistics:
            self.observation_normalizer.update(observations)
        return self.observation_normalizer.normalize(observations, NORMALIZATION_CLIP)

    def distribution(self, actor_outputs: Tensor, action_masks: Tensor | None = None) -> Distribution:
        """The action distribution of the actor's outputs; invalid actions (``action_masks`` False) get none of it."""
        return self.action_head(actor_outputs if action_masks is None else mask_invalid(actor_outputs, action_masks))

    def evaluate(self, observations: Tensor, action_masks: Tensor | None = None) -> tuple[Distribution, Tensor]:
        """The policy's distribution (under ``action_masks``, if given) and the critic's values ``(batch,)`` for
        preprocessed observations."""
        outputs, values = self.policy(observations)
        return self.distribution(outputs, action_masks), values.float()

    def evaluate_batch(self, batch: RolloutBatch) -> tuple[Distribution, Tensor]:
        """:meth:`evaluate` of a minibatch's transitions. A recurrent policy runs its chunks again, from the state
        stored at each chunk's start; padding and autoreset steps are dropped before any loss or mean sees them."""
        sequences = batch.sequences
        if sequences is None:
            return self.evaluate(batch.observations, batch.action_masks)
        outputs, values, _ = self.policy(sequences.observations, sequences.start_states, sequences.episode_starts)
        outputs, values = outputs.flatten(0, 1)[sequences.positions], values.flatten()[sequences.positions]
        return self.distribution(outputs, batch.action_masks), values.float()

    def step_memory(
        self, observations: Observations, state: PolicyState, episode_starts: Tensor | None
    ) -> tuple[Tensor, Tensor, RecurrentState, RecurrentState]:
        """One step of the recurrent policy for preprocessed observations of every env: distribution parameters,
        values, the state it started from (the initial one for None) and the next state. ``episode_starts`` None:
        no reset (the final observation of an episode still belongs to it)."""
        leaf = first_leaf(observations)
        if state is None:
            state = self.policy.initial_state(leaf.shape[0], leaf.device)
        if episode_starts is None:
            episode_starts = torch.zeros(leaf.shape[0], dtype=torch.bool, device=leaf.device)
        starts = episode_starts.to(leaf.device, non_blocking=True)
        sequence = tree_map(lambda part: part[None], observations)  # one step
        outputs, values, next_state = self.policy(sequence, state, starts[None])
        return outputs[0], values[0].float(), state, next_state

    def _choose(self, distribution: Distribution, deterministic: bool) -> Tensor:
        """Env actions: the distribution's mode, or a sample (clipped to a Box's bounds)."""
        actions = distribution.mode() if deterministic else distribution.sample(self.generator)
        return self.action_head.to_env(actions)

    @torch.no_grad()
    def act(self, observations: Tensor, deterministic: bool = False, action_masks: Tensor | None = None) -> Tensor:
        """Env actions for raw observations: the distribution's mode, or a sample (clipped to a Box's bounds); only
        valid actions where ``action_masks`` are given. A recurrent policy acts through :meth:`policy_step`."""
        if self.is_recurrent:
            raise RuntimeError("a recurrent policy needs its state: call policy_step(), which carries it")
        distribution = self.distribution(self.policy.actor_outputs(self.preprocess(observations)), action_masks)
        return self._choose(distribution, deterministic)

    @torch.no_grad()
    def policy_step(
        self, observations: Tensor, state: PolicyState, episode_starts: Tensor, deterministic: bool = False,
        action_masks: Tensor | None = None,
    ) -> tuple[Tensor, PolicyState]:
        if not self.is_recurrent:
            return super().policy_step(observations, state, episode_starts, deterministic, action_masks)
        if action_masks is not None:
            self.check_action_masks(action_masks)
        outputs, _, _, state = self.step_memory(self.preprocess(observations), state, episode_starts)
        return self._choose(self.distribution(outputs, action_masks), deterministic), state

    def check_action_masks(self, action_masks: Tensor) -> None:
        if isinstance(self.action_head, DiagGaussianHead | BernoulliHead):
            super().check_action_masks(action_masks)  # refuses them: Box and MultiBinary actions have nothing to mask
        choices = "action" if isinstance(self.action_space, gym.spaces.Discrete) else "choice of each dimension"
        self.check_action_mask_width(action_masks, self.action_head.outputs, choices)

    @torch.no_grad()
    def explore(
        self, observations: Tensor, state: PolicyState = None, episode_starts: Tensor | None = None,
        action_masks: Tensor | None = None,
    ) -> RolloutStep:
        """One step of collection: sample actions for raw observations (updating the normalizer's statistics),
        valid ones only where ``action_masks`` are given; a recurrent policy from ``state``, reset where
        ``episode_starts``."""
        observations = self.preprocess(observations, update_statistics=True)
        if self.is_recurrent:
            outputs, values, state, next_state = self.step_memory(observations, state, episode_starts)
            distribution, states = self.distribution(outputs, action_masks), (state, next_state)
        else:
            (distribution, values), states = self.evaluate(observations, action_masks), ()
        actions = distribution.sample(self.generator)
        return RolloutStep(
            observations, actions, self.action_head.to_env(actions), distribution.log_prob(actions), values, *states
        )

    @torch.no_grad()
    def predict_values(
        self, observations: Tensor, state: PolicyState = None, episode_starts: Tensor | None = None
    ) -> Tensor:
        """``V(s)`` of raw observations, with frozen normalization statistics; a recurrent policy's from ``state``
        (reset where ``episode_starts``; None: nowhere)."""
        observations = self.preprocess(observations)
        if self.is_recurrent:
            return self.step_memory(observations, state, episode_starts)[1]
        return self.policy.values(observations).float()

    @torch.no_grad()
    def normalize_rewards(
        self, rewards: Tensor, dones: np.ndarray | Tensor, valid: np.ndarray | Tensor | None
    ) -> Tensor:
        """The rewards to learn from: unchanged, or divided by the running std of the discounted return.

        The autoreset step's reward (0, no transition) stays out of the statistics. Flags are host arrays, or
        tensors on a torch env's device (``valid`` None: every step is a transition); picking the valid steps of
        device flags (NEXT_STEP mode) costs a host sync.
        """
        rewards = rewards.to(self.device, non_blocking=True)
        if self.reward_normalizer is None:
            return rewards
        returns = self.reward_returns.mul_(self.gamma).add_(rewards)
        if valid is None:
            seen = returns
        elif isinstance(valid, Tensor):
            seen = returns[valid]
        else:
            seen = returns if valid.all() else returns[torch.from_numpy(np.flatnonzero(valid)).to(self.device)]
        self.reward_normalizer.update(seen)
        if isinstance(dones, Tensor):
            returns.mul_(~dones)
        elif dones.any():
            returns.mul_(torch.from_numpy(~dones).to(self.device))
        return self.reward_normalizer.scale(rewards, NORMALIZATION_CLIP)

    def normalized_advantages(self, advantages: Tensor) -> Tensor:
        """The minibatch's advantages, standardized if ``normalize_advantage`` (and there are at least two)."""
        if not self.normalize_advantage or advantages.shape[0] < 2:
            return advantages
        std, mean = torch.std_mean(advantages)
        return (advantages - mean) / (std + 1e-8)

    def total_loss(self, policy_loss: Tensor, value_loss: Tensor, entropy: Tensor) -> Tensor:
        """The loss to minimise: the policy's, ``vf_coef`` times the value loss, less ``ent_coef`` times the entropy
        (left out where ``ent_coef`` is 0: the same value, a smaller graph)."""
        loss = policy_loss + self.vf_coef * value_loss
        return loss - self.ent_coef * entropy if self.ent_coef else loss

    def entropy(self, distribution: Distribution) -> Tensor:
        """The mean entropy of ``distribution``; without a gradient when ``ent_coef`` is 0 (then only logged)."""
        with torch.set_grad_enabled(self.ent_coef > 0 and torch.is_grad_enabled()):
            return distribution.entropy().mean()

    # ----------------------------------------------------------------------------------------- Lightning hooks
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit":
            # Under DDP a rollout is n_steps of every env of every process.
            check_epoch_of_rollouts(self.steps_per_epoch, self.n_steps, self.num_envs, self.world_size)
        if stage == "fit" and self.buffer is None:
            device = self.trainer.strategy.root_device
            self.buffer = RolloutBuffer(
                self.n_steps,
                self.num_envs,
                observation_shape(self.observation_space),
                self._stored_observation_dtype(),
                self.action_head.action_shape,
                self.action_head.action_dtype,
                gamma=self.gamma,
                gae_lambda=self.gae_lambda,
                device=device,
                action_mask_size=None if self.collector.action_masks is None else self.collector.action_masks.shape[-1],
                state_shapes=self._state_shapes(device),
                sequence_length=self.sequence_length,
            )
            self.reward_returns = torch.zeros(self.num_envs, device=device)

    def _state_shapes(self, device: torch.device) -> list[torch.Size] | None:
        """The shape of each part of one env's recurrent state (None for a feed-forward policy)."""
        if not self.is_recurrent:
            return None
        return [part.shape[1:] for part in self.policy.initial_state(1, device)]

    def _stored_observation_dtype(self) -> torch.dtype | dict | tuple:
        """The dtype (of each key) of the observations as the networks take them: float32 where normalized."""
        normalizer, dtypes = self.observation_normalizer, torch_dtype(self.observation_space)
        if normalizer is None:
            return dtypes
        return normalizer.normalized_dtypes(dtypes) if isinstance(normalizer, KeyedNormalizer) else torch.float32

    def train_dataloader(self) -> DataLoader:
        dataset = RolloutDataset(
            self,
            self.collector,
            self.buffer,
            batch_size=self.batch_size,
            n_epochs=self.n_epochs,
            steps_per_epoch=self.steps_per_epoch,
            total_timesteps=self.total_timesteps,
            world_size=self.world_size,
        )
        return DataLoader(dataset, batch_size=None, num_workers=0)

    def start_round(self) -> None:
        # The learning-rate schedule, a function of env steps, applied once per rollout (as Stable-Baselines3 does).
        learning_rate = self.lr_schedule(self.progress_remaining)
        for optimizer in self.trainer.optimizers:  # every one, for a subclass with several
            for group in optimizer.param_groups:
                group["lr"] = learning_rate

    def on_train_epoch_end(self) -> None:
        if self.buffer is not None and self.buffer.full:
            # Of the epoch's last rollout, as Stable-Baselines3 logs it.
            self.log_epoch("train/explained_variance", self.buffer.explained_variance())
        self.log_epoch("train/learning_rate", self.lr_schedule(self.progress_remaining))
        if isinstance(self.action_head, DiagGaussianHead):
            self.log_epoch("train/std", self.action_head.log_std.detach().exp().mean())
        super().on_train_epoch_end()

    # ----------------------------------------------------------------------------------------- checkpoints
    def rl_state_dict(self) -> dict[str, Any]:
        state = super().rl_state_dict()
        if self.reward_returns is not None:
            state["reward_returns"] = self.reward_returns.cpu()
        return state

    def load_rl_state_dict(self, state: dict[str, Any]) -> None:
        super().load_rl_state_dict(state)
        if self.reward_returns is not None and "reward_returns" in state:
            self.reward_returns.copy_(state["reward_returns"])

    def restart_episodes(self) -> None:
        super().restart_episodes()
        if self.reward_returns is not None:
            self.reward_returns.zero_()  # the discounted returns belonged to the cut-off episodes
