"""What a run reports: training episodes and update means each epoch, evaluation episodes, env steps as the x-axis."""

from __future__ import annotations

import math
import time
from typing import Any

from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader
from torchmetrics import Metric

from rl_lightning import metric_names, seeding
from rl_lightning.algos.metrics import EpisodeStatistics, EpochMeans
from rl_lightning.data import Collector, Episodes, evaluate_policy, refuse_faults
from rl_lightning.distributed import first_over_ranks
from rl_lightning.errors import RunFault


class Reporting(LightningModule):
    """Mixin of :class:`~rl_lightning.RLAlgorithm`: metrics once per epoch, and evaluation as the validation loop.

    Each validation plays ``eval_episodes`` deterministic episodes on separate envs, logged as ``val/*``; under DDP
    each rank plays its share on envs of its own seeds, and ``val/*`` covers all the episodes, so
    ``ModelCheckpoint(monitor="val/return_mean", mode="max")`` works unchanged. Every metric is logged with the
    env-step count, its x-axis.
    """

    seed: int
    eval_episodes: int
    eval_envs: int
    eval_collector: Collector | None
    val_episodes: EpisodeStatistics
    train_episodes: EpisodeStatistics
    update_stats: EpochMeans
    env_steps: int
    total_timesteps: int
    steps_per_epoch: int
    collector: Collector | None
    _epoch_start: tuple[float, int]
    current_epoch: int
    env_name: str
    num_envs: int

    def run_description(self) -> dict[str, Any]:
        """What identifies the run beside the hyperparameters: logged to every logger's config when fit starts,
        and read by loggers that name runs (see ``rl_lightning.loggers.WandbLogger.describe_run``)."""
        networks = {
            name: f"{type(child).__module__}.{type(child).__qualname__}"
            for name, child in self.named_children()
            if not isinstance(child, Metric)
        }
        return {
            "algorithm": type(self).__name__,
            "env_id": self.env_name,
            "num_envs": self.num_envs,
            "seed": self.seed,
            "networks": networks,
        }

    def on_fit_start(self) -> None:
        for logger in self.loggers:
            logger.log_hyperparams(self.run_description())
        max_epochs = self.trainer.max_epochs
        epochs_needed = math.ceil((self.total_timesteps - self.env_steps) / self.steps_per_epoch)
        if max_epochs is not None and 0 <= max_epochs < self.trainer.current_epoch + epochs_needed:
            rank_zero_warn(
                f"Trainer(max_epochs={max_epochs}) stops training before total_timesteps={self.total_timesteps} "
                f"env steps ({epochs_needed} epochs of {self.steps_per_epoch} steps remain). Pass max_epochs=-1 "
                f"to let total_timesteps decide."
            )

    def on_train_epoch_start(self) -> None:
        self._epoch_start = (time.perf_counter(), self.env_steps)

    def on_train_epoch_end(self) -> None:
        self.train_episodes.update(sums=self.collector.pop_episode_sums())
        stats = self.train_episodes.compute()
        self.train_episodes.reset()
        if stats["episodes"] > 0:
            self.log_epoch(metric_names.TRAIN_RETURN, stats["return_mean"].float(), prog_bar=True)
            self.log_epoch(metric_names.TRAIN_LENGTH, stats["length_mean"].float())
        for name, mean in self.update_stats.pop().items():
            self.log_epoch(f"train/{name}", mean)
        started, steps_then = self._epoch_start
        elapsed = max(time.perf_counter() - started, 1e-9)
        self.log_env_steps()
        self.log_epoch(metric_names.ENV_STEPS_PER_SEC, (self.env_steps - steps_then) / elapsed, prog_bar=True)
        if self.env_steps >= self.total_timesteps:
            self.trainer.should_stop = True

    def val_dataloader(self) -> DataLoader:
        # One item per validation round: validation_step plays all the episodes itself.
        return DataLoader([0], batch_size=None)

    def eval_share(self) -> int:
        """The evaluation episodes this process plays: its share of ``eval_episodes`` (rank 0 takes the first extra)."""
        share, extra = divmod(self.eval_episodes, self.world_size)
        return share + (self.global_rank < extra)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        share = self.eval_share()
        episodes = Episodes.none()
        if share > 0:
            seed = seeding.eval_env_seed(self.seed, self.global_rank, self.eval_envs)
            episodes = evaluate_policy(self, self.eval_collector, share, seed=seed)
        if self.check_finite:  # on every rank, even with no episode: a collective under DDP
            refuse_faults(self.eval_collector)
        # Updated on every rank, even with no episode: compute() then combines the episodes of all ranks.
        self.val_episodes.update(episodes.returns, episodes.lengths)

    def on_validation_epoch_end(self) -> None:
        stats = self.val_episodes.compute()
        self.val_episodes.reset()
        for name, key in zip(metric_names.VAL_METRICS, ("return_mean", "return_std", "length_mean")):
            self.log_epoch(name, stats[key].float(), prog_bar=name == metric_names.VAL_RETURN)
        self.log_env_steps()

    def log_epoch(self, name: str, value: Tensor | float, **kwargs: Any) -> None:
        """``self.log`` of one number per epoch (or evaluation); under DDP, its mean over the ranks.

        Most of what is logged is already the same on every rank (the global env-step count, the schedules, episode
        statistics that torchmetrics combined over ranks): the mean is then that value.
        """
        self.log(name, value, batch_size=1, sync_dist=True, **kwargs)

    def log_env_steps(self) -> None:
        """Log ``env_steps`` with the metrics of this epoch or evaluation, and make it their x-axis.

        Lightning takes a logged ``step`` as the step of every logger (TensorBoard, CSV, W&B's
        ``trainer/global_step``), instead of its count of optimizer steps.
        """
        self.log_epoch(metric_names.ENV_STEPS, float(self.env_steps))
        self.log_epoch("step", float(self.env_steps))

    def refuse_non_finite_updates(self) -> None:
        """Raise :class:`RunFault` if a value recorded by this epoch's updates (a loss) was NaN or infinite.

        The values are summed on the device as they are recorded (:class:`EpochMeans`): one sync per epoch.
        """
        names = self.update_stats.non_finite()
        message = None
        if names:
            message = (
                f"{', '.join(f'train/{name}' for name in names)} became non-finite (NaN or infinite) in epoch "
                f"{self.current_epoch}, by env step {self.env_steps}; the networks may be too, and no checkpoint is "
                f"written from them. Lower learning_rate, clip gradients (max_grad_norm or the Trainer's "
                f"gradient_clip_val) or scale the rewards, then resume from the last checkpoint with --ckpt_path last."
            )
        fault = first_over_ranks(message)  # under DDP every rank stops, not only the one whose loss it was
        if fault is not None:
            raise RunFault(fault)
