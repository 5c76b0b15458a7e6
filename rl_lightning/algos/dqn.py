"""Deep Q-Network (Mnih et al., 2015), with Double DQN, a dueling head and n-step returns as options."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from rl_lightning.algos.off_policy import OffPolicyAlgorithm
from rl_lightning.buffers import ReplayBatch
from rl_lightning.envs import ACTION_SPACES, EnvSpec, check_action_space, check_observation_space
from rl_lightning.errors import ConfigurationError, check_choice, check_hyperparameters
from rl_lightning.nets import (
    NetworkSpec,
    QNetwork,
    build_network,
    check_output_shape,
    example_observations,
    mask_invalid,
    polyak_update,
    random_valid_actions,
    target_network,
)


class DQN(OffPolicyAlgorithm):
    """Deep Q-Network: regress ``Q(s, a)`` on ``r + gamma^n * max_a' Q_target(s', a')`` from replayed transitions.

    The defaults are Stable-Baselines3's; ``experiments/dqn_cartpole.yaml`` holds a tuned set. Where the env gives
    valid-action masks (``info["action_mask"]``), invalid actions are never the greedy nor the random pick, and the
    target's maximum is over the valid next actions.

    Args:
        env: env id, ``Env`` subclass or factory; its action space must be ``Discrete``.
        q_net: the Q-network: an ``nn.Module`` mapping a batch of observations to ``(batch, n_actions)``
            values, or a factory ``(observation_space, action_space) -> nn.Module``. Default: an MLP (or
            the Nature CNN for images) of ``hidden_sizes``.
        hidden_sizes: hidden layer widths of the default Q-network.
        dueling: give the default Q-network a dueling head (Wang et al., 2016).
        double_q: pick the next action with the online network and value it with the target network
            (van Hasselt et al., 2016).
        learning_rate: Adam's step size.
        buffer_size: transitions kept in the replay buffer.
        learning_starts: env steps of pure exploration before the first update.
        batch_size: transitions per update.
        tau: Polyak coefficient of the target update (1.0: copy the online network).
        gamma: discount factor.
        train_freq: env steps between rounds of updates (a multiple of ``num_envs``).
        gradient_steps: updates per round (-1: one per env step).
        target_update_interval: env steps between target network updates.
        exploration_fraction: fraction of ``total_timesteps`` over which epsilon decays linearly.
        exploration_initial_eps: epsilon at the start.
        exploration_final_eps: epsilon after the decay.
        max_grad_norm: gradient norm clip (the Trainer's ``gradient_clip_val`` overrides it; None: no clip).
        loss: ``"huber"`` (smooth L1, as in the Nature paper) or ``"mse"``.
        n_step: rewards summed into each target before bootstrapping.
        run: the run arguments (``num_envs``, ``seed``, ``total_timesteps``, ...; see
            :class:`~rl_lightning.RLAlgorithm`) and ``buffer_device`` / ``save_buffer`` (see
            :class:`~rl_lightning.OffPolicyAlgorithm`).
    """

    def __init__(
        self,
        env: EnvSpec = "CartPole-v1",
        *,
        q_net: NetworkSpec = None,
        hidden_sizes: Sequence[int] = (64, 64),
        dueling: bool = False,
        double_q: bool = False,
        learning_rate: float = 1e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 32,
        tau: float = 1.0,
        gamma: float = 0.99,
        train_freq: int = 4,
        gradient_steps: int = 1,
        target_update_interval: int = 10_000,
        exploration_fraction: float = 0.1,
        exploration_initial_eps: float = 1.0,
        exploration_final_eps: float = 0.05,
        max_grad_norm: float | None = 10.0,
        loss: Literal["huber", "mse"] = "huber",
        n_step: int = 1,
        **run: Any,
    ) -> None:
        super().__init__(
            env, buffer_size=buffer_size, learning_starts=learning_starts, batch_size=batch_size, gamma=gamma,
            train_freq=train_freq, gradient_steps=gradient_steps, n_step=n_step, **run,
        )
        check_hyperparameters(
            learning_rate=learning_rate, target_update_interval=target_update_interval, tau=tau,
            exploration_fraction=exploration_fraction, exploration_initial_eps=exploration_initial_eps,
            exploration_final_eps=exploration_final_eps, max_grad_norm=max_grad_norm,
        )
        check_choice("loss", loss, ("huber", "mse"))
        if q_net is not None and dueling:
            raise ConfigurationError(
                "dueling=True configures the default Q-network; a q_net of your own must build its dueling head "
                "itself. Drop dueling=True or q_net."
            )
        check_action_space(self.action_space, "DQN", ACTION_SPACES["DQN"])
        check_observation_space(self.observation_space, "DQN")
        self.n_actions = int(self.action_space.n)
        with self.seeded():
            default = partial(QNetwork, self.observation_space, self.action_space, hidden_sizes, dueling)
            self.q_net = build_network(q_net, self.observation_space, self.action_space, default, "q_net")
        check_output_shape(
            self.q_net, (example_observations(self.observation_space),), (2, self.n_actions), "q_net",
            f"(batch, n_actions) for {self.action_space}",
        )
        self.q_target = target_network(self.q_net)
        self.learning_rate, self.tau, self.double_q, self.loss = learning_rate, tau, double_q, loss
        self.target_update_interval, self.max_grad_norm = target_update_interval, max_grad_norm
        self.exploration_fraction = exploration_fraction
        self.exploration_initial_eps, self.exploration_final_eps = exploration_initial_eps, exploration_final_eps
        self.target_updates = 0  # how many target_update_interval boundaries the target has caught up with

    def exploration_rate(self) -> float:
        """Epsilon, decaying linearly over the first ``exploration_fraction`` of ``total_timesteps``."""
        progress = self.env_steps / max(self.exploration_fraction * self.total_timesteps, 1e-9)
        start, end = self.exploration_initial_eps, self.exploration_final_eps
        return end if progress >= 1.0 else start + progress * (end - start)

    @torch.no_grad()
    def act(self, observations: Tensor, deterministic: bool = False, action_masks: Tensor | None = None) -> Tensor:
        """Greedy actions, or epsilon-greedy ones while training; only valid ones where ``action_masks`` are given."""
        batch = observations.shape[0]
        epsilon = 0.0 if deterministic else self.exploration_rate()
        if epsilon >= 1.0:
            return self.random_actions(batch, observations.device, action_masks)
        q = self.q_net(observations)
        greedy = (q if action_masks is None else mask_invalid(q, action_masks)).argmax(dim=1)
        if epsilon <= 0.0:
            return greedy
        explore = torch.rand(batch, device=greedy.device, generator=self.generator) < epsilon
        return torch.where(explore, self.random_actions(batch, greedy.device, action_masks), greedy)

    def random_actions(self, batch: int, device: torch.device, action_masks: Tensor | None) -> Tensor:
        """Uniform actions from the exploration stream: over all actions, or over each row's valid ones."""
        if action_masks is not None:
            return random_valid_actions(action_masks, self.generator)
        return torch.randint(self.n_actions, (batch,), device=device, generator=self.generator)

    def check_action_masks(self, action_masks: Tensor) -> None:
        self.check_action_mask_width(action_masks, self.n_actions, "action")

    def update_target(self) -> None:
        """Move the target network toward the online one once per ``target_update_interval`` env steps passed.

        Updates fall due while env steps are played; they are applied before the next gradient step, k of
        them at once as ``target <- target + (1 - (1 - tau)^k) * (online - target)``.
        """
        due = self.env_steps // self.target_update_interval - self.target_updates
        if due <= 0:
            return
        self.target_updates += due
        polyak_update(self.q_target, self.q_net, 1.0 - (1.0 - self.tau) ** due)

    def update(self, batch: ReplayBatch) -> Tensor:
        self.update_target()
        with torch.no_grad():
            next_q = self.q_target(batch.next_observations).float()
            masks = batch.next_action_masks
            if masks is not None:
                next_q = mask_invalid(next_q, masks)
            if self.double_q:
                online_q = self.q_net(batch.next_observations)
                online_q = online_q if masks is None else mask_invalid(online_q, masks)
                next_actions = online_q.argmax(dim=1, keepdim=True)
                next_value = next_q.gather(1, next_actions).squeeze(1)
            else:
                next_value = next_q.max(dim=1).values
            target = batch.rewards + batch.discounts * (1.0 - batch.terminations) * next_value
        q = self.q_net(batch.observations).float().gather(1, batch.actions.long().unsqueeze(1)).squeeze(1)
        loss = F.smooth_l1_loss(q, target) if self.loss == "huber" else F.mse_loss(q, target)
        self.update_stats.add(loss=loss, q_mean=q.mean())
        return loss

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self.log_epoch("train/epsilon", self.exploration_rate())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.make_optimizer(self.q_net.parameters(), self.learning_rate)

    def rl_state_dict(self) -> dict[str, Any]:
        return {**super().rl_state_dict(), "target_updates": self.target_updates}

    def load_rl_state_dict(self, state: dict[str, Any]) -> None:
        super().load_rl_state_dict(state)
        self.target_updates = state["target_updates"]
