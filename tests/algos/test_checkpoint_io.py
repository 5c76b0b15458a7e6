"""AtomicCheckpointIO when a write fails: a full disk is named with the path and the size, nothing partial stays."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from rl_lightning import RunFault
from rl_lightning.algos import checkpointing
from rl_lightning.algos.checkpointing import AtomicCheckpointIO, checkpoint_size

CHECKPOINT = {"state_dict": {"weight": torch.zeros(256, 1024)}, "rl_lightning": {"env": b"x" * 1000}}
"""1 MiB of weights and 1000 bytes of pickled env state."""


def failing_save(error: BaseException):
    """A ``torch.save`` that writes part of the file, then fails with ``error`` (as a full disk does)."""

    def save(obj: Any, path: Path) -> None:
        Path(path).write_bytes(b"partial")
        raise error

    return save


@pytest.fixture
def previous(tmp_path: Path) -> Path:
    """A checkpoint written before the failing save, at the path the failing save writes to."""
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 1}, path)
    return path


def assert_previous_kept(path: Path) -> None:
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no last.ckpt.part


def test_checkpoint_size_counts_tensors_and_bytes() -> None:
    assert checkpoint_size(CHECKPOINT) == 256 * 1024 * 4 + 1000


def test_no_space_left_is_named_with_path_and_size_and_the_partial_file_is_removed(previous: Path, monkeypatch):
    monkeypatch.setattr(checkpointing.torch, "save", failing_save(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(RunFault) as caught:
        AtomicCheckpointIO().save_checkpoint(CHECKPOINT, previous)
    message = str(caught.value)
    assert message.startswith(f"no space left on device writing checkpoint {previous} (about 1.0 MiB, ")
    assert "the previous checkpoint is kept" in message
    assert_previous_kept(previous)


def test_torchs_writer_error_on_a_full_disk_is_named_as_such(previous: Path, monkeypatch) -> None:
    # torch's own writer reports a full disk as "unexpected pos", without an errno: the free space tells.
    unexpected_pos = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
    monkeypatch.setattr(checkpointing.torch, "save", failing_save(unexpected_pos))
    monkeypatch.setattr(checkpointing.shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(10, 10, 0))
    with pytest.raises(RunFault, match="no space left on device"):
        AtomicCheckpointIO().save_checkpoint(CHECKPOINT, previous)
    assert_previous_kept(previous)


def test_other_write_errors_pass_through_and_leave_nothing_partial(previous: Path, monkeypatch) -> None:
    monkeypatch.setattr(checkpointing.torch, "save", failing_save(OSError(errno.EIO, "Input/output error")))
    with pytest.raises(OSError, match="Input/output error"):
        AtomicCheckpointIO().save_checkpoint(CHECKPOINT, previous)
    assert_previous_kept(previous)
