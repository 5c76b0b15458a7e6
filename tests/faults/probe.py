"""The fault suite's instrument: a callback that injects one fault into a ``rl-lightning fit`` subprocess.

The subprocess's config lists :class:`FaultProbe` among its callbacks; ``RL_LIGHTNING_TEST_FAULT=<fault>@<epoch>``
in its environment says which fault, and in which epoch (at that epoch's third training step). Without the
variable the probe does nothing, so the same config runs straight through.
"""

from __future__ import annotations

import errno
import os
import signal
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

FAULT = "RL_LIGHTNING_TEST_FAULT"


class _FullDisk:
    """Raises ``ENOSPC`` when ``torch.save`` pickles it, as a write to a full disk does, after the file is opened."""

    def __reduce__(self) -> Any:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FaultProbe(Callback):
    """Injects the fault named by ``RL_LIGHTNING_TEST_FAULT`` (see the module docstring).

    ``SIGTERM``, ``SIGUSR1``, ``SIGINT``: the process sends itself that signal. ``crash``: the training env's
    ``step`` raises from then on, as an env that crashes does. ``ENOSPC``: the epoch's checkpoint write fails for
    want of space.
    """

    def __init__(self) -> None:
        fault, _, epoch = os.environ.get(FAULT, "").partition("@")
        self.fault, self.epoch = fault, int(epoch) if epoch else -1
        if self.fault == "SIGINT" and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            # A process started by a non-interactive shell in the background inherits SIGINT ignored (and Python
            # then leaves it so); a user's Ctrl-C reaches a process that handles it: restore Python's handler.
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.current_epoch != self.epoch or trainer.fit_loop.epoch_loop.batch_idx != 2:
            return
        if self.fault in ("SIGTERM", "SIGUSR1", "SIGINT"):
            os.kill(os.getpid(), signal.Signals[self.fault])
        elif self.fault == "crash":

            def crash(*args: Any) -> None:
                raise RuntimeError("the simulator crashed")

            pl_module.collector.env.step = crash

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if self.fault == "ENOSPC" and trainer.current_epoch == self.epoch:
            checkpoint["full_disk"] = _FullDisk()
