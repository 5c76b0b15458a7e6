"""Twin Delayed DDPG (Fujimoto et al., 2018)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor

from rl_lightning.algos.off_policy import OffPolicyAlgorithm
from rl_lightning.buffers import ReplayBatch
from rl_lightning.envs import ACTION_SPACES, EnvSpec, check_action_space, check_observation_space
from rl_lightning.errors import check_hyperparameters
from rl_lightning.nets import (
    ActionScaling,
    DeterministicActor,
    NetworkSpec,
    action_dim,
    build_critic,
    build_network,
    polyak_update,
    target_network,
)
from rl_lightning.nets.continuous import stack_separate_critics_optimizer_state
from rl_lightning.tree import first_leaf


def smooth_target_actions(
    actions: Tensor, noise_std: float, noise_clip: float, generator: torch.Generator | None = None
) -> Tensor:
    """Target policy smoothing: ``clip(a + clip(eps, -noise_clip, noise_clip), -1, 1)``, ``eps ~ N(0, noise_std^2)``.

    Valuing a small neighbourhood of the target action keeps the critic from fitting narrow peaks of its own
    error, which a deterministic policy would otherwise exploit. ``actions`` are in [-1, 1].
    """
    noise = torch.randn(actions.shape, device=actions.device, generator=generator)
    return (actions + noise.mul_(noise_std).clamp_(-noise_clip, noise_clip)).clamp_(-1.0, 1.0)


class TD3(OffPolicyAlgorithm):
    """TD3: a deterministic policy trained through twin critics, with delayed updates and target smoothing.

    Each update regresses every critic on ``r + gamma^n * min_i Q_target_i(s', a')``, where ``a'`` is the
    target actor's action plus clipped Gaussian noise (target policy smoothing). Every ``policy_delay``
    updates the actor maximises ``Q_1(s, pi(s))`` and the target actor and critics follow by Polyak
    averaging. While playing, Gaussian noise of std ``action_noise`` is added to the actor's actions; before
    ``learning_starts`` env steps, actions are uniform within the bounds.

    The actor and critics work with actions in [-1, 1]; actions are scaled to the ``Box`` bounds only when
    they are sent to the env, so the noise scales are fractions of the half-range of each action dimension.

    The defaults are Stable-Baselines3's, except ``learning_starts`` (SB3: 100), which must be at least
    ``batch_size`` here, and ``action_noise`` (SB3 takes a noise object, default none); see
    ``experiments/td3_pendulum.yaml`` for a tuned set. Several optimizers need Lightning's manual
    optimization, under which ``Trainer(gradient_clip_val=...)`` is refused: use ``max_grad_norm``.

    Args:
        env: env id, ``Env`` subclass or factory; its action space must be a bounded ``Box``.
        actor: the policy network: an ``nn.Module`` mapping a batch of observations to
            ``(batch, action_dim)`` actions in [-1, 1] (end it with a tanh), or a factory
            ``(observation_space, action_space) -> nn.Module``. Default: a
            :class:`~rl_lightning.nets.DeterministicActor` of ``hidden_sizes``.
        critic: the Q-networks: a module mapping ``(observations, actions)``, actions ``(batch, action_dim)``
            in [-1, 1], to ``(batch, n_critics)`` values, or a factory. Default: a
            :class:`~rl_lightning.nets.ContinuousQNetworks` of ``n_critics`` MLPs of ``hidden_sizes``.
        hidden_sizes: hidden layer widths of the default actor and critics.
        n_critics: Q-networks whose minimum forms the target (2: clipped double Q).
        learning_rate: Adam's step size for the actor and the critics.
        buffer_size: transitions kept in the replay buffer.
        learning_starts: env steps of uniformly random actions before the first update (at least
            ``batch_size``).
        batch_size: transitions per update.
        tau: Polyak coefficient of the target networks' update.
        gamma: discount factor.
        train_freq: env steps between rounds of updates (a multiple of ``num_envs``).
        gradient_steps: updates per round (-1: one per env step).
        action_noise: std of the Gaussian exploration noise, in units of the action half-range (0: none).
        policy_delay: critic updates per update of the actor and of the target networks.
        target_policy_noise: std of the smoothing noise added to the target actor's actions (0: none).
        target_noise_clip: bound on the absolute value of that noise.
        max_grad_norm: gradient norm clip of both optimizers (None: no clip).
        n_step: rewards summed into each target before bootstrapping.
        run: the run arguments (``num_envs``, ``seed``, ``total_timesteps``, ...; see
            :class:`~rl_lightning.RLAlgorithm`) and ``buffer_device`` / ``save_buffer`` (see
            :class:`~rl_lightning.OffPolicyAlgorithm`).
    """

    several_optimizers = True  # critics and actor, each stepped in update()

    def __init__(
        self,
        env: EnvSpec = "Pendulum-v1",
        *,
        actor: NetworkSpec = None,
        critic: NetworkSpec = None,
        hidden_sizes: Sequence[int] = (400, 300),
        n_critics: int = 2,
        learning_rate: float = 1e-3,
        buffer_size: int = 1_000_000,
        learning_starts: int = 256,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int = 1,
        gradient_steps: int = 1,
        action_noise: float = 0.1,
        policy_delay: int = 2,
        target_policy_noise: float = 0.2,
        target_noise_clip: float = 0.5,
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
            action_noise=action_noise, target_policy_noise=target_policy_noise, target_noise_clip=target_noise_clip,
            max_grad_norm=max_grad_norm,
        )
        name = type(self).__name__
        check_action_space(self.action_space, name, ACTION_SPACES["TD3"])
        check_observation_space(self.observation_space, name)
        self.action_dim = action_dim(self.action_space)
        spaces = (self.observation_space, self.action_space)
        with self.seeded():
            self.actor = build_network(
                actor, *spaces, partial(DeterministicActor, *spaces, hidden_sizes), "actor", (2, self.action_dim),
                f"(batch, action_dim): actions in [-1, 1] for {self.action_space}",
            )
            self.critic = build_critic(critic, *spaces, hidden_sizes, n_critics)
        self.actor_target, self.critic_target = target_network(self.actor), target_network(self.critic)
        self.action_scaling = ActionScaling(self.action_space)
        self.learning_rate, self.tau, self.policy_delay = learning_rate, tau, policy_delay
        self.action_noise, self.max_grad_norm = action_noise, max_grad_norm
        self.target_policy_noise, self.target_noise_clip = target_policy_noise, target_noise_clip

    @torch.no_grad()
    def act(self, observations: Tensor, deterministic: bool = False) -> Tensor:
        """Actions within the bounds: the actor's, plus exploration noise unless ``deterministic``.

        Before ``learning_starts`` env steps, training actions are uniform within the bounds.
        """
        if not deterministic and self.env_steps < self.learning_starts:
            leaf = first_leaf(observations)
            actions = self.uniform_actions(leaf.shape[0], self.action_dim, leaf.device)
        else:
            actions = self.actor(observations).float()
            if not deterministic and self.action_noise > 0:
                noise = torch.randn(actions.shape, device=actions.device, generator=self.generator)
                actions = actions.add_(noise, alpha=self.action_noise).clamp_(-1.0, 1.0)
        return self.action_scaling.to_bounds(actions)

    @torch.no_grad()
    def td_target(self, batch: ReplayBatch) -> Tensor:
        """``r + gamma^n * min_i Q_target_i(s', a')`` at the target actor's (smoothed) action ``a'``."""
        next_actions = self.actor_target(batch.next_observations).float()
        if self.target_policy_noise > 0:
            next_actions = smooth_target_actions(
                next_actions, self.target_policy_noise, self.target_noise_clip, self.generator
            )
        next_q = self.critic_target(batch.next_observations, next_actions).float().min(dim=1).values
        return batch.rewards + batch.discounts * (1.0 - batch.terminations) * next_q

    def update(self, batch: ReplayBatch) -> None:
        actor_optimizer, critic_optimizer = self.optimizers()

        # Critics: regress on the clipped double-Q target.
        target = self.td_target(batch)
        q = self.critic(batch.observations, self.action_scaling.from_bounds(batch.actions)).float()
        critic_loss = self.critic_loss(batch, q, target)
        self.minimize(critic_optimizer, critic_loss)
        self.update_stats.add(critic_loss=critic_loss, q_mean=q.mean())
        self.updates += 1

        # Delayed policy update: the actor follows a critic that has had time to settle.
        if self.updates % self.policy_delay == 0:
            # Toggling the actor's optimizer freezes the critics: no gradients are computed for them here.
            with self.toggled_optimizer(actor_optimizer):
                actor_loss = -self.critic(batch.observations, self.actor(batch.observations))[:, 0].float().mean()
                self.minimize(actor_optimizer, actor_loss)
            self.update_stats.add(actor_loss=actor_loss)
            polyak_update(self.critic_target, self.critic, self.tau)
            polyak_update(self.actor_target, self.actor, self.tau)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if len(checkpoint.get("optimizer_states", [])) > 1:  # the critics' optimizer, maybe saved before batching
            stack_separate_critics_optimizer_state(self.critic, checkpoint["optimizer_states"][1])

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            self.make_optimizer(self.actor.parameters(), self.learning_rate),
            self.make_optimizer(self.critic.parameters(), self.learning_rate),
        ]
