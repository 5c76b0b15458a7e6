"""A progress bar that counts env steps, the unit of RL training, instead of batches."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from lightning.pytorch.utilities import rank_zero_info

from rl_lightning import metric_names

if TYPE_CHECKING:
    from rl_lightning.algos.base import RLAlgorithm

SHORT_NAMES = {metric_names.TRAIN_RETURN: "return", metric_names.VAL_RETURN: "eval"}
"""How the progress bar labels the metrics that ``RLAlgorithm`` logs with ``prog_bar=True``."""


class RLProgressBar(TQDMProgressBar):
    """Training progress in env steps: done / total, env steps per second, the training and evaluation returns.

    In a terminal it is one bar for the whole run, for example::

        Epoch 3:  82%|████████▏ | 41.0k/50.0k [00:31<00:06, 1.31k env steps/s, return=123.4, eval=200.0]

    where ``return`` is the mean training episode return of the last epoch and ``eval`` the last evaluation's
    mean return (and any other metric logged with ``prog_bar=True``). The bar advances every
    ``refresh_rate`` batches from the module's ``env_steps`` counter (a Python int: no device sync); the
    returns change once per epoch. Where standard output is not a terminal (a batch job's log), there is no
    bar but one line per epoch, and a line at least every ``report_interval`` seconds within an epoch (an epoch
    can take minutes)::

        epoch 3: 40,960/50,000 env steps (82%), 1,305 env steps/s, return 123.4, eval return 200.0
        epoch 4 (running): 45,056/50,000 env steps (90%), 1,288 env steps/s

    ``rl-lightning fit`` and any Trainer fitting an :class:`~rl_lightning.RLAlgorithm` use it in place of
    Lightning's default bar (:func:`use_env_step_progress_bar`), unless the Trainer is given another progress bar
    or ``enable_progress_bar=False``.

    Args:
        refresh_rate: training batches between updates of the bar.
        process_position: the bar's line, for several processes printing bars at once.
        interactive: draw a bar (True) or print epoch lines (False); default: a bar when standard output is a
            terminal.
        report_interval: without a bar, the most seconds between two lines.
    """

    def __init__(
        self,
        refresh_rate: int = 1,
        process_position: int = 0,
        interactive: bool | None = None,
        report_interval: float = 30.0,
    ) -> None:
        super().__init__(refresh_rate=refresh_rate, process_position=process_position, leave=True)
        self.interactive = sys.stdout.isatty() if interactive is None else interactive
        self.report_interval = report_interval
        self._reported_steps: int | None = None
        self._last_line = (time.monotonic(), 0)  # when the last line was printed, at which env step

    def setup(self, trainer: Trainer, pl_module: RLAlgorithm, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if not self.interactive:
            self.disable()

    def get_metrics(self, trainer: Trainer, pl_module: RLAlgorithm) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        shown = {short: metrics[key] for key, short in SHORT_NAMES.items() if key in metrics}
        for key, value in metrics.items():
            # The bar shows its own live rate; the version number says nothing about progress.
            if key not in SHORT_NAMES and key not in ("v_num", metric_names.ENV_STEPS_PER_SEC):
                shown[key] = value
        return shown

    def _advance(self, pl_module: RLAlgorithm) -> None:
        bar = self.train_progress_bar
        if not bar.disable and pl_module.env_steps != bar.n:
            bar.update(pl_module.env_steps - bar.n)

    def on_train_start(self, trainer: Trainer, pl_module: RLAlgorithm) -> None:
        self._reported_steps = pl_module.env_steps  # a resumed run reports from its first new epoch on
        self._last_line = (time.monotonic(), pl_module.env_steps)
        self.train_progress_bar = Tqdm(
            desc=self.train_description,
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stdout,
            total=pl_module.total_timesteps,
            initial=pl_module.env_steps,  # a resumed run starts part of the way
            unit=" env steps",
            unit_scale=True,
            smoothing=0.1,
        )

    def on_train_epoch_start(self, trainer: Trainer, pl_module: RLAlgorithm) -> None:
        # The previous epoch's returns are logged by now (the module logs them after the callbacks' epoch end).
        self._report(trainer, pl_module)
        if not self.train_progress_bar.disable:
            self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch}")
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: RLAlgorithm, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if (batch_idx + 1) % self.refresh_rate == 0:
            self._advance(pl_module)
        if not self.interactive and time.monotonic() - self._last_line[0] >= self.report_interval:
            self._report_running(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: RLAlgorithm) -> None:
        self._advance(pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: RLAlgorithm) -> None:
        self._report(trainer, pl_module)
        if not self.train_progress_bar.disable:
            self._advance(pl_module)
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))
        self.train_progress_bar.close()

    def _report(self, trainer: Trainer, pl_module: RLAlgorithm) -> None:
        """Without a bar: one line for the epoch that just ended, if it played env steps not reported yet."""
        steps = pl_module.env_steps
        if self.interactive or not trainer.is_global_zero or steps == self._reported_steps:
            return
        self._reported_steps = steps
        metrics = trainer.progress_bar_metrics
        parts = [f"{steps:,}/{pl_module.total_timesteps:,} env steps ({100 * steps / pl_module.total_timesteps:.0f}%)"]
        if metric_names.ENV_STEPS_PER_SEC in metrics:
            parts.append(f"{metrics['env_steps_per_sec']:,.0f} env steps/s")
        if metric_names.TRAIN_RETURN in metrics:
            parts.append(f"return {metrics['train/episode_return']:.1f}")
        if metric_names.VAL_RETURN in metrics:
            parts.append(f"eval return {metrics['val/return_mean']:.1f}")
        # Called when the next epoch starts or training ends: either way the reported epoch is the last completed.
        rank_zero_info(f"epoch {trainer.current_epoch - 1}: " + ", ".join(parts))
        self._last_line = (time.monotonic(), steps)

    def _report_running(self, trainer: Trainer, pl_module: RLAlgorithm) -> None:
        """Without a bar: a line within an epoch, with the env steps per second since the previous line."""
        now, steps = time.monotonic(), pl_module.env_steps
        since, steps_then = self._last_line
        self._last_line = (now, steps)
        if not trainer.is_global_zero:
            return
        rate = (steps - steps_then) / max(now - since, 1e-9)
        rank_zero_info(
            f"epoch {trainer.current_epoch} (running): {steps:,}/{pl_module.total_timesteps:,} env steps "
            f"({100 * steps / pl_module.total_timesteps:.0f}%), {rate:,.0f} env steps/s"
        )


def use_env_step_progress_bar(trainer: Trainer) -> None:
    """Put an :class:`RLProgressBar` in place of the ``TQDMProgressBar()`` that Lightning gives a Trainer without a
    progress bar (its batch counter reads ``1624/?`` for an RL dataset); a progress bar the user configured stays.

    Replaced in the Trainer's callbacks rather than returned from ``configure_callbacks``, which would replace
    every ``TQDMProgressBar``, the user's included, and say so in a line of its own.
    """
    default = trainer.progress_bar_callback
    if type(default) is not TQDMProgressBar:
        return
    if (default.refresh_rate, default.process_position) != (1, 0):
        return
    trainer.callbacks[trainer.callbacks.index(default)] = RLProgressBar()
