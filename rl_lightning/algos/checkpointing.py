"""Checkpoint plumbing of every algorithm: atomic writes, clear read errors, global RNGs, the default callback."""

from __future__ import annotations

import os
import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.strategies import Strategy

from rl_lightning.errors import ConfigurationError

PathLike = str | os.PathLike

PARTIAL_SUFFIX = ".part"
"""A checkpoint is written to ``<name>.part`` beside its final name, then renamed over it."""


READ_ERRORS = (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError)
"""What ``torch.load`` raises for a file it cannot read: missing, truncated, corrupt, or refused by weights_only."""


def read_checkpoint(path: PathLike, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
    """``torch.load`` of a checkpoint file, with a clear :class:`ConfigurationError` for each way it can fail.

    ``weights_only=None`` is torch's default, which is ``True`` since torch 2.6: tensors, numbers, strings and
    containers only, so that loading a file cannot run code from it.
    """
    try:
        return TorchCheckpointIO().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
    except READ_ERRORS as err:
        raise unreadable_checkpoint(path, err) from None


def unreadable_checkpoint(path: PathLike, err: Exception) -> ConfigurationError:
    """The error to show for ``err``, one of :data:`READ_ERRORS` raised by reading checkpoint ``path``."""
    if isinstance(err, FileNotFoundError):
        return ConfigurationError(f"checkpoint {path}: no such file.")
    unsupported = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    if unsupported:
        return ConfigurationError(
            f"checkpoint {path} holds Python objects such as {unsupported.group(1)} (an env class or factory, a "
            f"network object); rebuilding them runs code from the file, which weights_only loading refuses. If you "
            f"trust where the file comes from, load it with weights_only=False (Trainer.fit(..., weights_only=False), "
            f"rl-lightning evaluate --weights_only false)."
        )
    # torch's messages run to paragraphs: keep the line that says what failed.
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(err))
    reason = detail.group(1) if detail else str(err).split(". ")[0].strip()
    return ConfigurationError(
        f"checkpoint {path} is not a readable checkpoint ({type(err).__name__}: {reason}); it may be truncated "
        f"(a copy or a save that did not finish) or written by another program."
    )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, with writes that cannot leave a half-written file under the checkpoint's name.

    Lightning 2.6 serialises the whole checkpoint into memory, writes it to a temporary file in the system's
    temporary folder and moves it into place: a rename, atomic, only where that folder is on the same filesystem
    as the checkpoints; otherwise a copy into the final name, which a kill interrupts halfway. Here the checkpoint
    streams into ``<name>.part`` beside its final name (no copy in memory), is flushed to disk (``fsync``), and
    is renamed over the final name (atomic on POSIX and Windows). A kill at any moment leaves the previous
    checkpoint intact, and at most one ``.part`` file, overwritten by the next save. Other filesystems (``s3://``
    ...) keep Lightning's own write. Reading errors become a :class:`ConfigurationError` (:func:`read_checkpoint`).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: PathLike, storage_options: Any | None = None) -> None:
        filesystem, local_path = url_to_fs(str(path))
        if storage_options is not None or not isinstance(filesystem, LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(local_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + PARTIAL_SUFFIX)
        torch.save(checkpoint, partial)
        _fsync(partial)
        os.replace(partial, path)
        if os.name == "posix":  # the rename itself reaches the disk once the folder is synced (not possible on Windows)
            _fsync(path.parent)

    def load_checkpoint(
        self,
        path: PathLike,
        map_location: Any = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        return read_checkpoint(path, map_location, weights_only)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def use_atomic_checkpoint_io(strategy: Strategy) -> None:
    """Give ``strategy`` the :class:`AtomicCheckpointIO` in place of Lightning's default; keep any other one."""
    if type(strategy.checkpoint_io) is TorchCheckpointIO:
        strategy.checkpoint_io = AtomicCheckpointIO()


def resume_checkpoint(dirpath: PathLike | None = None) -> ModelCheckpoint:
    """The checkpoint callback that resuming needs: every epoch, the whole state as ``last.ckpt``, written once.

    (``ModelCheckpoint(save_last=True)`` writes each checkpoint twice, as ``epoch=N-step=M.ckpt`` and as
    ``last.ckpt``; ``save_last="link"`` deletes the file its link points to before it moves the link.)
    ``dirpath=None`` is Lightning's place: the logger's version folder, or ``default_root_dir/checkpoints``.
    """
    return ModelCheckpoint(dirpath=dirpath, filename=ModelCheckpoint.CHECKPOINT_NAME_LAST, save_top_k=1)


def default_checkpoint_callback(trainer: Trainer) -> ModelCheckpoint | None:
    """The ``ModelCheckpoint()`` that Lightning adds to a Trainer given none, if that is the only one it has."""
    callbacks = trainer.checkpoint_callbacks
    if len(callbacks) != 1 or type(callbacks[0]) is not ModelCheckpoint:
        return None
    callback, default = callbacks[0], ModelCheckpoint()
    same = (
        callback.state_key == default.state_key  # monitor, mode and every_n_* schedules
        and (callback.dirpath, callback.filename, callback.save_last, callback.save_top_k)
        == (default.dirpath, default.filename, default.save_last, default.save_top_k)
    )
    return callback if same else None


def global_rng_state(device: torch.device) -> dict[str, Any]:
    """The process-wide generators: Python's ``random``, numpy's legacy one, torch's CPU one and ``device``'s.

    As tensors and numbers (numpy's key array as a tensor), so that checkpoints load with ``weights_only=True``.
    """
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def set_global_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what :func:`global_rng_state` saved."""
    random.setstate(state["python"])
    numpy = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy["keys"].numpy().astype(np.uint32),
            numpy["position"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
