"""Deep Deterministic Policy Gradient (Lillicrap et al., 2016), as the special case of TD3 it is."""

from __future__ import annotations

from typing import Any

from rl_lightning.algos.td3 import TD3
from rl_lightning.envs import EnvSpec


class DDPG(TD3):
    """Deep Deterministic Policy Gradient: TD3 with one critic, no policy delay and no target smoothing.

    Each update regresses the critic on ``r + gamma^n * Q_target(s', pi_target(s'))``, moves the actor to
    maximise ``Q(s, pi(s))`` and the targets toward both by Polyak averaging. Gaussian exploration noise
    replaces the paper's Ornstein-Uhlenbeck process, as in TD3 and Stable-Baselines3's tuned sets.

    Takes TD3's arguments except the four it fixes (``n_critics=1``, ``policy_delay=1``, no target smoothing).

    Args:
        env: env id, ``Env`` subclass or factory; its action space must be a bounded ``Box``.
        kwargs: TD3's other arguments.
    """

    fixed_arguments = ("n_critics", "policy_delay", "target_policy_noise", "target_noise_clip")

    def __init__(self, env: EnvSpec = "Pendulum-v1", **kwargs: Any) -> None:
        super().__init__(
            env, n_critics=1, policy_delay=1, target_policy_noise=0.0, target_noise_clip=0.0, **kwargs
        )
