"""Proximal Policy Optimization (Schulman et al., 2017), the clipped-surrogate variant."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rl_lightning.algos.on_policy import OnPolicyAlgorithm
from rl_lightning.algos.schedules import Schedule, ScheduleSpec
from rl_lightning.buffers import RolloutBatch
from rl_lightning.envs import EnvSpec
from rl_lightning.errors import check_hyperparameters


class PPO(OnPolicyAlgorithm):
    """PPO: several epochs of minibatch updates per rollout on the clipped surrogate objective.

    For each minibatch, with ``r = pi(a|s) / pi_old(a|s)`` and advantages ``A`` from GAE(lambda),
    ``L = -E[min(r A, clip(r, 1 - eps, 1 + eps) A)] + vf_coef * E[(V(s) - R)^2] - ent_coef * E[H(pi(.|s))]``.

    The defaults are Stable-Baselines3's; ``experiments/ppo_*.yaml`` hold tuned sets. Policies: categorical
    for ``Discrete``, one categorical per dimension for ``MultiDiscrete``, a diagonal Gaussian with
    state-independent log-std for ``Box`` (actions clipped to the bounds in the env only).

    Args:
        env: env id, ``Env`` subclass or factory.
        learning_rate: Adam's step size: a float or ``"lin_<initial>"`` (linear decay to 0 over ``total_timesteps``).
        n_steps: steps of each env per rollout.
        batch_size: transitions per minibatch (a divisor of ``n_steps * num_envs``).
        n_epochs: passes over each rollout.
        gamma: discount factor.
        gae_lambda: GAE's lambda.
        clip_range: the surrogate's clip ``eps``: a float or ``"lin_<initial>"``.
        clip_range_vf: clip the value update to ``old value +- clip_range_vf`` (a float or ``"lin_<initial>"``);
            None (default) does not clip. It depends on the scale of the rewards.
        normalize_advantage: standardize the advantages of each minibatch.
        ent_coef: weight of the entropy bonus.
        vf_coef: weight of the value loss.
        max_grad_norm: gradient norm clip (the Trainer's ``gradient_clip_val`` overrides it; None: no clip).
        target_kl: when a minibatch's approximate KL divergence from the collecting policy exceeds
            ``1.5 * target_kl``, that minibatch and the rest of the rollout's are skipped. None: never.
        kwargs: the networks and normalizers (``actor``, ``critic``, ``hidden_sizes``, ``recurrent``, ...; see
            :class:`~rl_lightning.OnPolicyAlgorithm`) and the run arguments (``num_envs``, ``seed``, ...; see
            :class:`~rl_lightning.RLAlgorithm`).
    """

    def __init__(
        self,
        env: EnvSpec = "CartPole-v1",
        *,
        learning_rate: ScheduleSpec = 3e-4,
        n_steps: int = 2048,
        batch_size: int = 64,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: ScheduleSpec = 0.2,
        clip_range_vf: ScheduleSpec | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float | None = 0.5,
        target_kl: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            env, learning_rate=learning_rate, n_steps=n_steps, batch_size=batch_size, n_epochs=n_epochs, gamma=gamma,
            gae_lambda=gae_lambda, ent_coef=ent_coef, vf_coef=vf_coef, max_grad_norm=max_grad_norm,
            normalize_advantage=normalize_advantage, **kwargs,
        )
        check_hyperparameters(target_kl=target_kl)
        self.clip_schedule = Schedule.parse(clip_range, "clip_range")
        self.clip_vf_schedule = None if clip_range_vf is None else Schedule.parse(clip_range_vf, "clip_range_vf")
        self.target_kl = target_kl

    def update(self, batch: RolloutBatch) -> Tensor | None:
        clip_range = self.clip_schedule(self.progress_remaining)
        distribution, values = self.evaluate_batch(batch)
        log_probs = distribution.log_prob(batch.actions)
        advantages = self.normalized_advantages(batch.advantages)

        # Clipped surrogate objective: no incentive to move the probability ratio outside [1 - eps, 1 + eps].
        log_ratio = log_probs - batch.log_probs
        ratio = log_ratio.exp()
        surrogate = torch.min(advantages * ratio, advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range))
        policy_loss = -surrogate.mean()

        if self.clip_vf_schedule is not None:
            clip_vf = self.clip_vf_schedule(self.progress_remaining)
            values = batch.values + (values - batch.values).clamp(-clip_vf, clip_vf)
        value_loss = F.mse_loss(values, batch.returns)
        entropy = self.entropy(distribution)
        loss = self.total_loss(policy_loss, value_loss, entropy)

        with torch.no_grad():
            approx_kl = ((ratio - 1.0) - log_ratio).mean()  # an unbiased, low-variance estimate of KL(old || new)
            clip_fraction = ((ratio - 1.0).abs() > clip_range).float().mean()
        self.update_stats.add(
            loss=loss,
            policy_loss=policy_loss,
            value_loss=value_loss,
            entropy=entropy,
            approx_kl=approx_kl,
            clip_fraction=clip_fraction,
        )
        if self.target_kl is not None and self.kl_too_large(approx_kl):
            self.rollout_updates_stopped = True  # the dataset skips the rest of this rollout
            return None  # and this minibatch's step, on every rank alike
        return loss

    def kl_too_large(self, approx_kl: Tensor) -> bool:
        """Stable-Baselines3's early stop: KL above ``1.5 * target_kl``, averaged over processes so they agree."""
        approx_kl = self.trainer.strategy.reduce(approx_kl, reduce_op="mean")
        return bool(approx_kl > 1.5 * self.target_kl)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # Adam's eps of 1e-5 is Stable-Baselines3's (and OpenAI Baselines') for PPO and A2C.
        return self.make_optimizer(self.parameters(), self.lr_schedule.initial, eps=1e-5)

    def on_train_epoch_end(self) -> None:
        self.log_epoch("train/clip_range", self.clip_schedule(self.progress_remaining))
        super().on_train_epoch_end()
