"""What plugs into the Trainer from outside: evaluation videos and an env-step progress bar."""

from rl_lightning.callbacks.progress import RLProgressBar
from rl_lightning.callbacks.video import EvalVideo, record_episodes

__all__ = ["EvalVideo", "RLProgressBar", "record_episodes"]
