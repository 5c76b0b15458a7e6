"""The few collectives that keep DDP ranks in step: plain ``torch.distributed``, no-ops in a single process.

Every function here is a collective when several processes run: every rank must call it, in the same order.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

_host_groups: dict[Any, Any] = {}  # the gloo group of :func:`_host_group`, per default group


def world_size() -> int:
    """Processes of the default process group; 1 without one."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def sum_over_ranks(tensor: Tensor) -> Tensor:
    """``tensor`` summed over every rank, in place (returned for convenience)."""
    if world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def min_over_ranks(value: int) -> int:
    """The smallest of every rank's ``value``."""
    if world_size() == 1:
        return value
    # NCCL reduces tensors on the process's GPU only; gloo, CPU ones.
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    tensor = torch.tensor(value, dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor.item())


def gather_on_rank_zero(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` (picklable, tensors on the CPU) in rank order on rank 0; None on the other ranks.

    Through a gloo group, so that a replay buffer of gigabytes moves in host memory and never through GPU
    memory, as NCCL would move it.
    """
    if world_size() == 1:
        return [obj]
    gathered = [None] * world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, gathered, dst=0, group=_host_group())
    return gathered


def first_over_ranks(message: str | None) -> str | None:
    """On every rank, the ``message`` of the lowest rank holding one (not None), as ``"rank R: message"``; None
    where no rank holds one. In one process: ``message``.

    Through the gloo group (host memory): a message is rare, and whether there is one is known on the host.
    """
    if world_size() == 1:
        return message
    group = _host_group()
    first = torch.tensor(dist.get_rank() if message is not None else world_size())
    dist.all_reduce(first, op=dist.ReduceOp.MIN, group=group)
    rank = int(first)
    if rank == world_size():
        return None
    box = [message]
    dist.broadcast_object_list(box, src=rank, group=group)
    return f"rank {rank}: {box[0]}"


def _host_group() -> Any:
    """A gloo group of every process (the default group where it is gloo already), made once."""
    world = dist.group.WORLD
    if world not in _host_groups:
        _host_groups[world] = world if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    return _host_groups[world]
