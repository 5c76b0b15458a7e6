"""The names under which every algorithm logs, in one place for the loggers, callbacks and scripts that read them."""

ENV_STEPS = "env_steps"
"""Env steps played so far, over all envs and processes: the x-axis of every metric."""
ENV_STEPS_PER_SEC = "env_steps_per_sec"
TRAIN_RETURN = "train/episode_return"
TRAIN_LENGTH = "train/episode_length"
VAL_RETURN = "val/return_mean"
"""The mean return of the deterministic evaluation episodes: what ``ModelCheckpoint(monitor=...)`` watches."""
VAL_RETURN_STD = "val/return_std"
VAL_LENGTH = "val/length_mean"
VAL_METRICS = (VAL_RETURN, VAL_RETURN_STD, VAL_LENGTH)
