"""Rainbow (Hessel et al., 2018): DQN with its six extensions, as a preset of DQN's options.

``DQN(env, **RAINBOW)`` turns every component on with the paper's settings (Table 1; also Dopamine's
``full_rainbow.gin``): double Q, a dueling head, 3-step returns, proportional prioritized replay
(``prioritized_alpha`` 0.5, ``prioritized_beta`` 0.4 annealed to 1), noisy layers (sigma0 0.5) instead of
epsilon-greedy, and C51's distribution on 51 atoms. The Atari-scale sizes (learning rate, target update every 8,000
agent steps, 20,000 steps before learning) are in :data:`RAINBOW_ATARI`; for other tasks choose ``v_min`` and
``v_max`` to cover the returns (CartPole's reach 100 with gamma 0.99), as ``experiments/rainbow_cartpole.yaml`` does.
Each component is also an option of its own (see :class:`~rl_lightning.DQN`).
"""

from __future__ import annotations

from typing import Any

RAINBOW: dict[str, Any] = {
    "double_q": True,
    "dueling": True,
    "n_step": 3,
    "prioritized_replay": True,
    "prioritized_alpha": 0.5,
    "prioritized_beta": 0.4,
    "noisy": True,
    "exploration_initial_eps": 0.0,
    "exploration_final_eps": 0.0,
    "distributional": "categorical",
    "n_atoms": 51,
}
"""The six components, on."""

RAINBOW_ATARI: dict[str, Any] = {
    **RAINBOW,
    "v_min": -10.0,
    "v_max": 10.0,
    "learning_rate": 6.25e-5,
    "batch_size": 32,
    "buffer_size": 1_000_000,
    "learning_starts": 20_000,
    "train_freq": 4,
    "target_update_interval": 8_000,
    "gamma": 0.99,
}
"""The paper's Atari settings, in agent steps (4 frames each); Adam's epsilon there is 1.5e-4."""
