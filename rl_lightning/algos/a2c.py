"""Advantage Actor-Critic (Mnih et al., 2016), in its synchronous form (A2C)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rl_lightning.algos.on_policy import OnPolicyAlgorithm
from rl_lightning.algos.schedules import ScheduleSpec
from rl_lightning.buffers import RolloutBatch
from rl_lightning.envs import EnvSpec
from rl_lightning.errors import check_hyperparameters


class A2C(OnPolicyAlgorithm):
    """A2C: one gradient step per short rollout of all envs, on the policy gradient with a learned baseline.

    With advantages ``A`` from GAE(lambda) (lambda = 1: the n-step returns of the paper),
    ``L = -E[log pi(a|s) A] + vf_coef * E[(V(s) - R)^2] - ent_coef * E[H(pi(.|s))]``.

    The defaults are Stable-Baselines3's (RMSprop, as in the paper); ``experiments/a2c_*.yaml`` hold
    tuned sets. The policies are PPO's (see :class:`~rl_lightning.PPO`).

    Args:
        env: env id, ``Env`` subclass or factory.
        learning_rate: the step size: a float or ``"lin_<initial>"`` (linear decay to 0 over ``total_timesteps``).
        n_steps: steps of each env per rollout (and per update).
        gamma: discount factor.
        gae_lambda: GAE's lambda (1: the n-step returns of the paper).
        ent_coef: weight of the entropy bonus.
        vf_coef: weight of the value loss.
        max_grad_norm: gradient norm clip (the Trainer's ``gradient_clip_val`` overrides it; None: no clip).
        use_rms_prop: RMSprop (decay 0.99) as in the paper; otherwise Adam.
        rms_prop_eps: the optimizer's epsilon.
        normalize_advantage: standardize the advantages of each rollout.
        kwargs: the networks and normalizers (``actor``, ``critic``, ``hidden_sizes``, ``recurrent``, ...; see
            :class:`~rl_lightning.OnPolicyAlgorithm`) and the run arguments (``num_envs``, ``seed``, ...; see
            :class:`~rl_lightning.RLAlgorithm`).
    """

    fixed_arguments = ("batch_size", "n_epochs")

    def __init__(
        self,
        env: EnvSpec = "CartPole-v1",
        *,
        learning_rate: ScheduleSpec = 7e-4,
        n_steps: int = 5,
        gamma: float = 0.99,
        gae_lambda: float = 1.0,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float | None = 0.5,
        use_rms_prop: bool = True,
        rms_prop_eps: float = 1e-5,
        normalize_advantage: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            env, learning_rate=learning_rate, n_steps=n_steps, batch_size=None, n_epochs=1, gamma=gamma,
            gae_lambda=gae_lambda, ent_coef=ent_coef, vf_coef=vf_coef, max_grad_norm=max_grad_norm,
            normalize_advantage=normalize_advantage, **kwargs,
        )  # one update on the whole rollout
        check_hyperparameters(rms_prop_eps=rms_prop_eps)
        self.use_rms_prop, self.rms_prop_eps = use_rms_prop, rms_prop_eps

    def update(self, batch: RolloutBatch) -> Tensor:
        distribution, values = self.evaluate_batch(batch)
        advantages = self.normalized_advantages(batch.advantages)
        policy_loss = -(advantages * distribution.log_prob(batch.actions)).mean()
        value_loss = F.mse_loss(values, batch.returns)
        entropy = self.entropy(distribution)
        loss = self.total_loss(policy_loss, value_loss, entropy)
        self.update_stats.add(loss=loss, policy_loss=policy_loss, value_loss=value_loss, entropy=entropy)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.use_rms_prop:
            return self.make_optimizer(
                self.parameters(), self.lr_schedule.initial, torch.optim.RMSprop, alpha=0.99, eps=self.rms_prop_eps
            )
        return self.make_optimizer(self.parameters(), self.lr_schedule.initial, eps=self.rms_prop_eps)
