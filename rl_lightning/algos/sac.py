"""Soft Actor-Critic (Haarnoja et al., 2018), with automatic entropy tuning (Haarnoja et al., 2018b)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from rl_lightning.algos.off_policy import OffPolicyAlgorithm
from rl_lightning.algos.schedules import parse_ent_coef
from rl_lightning.buffers import ReplayBatch
from rl_lightning.envs import ACTION_SPACES, EnvSpec, check_action_space, check_observation_space
from rl_lightning.errors import ConfigurationError, check_hyperparameters
from rl_lightning.nets import (
    ActionScaling,
    NetworkSpec,
    SquashedGaussianActor,
    action_dim,
    build_critic,
    build_network,
    polyak_update,
    sample_squashed_gaussian,
    target_network,
)
from rl_lightning.nets.continuous import stack_separate_critics_optimizer_state
from rl_lightning.tree import first_leaf


class SAC(OffPolicyAlgorithm):
    """Soft Actor-Critic: a stochastic policy maximising reward plus entropy, with twin Q critics.

    Each update regresses the critics on the soft TD target
    ``r + gamma^n * (min_i Q_target_i(s', a') - alpha * log pi(a'|s'))``, ``a' ~ pi(.|s')``; every
    ``policy_delay`` updates, the policy maximises ``min_i Q_i(s, a) - alpha * log pi(a|s)`` with the
    reparameterised ``a ~ pi(.|s)``, and with ``ent_coef="auto"`` the coefficient ``alpha`` is tuned so that
    the policy's entropy tracks ``target_entropy``. The target critics follow by Polyak averaging.

    The policy is a Gaussian squashed by tanh into [-1, 1]; actions are scaled to the ``Box`` bounds only when
    they are sent to the env. The critics see actions in [-1, 1] and the entropy is that of the [-1, 1]
    actions (as in Stable-Baselines3), so ``target_entropy`` does not depend on the env's units. Before
    ``learning_starts`` env steps, actions are uniform within the bounds.

    The defaults are Stable-Baselines3's, except ``learning_starts`` (SB3: 100), at least ``batch_size`` here.
    Several optimizers need manual optimization, which refuses ``Trainer(gradient_clip_val=...)``: use
    ``max_grad_norm``.

    Args:
        env: env id, ``Env`` subclass or factory; its action space must be a bounded ``Box``.
        actor: the policy network: an ``nn.Module`` mapping a batch of observations to
            ``(batch, 2 * action_dim)``, the means then the log standard deviations of the Gaussian that tanh
            squashes, or a factory ``(observation_space, action_space) -> nn.Module``. Default: a
            :class:`~rl_lightning.nets.SquashedGaussianActor` of ``hidden_sizes``.
        critic: the Q-networks: a module mapping ``(observations, actions)``, actions ``(batch, action_dim)``
            in [-1, 1], to ``(batch, n_critics)`` values, or a factory. Default: a
            :class:`~rl_lightning.nets.ContinuousQNetworks` of ``n_critics`` MLPs of ``hidden_sizes``.
        hidden_sizes: hidden layer widths of the default actor and critics.
        n_critics: Q-networks whose minimum forms the target (2: clipped double Q).
        learning_rate: Adam's step size for the actor, the critics and the entropy coefficient.
        buffer_size: transitions kept in the replay buffer.
        learning_starts: env steps of uniformly random actions before the first update (at least
            ``batch_size``).
        batch_size: transitions per update.
        tau: Polyak coefficient of the target critics' update after each update.
        gamma: discount factor.
        train_freq: env steps between rounds of updates (a multiple of ``num_envs``).
        gradient_steps: updates per round (-1: one per env step).
        ent_coef: the entropy coefficient alpha: a positive number to keep fixed, ``"auto"`` to learn it
            starting from 1.0, or ``"auto_0.1"`` to learn it starting from 0.1.
        target_entropy: the entropy a learned alpha aims for; ``"auto"``: ``-action_dim``.
        policy_delay: critic updates per update of the actor and the entropy coefficient.
        max_grad_norm: gradient norm clip of every optimizer (None: no clip).
        n_step: rewards summed into each target before bootstrapping.
        run: the run arguments (``num_envs``, ``seed``, ``total_timesteps``, ...; see
            :class:`~rl_lightning.RLAlgorithm`) and ``buffer_device`` / ``save_buffer`` (see
            :class:`~rl_lightning.OffPolicyAlgorithm`).
    """

    several_optimizers = True  # critics, actor and entropy coefficient, each stepped in update()

    def __init__(
        self,
        env: EnvSpec = "Pendulum-v1",
        *,
        actor: NetworkSpec = None,
        critic: NetworkSpec = None,
        hidden_sizes: Sequence[int] = (256, 256),
        n_critics: int = 2,
        learning_rate: float = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 256,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int = 1,
        gradient_steps: int = 1,
        ent_coef: float | str = "auto",
        target_entropy: float | str = "auto",
        policy_delay: int = 1,
        max_grad_norm: float | None = None,
        n_step: int = 1,
        **run: Any,
    ) -> None:
        super().__init__(
            env, buffer_size=buffer_size, learning_starts=learning_starts, batch_size=batch_size, gamma=gamma,
            train_freq=train_freq, gradient_steps=gradient_steps, n_step=n_step, **run,
        )
        check_hyperparameters(
            learning_rate=learning_rate, n_critics=n_critics, policy_delay=policy_delay, tau=tau,
            max_grad_norm=max_grad_norm,
        )
        initial_ent_coef, learn_ent_coef = parse_ent_coef(ent_coef)
        if not (target_entropy == "auto" or isinstance(target_entropy, int | float)):
            raise ConfigurationError(f"target_entropy={target_entropy!r} must be a number, or 'auto' for -action_dim.")
        check_action_space(self.action_space, "SAC", ACTION_SPACES["SAC"])
        check_observation_space(self.observation_space, "SAC")
        self.action_dim = action_dim(self.action_space)
        spaces = (self.observation_space, self.action_space)
        with self.seeded():
            default_actor = partial(SquashedGaussianActor, *spaces, hidden_sizes)
            self.actor = build_network(
                actor, *spaces, default_actor, "actor", (2, 2 * self.action_dim),
                f"(batch, 2 * action_dim): the means, then the log standard deviations, for {self.action_space}",
            )
            self.critic = build_critic(critic, *spaces, hidden_sizes, n_critics)
        self.critic_target = target_network(self.critic)
        self.action_scaling = ActionScaling(self.action_space)
        # log(alpha), a parameter so that it is in the state_dict (and learned with ent_coef="auto").
        self.learn_ent_coef = learn_ent_coef
        self.log_ent_coef = nn.Parameter(torch.tensor(math.log(initial_ent_coef)), requires_grad=learn_ent_coef)
        self.target_entropy = -float(self.action_dim) if target_entropy == "auto" else float(target_entropy)
        self.learning_rate, self.tau, self.policy_delay = learning_rate, tau, policy_delay
        self.max_grad_norm = max_grad_norm

    def sample(self, observations: Tensor) -> tuple[Tensor, Tensor]:
        """Actions in [-1, 1] drawn from the policy (reparameterised), and their log-probabilities."""
        params = self.actor(observations)
        noise = torch.randn(params.shape[0], self.action_dim, device=params.device, generator=self.generator)
        return sample_squashed_gaussian(params, noise)

    @torch.no_grad()
    def act(self, observations: Tensor, deterministic: bool = False) -> Tensor:
        """Actions within the bounds: the policy's mode, a sample, or uniform before ``learning_starts``."""
        if deterministic:
            actions = torch.tanh(self.actor(observations).float()[:, : self.action_dim])
        elif self.env_steps < self.learning_starts:
            leaf = first_leaf(observations)
            actions = self.uniform_actions(leaf.shape[0], self.action_dim, leaf.device)
        else:
            actions, _ = self.sample(observations)
        return self.action_scaling.to_bounds(actions)

    @torch.no_grad()
    def td_target(self, batch: ReplayBatch, ent_coef: Tensor) -> Tensor:
        """``r + gamma^n * (min_i Q_target_i(s', a') - alpha * log pi(a'|s'))`` with ``a' ~ pi(.|s')``."""
        next_actions, next_log_prob = self.sample(batch.next_observations)
        next_q = self.critic_target(batch.next_observations, next_actions).float().min(dim=1).values
        next_value = next_q - ent_coef * next_log_prob
        return batch.rewards + batch.discounts * (1.0 - batch.terminations) * next_value

    def update(self, batch: ReplayBatch) -> None:
        actor_optimizer, critic_optimizer, *ent_coef_optimizer = self.optimizers()
        ent_coef = self.log_ent_coef.detach().exp()

        # Critics: regress on the soft TD target.
        target = self.td_target(batch, ent_coef)
        q = self.critic(batch.observations, self.action_scaling.from_bounds(batch.actions)).float()
        critic_loss = 0.5 * self.critic_loss(batch, q, target)
        self.minimize(critic_optimizer, critic_loss)
        self.update_stats.add(critic_loss=critic_loss, q_mean=q.mean())
        self.updates += 1

        if self.updates % self.policy_delay == 0:
            # Actor. Toggling its optimizer freezes the critics: no gradients are computed for them here.
            with self.toggled_optimizer(actor_optimizer):
                actions, log_prob = self.sample(batch.observations)
                q_pi = self.critic(batch.observations, actions).float().min(dim=1).values
                actor_loss = (ent_coef * log_prob - q_pi).mean()
                self.minimize(actor_optimizer, actor_loss)
            self.update_stats.add(actor_loss=actor_loss, entropy=-log_prob.detach().mean())
            if ent_coef_optimizer:
                # alpha grows while the entropy is below the target and shrinks while it is above.
                ent_coef_loss = -self.log_ent_coef * (log_prob.detach().mean() + self.target_entropy)
                self.minimize(ent_coef_optimizer[0], ent_coef_loss)

        polyak_update(self.critic_target, self.critic, self.tau)

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self.log_epoch("train/ent_coef", self.log_ent_coef.detach().exp())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if len(checkpoint.get("optimizer_states", [])) > 1:  # the critics' optimizer, maybe saved before batching
            stack_separate_critics_optimizer_state(self.critic, checkpoint["optimizer_states"][1])

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        optimizers = [
            self.make_optimizer(self.actor.parameters(), self.learning_rate),
            self.make_optimizer(self.critic.parameters(), self.learning_rate),
        ]
        if self.learn_ent_coef:
            optimizers.append(self.make_optimizer([self.log_ent_coef], self.learning_rate))
        return optimizers
