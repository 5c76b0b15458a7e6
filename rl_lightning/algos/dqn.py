"""Deep Q-Network (Mnih et al., 2015) with the Rainbow components as options (Hessel et al., 2018): double Q,
dueling heads, n-step returns, prioritized replay, noisy nets and a distributional head (C51 or QR-DQN)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from rl_lightning.algos.off_policy import OffPolicyAlgorithm
from rl_lightning.buffers import ReplayBatch
from rl_lightning.envs import ACTION_SPACES, EnvSpec, check_action_space, check_observation_space
from rl_lightning.errors import ConfigurationError, check_hyperparameters
from rl_lightning.nets import (
    NetworkSpec,
    build_network,
    default_q_network,
    mask_invalid,
    noise_disabled,
    polyak_update,
    q_head,
    random_actions,
    reset_noise,
    target_network,
)
from rl_lightning.tree import first_leaf


class DQN(OffPolicyAlgorithm):
    """Deep Q-Network: regress ``Q(s, a)`` on ``r + gamma^n * max_a' Q_target(s', a')`` from replayed transitions.

    Options: ``distributional="categorical"`` (C51: return distributions on a fixed support, the KL divergence to the
    projected target) or ``"quantile"`` (QR-DQN: quantiles, the quantile Huber loss); ``noisy`` (parameter noise
    explores, not epsilon); ``prioritized_replay`` (by ``|TD error|``, by the loss if distributional). ``DQN(env,
    **RAINBOW)`` turns every component on. Invalid actions under the env's masks are never picked.

    Args:
        env: env id, ``Env`` subclass or factory; its action space must be ``Discrete``.
        q_net: an ``nn.Module`` (or a factory of the spaces) mapping observations to ``(batch, n_actions)`` values
            (``(batch, n_actions, n_atoms or n_quantiles)`` if distributional). Default: an MLP (a CNN for images).
        hidden_sizes: hidden layer widths of the default Q-network.
        dueling: give the default Q-network a dueling head (Wang et al., 2016).
        double_q: choose the next action online, value it with the target (van Hasselt et al., 2016).
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
        exploration_initial_eps: epsilon at the start (0 with ``noisy``).
        exploration_final_eps: epsilon after the decay (0 with ``noisy``).
        max_grad_norm: gradient norm clip (the Trainer's ``gradient_clip_val`` overrides it; None: no clip).
        loss: ``"huber"`` (smooth L1, as in the Nature paper) or ``"mse"``, for scalar Q-values.
        n_step: rewards summed into each target before bootstrapping.
        distributional: None (scalar Q-values), ``"categorical"`` (C51) or ``"quantile"`` (QR-DQN).
        n_atoms: atoms of the categorical support (51 in C51 and Rainbow).
        v_min: the support's lowest return (-10 in C51 on Atari: cover the task's returns).
        v_max: the support's highest return.
        n_quantiles: quantiles per action (200 in QR-DQN).
        noisy: factorised Gaussian noisy layers in the default network (Fortunato et al., 2018).
        run: the run arguments (``num_envs``, ``seed``, ...; see :class:`~rl_lightning.RLAlgorithm`) and the
            replay options (``prioritized_replay``, ``buffer_device``, ...; see :class:`OffPolicyAlgorithm`).
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
        distributional: Literal["categorical", "quantile"] | None = None,
        n_atoms: int = 51,
        v_min: float = -10.0,
        v_max: float = 10.0,
        n_quantiles: int = 200,
        noisy: bool = False,
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
        if q_net is not None and (dueling or noisy):
            raise ConfigurationError("dueling and noisy shape the default q_net: build them into yours, or drop them.")
        if noisy and (exploration_initial_eps > 0 or exploration_final_eps > 0):
            raise ConfigurationError("noisy=True explores by parameter noise and epsilon would explore too: pass "
                                     "exploration_initial_eps=0 and exploration_final_eps=0 (Rainbow's), or no noisy.")
        check_action_space(self.action_space, "DQN", ACTION_SPACES["DQN"])
        check_observation_space(self.observation_space, "DQN")
        self.n_actions, spaces = int(self.action_space.n), (self.observation_space, self.action_space)
        self.head = q_head(distributional, loss, n_atoms, v_min, v_max)  # here, not in q_net: yours works too
        default, shape, meaning = default_q_network(
            *spaces, hidden_sizes, distributional, n_atoms, v_min, v_max, n_quantiles, dueling, noisy
        )
        with self.seeded():
            self.q_net = build_network(q_net, *spaces, default, "q_net", (2, *shape), meaning)
        self.q_target = target_network(self.q_net)
        self.learning_rate, self.tau, self.double_q = learning_rate, tau, double_q
        self.target_update_interval, self.max_grad_norm = target_update_interval, max_grad_norm
        self.exploration_fraction, self.distributional, self.noisy = exploration_fraction, distributional, noisy
        self.exploration_initial_eps, self.exploration_final_eps = exploration_initial_eps, exploration_final_eps
        self.target_updates = 0  # how many target_update_interval boundaries the target has caught up with

    def exploration_rate(self) -> float:
        """Epsilon, decaying linearly over the first ``exploration_fraction`` of ``total_timesteps``."""
        progress = self.env_steps / max(self.exploration_fraction * self.total_timesteps, 1e-9)
        start, end = self.exploration_initial_eps, self.exploration_final_eps
        return end if progress >= 1.0 else start + progress * (end - start)

    @torch.no_grad()
    def act(self, observations: Tensor, deterministic: bool = False, action_masks: Tensor | None = None) -> Tensor:
        """Greedy actions (noise-free with noisy nets), or exploring ones while training; valid ones under masks."""
        leaf = first_leaf(observations)  # the batch's size and device (observations may be a dict of tensors)
        batch, device = leaf.shape[0], leaf.device
        epsilon = 0.0 if deterministic else self.exploration_rate()
        if epsilon >= 1.0:
            return random_actions(self.n_actions, batch, device, self.generator, action_masks)
        if self.noisy and not deterministic:
            reset_noise(self.q_net, self.generator)  # fresh noise for every action choice, as in Rainbow
        if epsilon > 0.0:
            explore = torch.rand(batch, device=device, generator=self.generator) < epsilon
            random = random_actions(self.n_actions, batch, device, self.generator, action_masks)
            # No greedy action would be taken: the network is not run (nor is SB3's). Checked on the CPU only, where
            # it costs no device sync (a torch env on a GPU never waits for the host).
            if device.type == "cpu" and bool(explore.all()):
                return random
        with noise_disabled(self.q_net) if deterministic else contextlib.nullcontext():
            q = self.head.q_values(self.q_net(observations))
        greedy = (q if action_masks is None else mask_invalid(q, action_masks)).argmax(dim=1)
        return greedy if epsilon <= 0.0 else torch.where(explore, random, greedy)

    def check_action_masks(self, action_masks: Tensor) -> None:  # one entry per action
        self.check_action_mask_width(action_masks, self.n_actions, "action")

    def update_target(self) -> None:
        """Per ``target_update_interval`` env steps passed (k): ``target += (1 - (1 - tau)^k) * (online - target)``."""
        due = self.env_steps // self.target_update_interval - self.target_updates
        if due > 0:
            self.target_updates += due
            polyak_update(self.q_target, self.q_net, 1.0 - (1.0 - self.tau) ** due)

    def td_losses(self, batch: ReplayBatch) -> tuple[Tensor, Tensor | None, Tensor]:
        """Losses against the target's outputs at the greedy ``a'`` (double Q: online-chosen), priorities, Q(s, a)."""
        with torch.no_grad():
            next_out = self.q_target(batch.next_observations).float()
            chooser = self.q_net(batch.next_observations).float() if self.double_q else next_out
            next_taken = self.head.greedy(next_out, chooser, batch.next_action_masks)
        taken = self.head.select(self.q_net(batch.observations).float(), batch.actions)
        q = taken if taken.dim() == 1 else self.head.q_values(taken.detach())
        targets = (taken, next_taken, batch.rewards, batch.discounts, batch.terminations)
        if batch.weights is None:  # uniform replay: the mean, one fused kernel for scalar values; no priorities
            return self.head.losses(*targets, mean=True), None, q
        return *self.head.losses_and_priorities(*targets), q

    def update(self, batch: ReplayBatch) -> Tensor:
        self.update_target()
        for network in (self.q_net, self.q_target) if self.noisy else ():
            reset_noise(network, self.generator)
        losses, priorities, q = self.td_losses(batch)
        loss = self.replay_loss(batch, losses, priorities)
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
