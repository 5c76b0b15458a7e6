"""Checkpoint plumbing of every algorithm: what a run saves and resumes, atomic writes, clear read errors, global
RNGs, and the default checkpoint callback."""

from __future__ import annotations

import errno
import os
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.strategies import Strategy
from lightning.pytorch.utilities import rank_zero_warn

from rl_lightning.algos.compat import attached_trainer
from rl_lightning.distributed import gather_on_rank_zero
from rl_lightning.errors import ConfigurationError, RunFault

if TYPE_CHECKING:
    from rl_lightning.algos.base import RLAlgorithm
    from rl_lightning.data import Collector

PathLike = str | os.PathLike

PARTIAL_SUFFIX = ".part"
"""A checkpoint is written to ``<name>.part`` beside its final name, then renamed over it."""


READ_ERRORS = (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError, LookupError)
"""What ``torch.load`` raises for a file it cannot read: missing, truncated, corrupt, or refused by weights_only.
(Random bytes read as a pickle can also make torch's weights_only unpickler fail with an IndexError or KeyError.)"""


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
    checkpoint intact, and at most one ``.part`` file, overwritten by the next save. A write that fails removes
    its ``.part`` file; one that fails for want of space raises :class:`~rl_lightning.errors.RunFault` naming the
    path and the size. Other filesystems (``s3://`` ...) keep Lightning's own write. Reading errors become a
    :class:`ConfigurationError` (:func:`read_checkpoint`).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: PathLike, storage_options: Any | None = None) -> None:
        filesystem, local_path = url_to_fs(str(path))
        if storage_options is not None or not isinstance(filesystem, LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(local_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + PARTIAL_SUFFIX)
        try:
            torch.save(checkpoint, partial)
            _fsync(partial)
            os.replace(partial, path)
        except BaseException as error:
            partial.unlink(missing_ok=True)  # a partial file would keep a full disk full
            size = checkpoint_size(checkpoint)
            if _disk_full(error, path.parent, size):
                raise RunFault(
                    f"no space left on device writing checkpoint {path} (about {_mebibytes(size)}, "
                    f"{_mebibytes(shutil.disk_usage(path.parent).free)} free); the partial file is removed and "
                    f"the previous checkpoint is kept. Free some space, or write checkpoints elsewhere "
                    f"(--trainer.default_root_dir), then resume with --ckpt_path last."
                ) from None
            raise
        if os.name == "posix":  # the rename itself reaches the disk once the folder is synced (not possible on Windows)
            _fsync(path.parent)

    def load_checkpoint(
        self,
        path: PathLike,
        map_location: Any = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        return read_checkpoint(path, map_location, weights_only)


def checkpoint_size(checkpoint: Any) -> int:
    """The bytes of the tensors and byte strings in ``checkpoint``: about what writing it takes on disk."""
    if isinstance(checkpoint, torch.Tensor):
        return checkpoint.untyped_storage().nbytes()
    if isinstance(checkpoint, bytes | bytearray):
        return len(checkpoint)
    if isinstance(checkpoint, dict):
        return sum(checkpoint_size(value) for value in checkpoint.values())
    if isinstance(checkpoint, list | tuple):
        return sum(checkpoint_size(item) for item in checkpoint)
    return 0


def _disk_full(error: BaseException, folder: Path, size: int) -> bool:
    """Whether writing ``size`` bytes into ``folder`` failed for want of space.

    An ``OSError`` says so by its errno; torch's writer raises a ``RuntimeError`` without one ("unexpected pos",
    "file write failed"), which counts as a full disk when less than ``size`` bytes are free now.
    """
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(error, RuntimeError) and shutil.disk_usage(folder).free < size


def _mebibytes(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


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


def use_resume_checkpoints(trainer: Trainer, dirpath: PathLike | None = None) -> None:
    """The one default-checkpoint rule: put :func:`resume_checkpoint` in place of Lightning's default callback.

    Lightning gives a Trainer without checkpoint callbacks a ``ModelCheckpoint()`` that keeps one checkpoint per
    epoch but no ``last.ckpt``; it is replaced (in place) by one that writes ``last.ckpt`` every epoch. A Trainer
    given checkpoint callbacks of its own keeps them. With ``dirpath``, every checkpoint callback without a folder
    writes there: ``--ckpt_path last`` searches the callbacks' folders before training starts, and a callback
    without one would only get its folder (a new, empty logger version folder) once training starts.
    """
    default = _lightning_default_checkpoint(trainer)
    if default is not None:
        trainer.callbacks[trainer.callbacks.index(default)] = resume_checkpoint(dirpath)
    # last.ckpt after every other checkpoint of the epoch: it holds their state (the best-k bookkeeping), which a
    # resumed run must get as it was after the epoch, or it keeps a best file it no longer knows about.
    lasts = [
        c
        for c in trainer.callbacks
        if isinstance(c, ModelCheckpoint) and c.monitor is None and c.filename == ModelCheckpoint.CHECKPOINT_NAME_LAST
    ]
    trainer.callbacks[:] = [c for c in trainer.callbacks if c not in lasts] + lasts
    if dirpath is not None:
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
                callback.dirpath = str(dirpath)


def _lightning_default_checkpoint(trainer: Trainer) -> ModelCheckpoint | None:
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


# --------------------------------------------------------------------------------------------- a run's own state
class RunState(LightningModule):
    """Mixin of :class:`~rl_lightning.RLAlgorithm`: everything that moves goes into checkpoints and comes back.

    ``checkpoint["rl_lightning"]`` holds the run's identity (refused on resume when it differs), the world size,
    :meth:`rl_state_dict` and the process-wide RNGs; under DDP every rank's. Resuming gives the same run as never
    stopping.
    """

    env_steps: int
    seed: int
    check_finite: bool
    collector: Collector | None
    generator: torch.Generator | None
    _pending_global_rng: dict[str, Any] | None  # restored when training starts

    def rl_state_dict(self) -> dict[str, Any]:
        """What moves besides the parameters: the env-step clock, the collector and its envs, the generator.

        Subclasses add their own state (buffers, counters) and call ``super()``. Keep it to tensors, numbers,
        strings and bytes, so that checkpoints load with ``torch.load(weights_only=True)``.
        """
        return {
            "env_steps": self.env_steps,
            "collector": None if self.collector is None else self.collector.state_dict(),
            "generator": None if self.generator is None else self.generator.get_state(),
        }

    def load_rl_state_dict(self, state: dict[str, Any]) -> None:
        self.env_steps = state["env_steps"]
        if self.collector is not None and state["collector"] is not None:
            self.collector.load_state_dict(state["collector"])
        if self.generator is not None and state["generator"] is not None:
            self.generator.set_state(state["generator"])

    def restart_episodes(self) -> None:
        """Start new episodes in every training env, seeded from ``seed`` and the env step count.

        What resuming does when the checkpoint holds no state of the envs (they could not be pickled).
        Subclasses also drop what belongs to the cut-off episodes, and call ``super()``.
        """
        self.collector.reset(self.seed + self.env_steps, self.global_rank)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.check_finite:
            refuse_non_finite_state(self)
        write_run_state(self, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_global_rng = read_run_state(self, checkpoint)

    def on_train_start(self) -> None:
        # The process-wide generators are restored last, just before the first epoch of a resumed run: the
        # Trainer draws from torch's while it starts (each DataLoader iterator takes a seed from it).
        if self._pending_global_rng is not None:
            set_global_rng_state(self._pending_global_rng, self.device)
            self._pending_global_rng = None


_IDENTITY_LABELS = {
    "algorithm": "algorithm",
    "env": "environment",
    "observation_space": "observation space",
    "action_space": "action space",
    "num_envs": "num_envs",
}


def run_identity(module: RLAlgorithm) -> dict[str, Any]:
    """What a checkpoint must match to be resumed by ``module``."""
    cls = type(module)
    return {
        "algorithm": f"{cls.__module__}.{cls.__qualname__}",
        "env": module.env_name,
        "observation_space": repr(module.observation_space),
        "action_space": repr(module.action_space),
        "num_envs": module.num_envs,
    }


def _source(module: RLAlgorithm) -> str:
    """The checkpoint being loaded, as error messages name it."""
    trainer = attached_trainer(module)
    path = trainer.ckpt_path if trainer is not None else None
    return f"checkpoint {path}" if path else "the checkpoint"


def check_resumable(module: RLAlgorithm, saved: dict[str, Any] | None) -> None:
    """Refuse, before anything is loaded, a checkpoint of another algorithm, env, space or number of envs."""
    source = _source(module)
    if saved is None:
        raise ConfigurationError(
            f"{source} was not written by an rl-lightning algorithm, so {type(module).__name__} cannot resume it."
        )
    ours = run_identity(module)
    ancestors = {f"{c.__module__}.{c.__qualname__}" for c in type(module).__mro__}
    differences = [
        f"{label}: {saved[key]} in the checkpoint, {ours[key]} here"
        for key, label in _IDENTITY_LABELS.items()
        if saved.get(key) != ours[key] and not (key == "algorithm" and saved.get(key) in ancestors)
    ]
    if differences:
        raise ConfigurationError(
            f"cannot resume from {source}: it was written by another run ({'; '.join(differences)}). Resume "
            f"with the configuration that wrote it, or start a new run without ckpt_path."
        )


def _check_world_size(module: RLAlgorithm, saved: dict[str, Any]) -> None:
    """Refuse to resume a fit on another number of processes than the one that wrote the checkpoint."""
    saved_world_size = saved.get("world_size", 1)
    if saved_world_size != module.world_size:
        raise ConfigurationError(
            f"cannot resume from {_source(module)}: it was written by {saved_world_size} process(es) "
            f"(world size {saved_world_size}) and this run has {module.world_size}. Each process's envs, buffer and "
            f"generators are in the checkpoint and cannot be split or merged over another number of processes. "
            f"Resume with devices x num_nodes = {saved_world_size}, or start a new run from its networks with "
            f"{type(module).__name__}.load_from_checkpoint(path) (new envs and buffers)."
        )


def refuse_non_finite_state(module: LightningModule) -> None:
    """Raise :class:`RunFault` before a checkpoint of ``module`` with a NaN or infinite parameter or buffer is
    written (one sync per checkpoint): such a model would be resumed, or kept as the "best" one."""
    state = [(name, t) for name, t in module.state_dict().items() if t.is_floating_point() or t.is_complex()]
    if not state:
        return
    finite = torch.stack([tensor.isfinite().all() for _, tensor in state]).tolist()
    bad = [name for (name, _), ok in zip(state, finite, strict=True) if not ok]
    if bad:
        raise RunFault(
            f"{bad[0]} holds NaN or infinite values{f' (and {len(bad) - 1} more tensors)' if len(bad) > 1 else ''}: "
            f"no checkpoint is written from a non-finite model, and the previous one is kept. Lower learning_rate or "
            f"clip gradients (max_grad_norm), then resume from the last checkpoint with --ckpt_path last."
        )


def write_run_state(module: RLAlgorithm, checkpoint: dict[str, Any]) -> None:
    """Put ``module``'s run state (:meth:`~RLAlgorithm.rl_state_dict` and the global RNGs) in ``checkpoint``.

    Rank 0's state at the top, as in a single-process checkpoint; under DDP every other rank's under "ranks",
    keyed by rank. Every rank calls this (Lightning's save is collective); only rank 0's copy is written.
    """
    state = {**module.rl_state_dict(), "global_rng": global_rng_state(module.device)}
    if module.world_size > 1:
        state = move_data_to_device(state, "cpu")  # a tensor pickled on cuda:1 would unpickle there on rank 0
    states = gather_on_rank_zero(state)
    if states is None:
        return
    own, *others = states
    checkpoint["rl_lightning"] = {**run_identity(module), "world_size": module.world_size, **own}
    if others:
        checkpoint["rl_lightning"]["ranks"] = dict(enumerate(others, start=1))


def read_run_state(module: RLAlgorithm, checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """Check ``checkpoint`` against ``module`` and load this rank's run state into it.

    Returns the global RNG state to restore when training starts (None when only weights are read, as
    ``load_from_checkpoint`` does): the Trainer still draws from torch's generator while it starts.
    """
    saved = checkpoint.get("rl_lightning")
    check_resumable(module, saved)
    resuming = module.collector is not None  # a fit, not only reading weights
    if resuming:
        _check_world_size(module, saved)
        if module.global_rank > 0:
            saved = saved["ranks"][module.global_rank]
    module.load_rl_state_dict(saved)
    if not resuming:
        return None
    collector_state = saved["collector"]
    if collector_state is not None and collector_state["env"] is None:
        rank_zero_warn(
            f"The checkpoint holds no state of the training envs ({collector_state['env_error']}): the resumed "
            f"run starts new episodes, seeded from the env step count, and does not repeat the uninterrupted run."
        )
        module.restart_episodes()
    return saved["global_rng"]


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
