"""rl-lightning: reinforcement learning algorithms as plain PyTorch Lightning modules.

The algorithms are imported when first named (``from rl_lightning import DQN``), not with the package: importing
torch and Lightning takes seconds, which ``rl-lightning --help`` and ``evaluate --help`` do without.
"""

from typing import Any

from rl_lightning.errors import ConfigurationError, RunFault

__version__ = "0.1.0"

_ALGORITHMS = (
    "A2C", "DDPG", "DQN", "PPO", "RAINBOW", "RAINBOW_ATARI", "SAC", "TD3", "OffPolicyAlgorithm", "OnPolicyAlgorithm",
    "RLAlgorithm",
)

__all__ = [*_ALGORITHMS, "ConfigurationError", "RunFault", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _ALGORITHMS:
        from rl_lightning import algos

        return getattr(algos, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
