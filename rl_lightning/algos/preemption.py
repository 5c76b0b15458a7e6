"""Pre-emption: on SIGTERM or SIGUSR1, finish the epoch, checkpoint it, and exit with a non-zero status.

A cluster stops a job with SIGTERM (pre-emption, ``scancel``, a container stop) and, when asked, warns it with
SIGUSR1 before its time limit. Lightning's own handling stops at the next training step with exit status 0, so
the scheduler and ``fit && next-step`` take the unfinished run for a finished one, and a checkpoint written
there (mid-epoch) resumes with a new epoch from that point, unlike the uninterrupted run.

:class:`PreemptionCheckpoint` (every :class:`~rl_lightning.RLAlgorithm` adds it) defers the signal to the end of
the current epoch, the safe point where checkpoints resume exactly; writes ``last.ckpt`` there (unless a
checkpoint callback writes it at every epoch end anyway); and stops with exit status ``128 + signal number``
(143 for SIGTERM, 138 for SIGUSR1), what shells report for a process ended by that signal. ``--ckpt_path last``
resumes the run. A job killed before the epoch ends (SIGKILL after the grace period) keeps the previous epoch's
checkpoint: keep an epoch shorter than the grace period (``steps_per_epoch``) to lose nothing.

Under SLURM with Lightning's auto-requeue (``SLURMEnvironment(auto_requeue=True)``, the default on SLURM),
Lightning's own SIGUSR1 handler, which writes ``hpc_ckpt_<n>.ckpt`` and requeues the job, runs at that epoch end
instead of at once; the requeued job resumes from it by itself.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from rl_lightning.algos.checkpointing import resume_checkpoint
from rl_lightning.distributed import min_over_ranks

if TYPE_CHECKING:
    from rl_lightning.algos.base import RLAlgorithm

DEFERRED_SIGNALS = (signal.SIGTERM, signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else (signal.SIGTERM,)
"""The signals whose handling waits for the end of the epoch."""


def exit_status(signum: int) -> int:
    """The exit status of a run stopped by signal ``signum``: ``128 + signum``, as shells report it."""
    return 128 + signum


def writes_last_every_epoch(callback: ModelCheckpoint) -> bool:
    """Whether ``callback`` writes ``last.ckpt`` at every epoch end (then a signal needs no checkpoint of its own)."""
    if callback.save_last:
        return True
    every_epoch = resume_checkpoint(callback.dirpath)
    return callback.filename == every_epoch.filename and callback.state_key == every_epoch.state_key


class PreemptionCheckpoint(Callback):
    """Defers SIGTERM and SIGUSR1 to the end of the epoch, checkpoints there, and stops with a non-zero status.

    See the module docstring for why and for SLURM. The handlers are installed when training starts (after
    Lightning installs its own, which it restores when the Trainer is torn down) and only in the main thread,
    where Python allows signal handlers.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._lightning_handlers: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.received = None
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in DEFERRED_SIGNALS:
            self._lightning_handlers[signum] = signal.getsignal(signum)
            signal.signal(signum, self._defer)

    def _defer(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
            print(
                f"rl-lightning: received {signal.Signals(signum).name}: stopping at the end of this epoch, after "
                f"writing a checkpoint.",
                file=sys.stderr,
                flush=True,
            )

    def on_train_epoch_end(self, trainer: Trainer, pl_module: RLAlgorithm) -> None:
        received = self.received or 0
        # A signal may reach some ranks only: all stop, and all save (a collective). (A no-op in one process.)
        received = -min_over_ranks(-received)
        if not received or pl_module.env_steps >= pl_module.total_timesteps:
            return  # no signal, or the run is finished anyway
        self.received = received
        requeue = self._lightning_handlers.get(signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else None
        if received != signal.SIGTERM and callable(requeue):
            requeue(received, None)  # Lightning's SLURM auto-requeue: writes hpc_ckpt_<n>.ckpt, requeues the job
        elif not any(writes_last_every_epoch(c) for c in trainer.checkpoint_callbacks):
            trainer.save_checkpoint(self.checkpoint_path(trainer))
        # Lightning's SIGTERM handling, deferred to here: it stops the fit once this epoch is counted as complete.
        stop = self._lightning_handlers.get(signal.SIGTERM)
        if callable(stop):
            stop(signal.SIGTERM, None)
        else:  # Lightning handles no SIGTERM on Windows
            raise SIGTERMException(exit_status(received))

    @staticmethod
    def checkpoint_path(trainer: Trainer) -> Path:
        """Where a signal's checkpoint goes: ``last.ckpt`` in the first checkpoint callback's folder (where
        ``--ckpt_path last`` looks), else in ``<default_root_dir>/checkpoints``."""
        folders = [c.dirpath for c in trainer.checkpoint_callbacks if getattr(c, "dirpath", None)]
        folder = Path(folders[0]) if folders else Path(trainer.default_root_dir) / "checkpoints"
        return folder / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}{ModelCheckpoint.FILE_EXTENSION}"

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        # Lightning stops a fit on SIGTERM with SystemExit(None), status 0: the run did not finish, say so.
        if isinstance(exception, SIGTERMException):
            exception.code = exit_status(self.received or signal.SIGTERM)
