"""Observations as trees: one tensor, or a dict (a ``Dict`` space) or tuple (a ``Tuple`` space) of them.

Every layer that moves observations (collector, buffers, normalizers, checkpoints) goes through these few
functions, so that a single-tensor observation and a structured one take the same code path: a bare tensor is
a tree of one leaf, and mapping a function over it is calling the function once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeAlias

import torch
from torch import Tensor

Tree: TypeAlias = Any
"""A leaf (a tensor, array, shape, dtype...), or a ``dict`` or plain ``tuple`` of trees. A ``NamedTuple`` or a
``torch.Size`` is a leaf, not a container."""


Observations: TypeAlias = Any
"""A batch of observations: a tensor, or a dict (``Dict`` space) or tuple (``Tuple`` space) of tensors, one per
key, each with the batch (or the envs) along its first dimension."""


def _is_container(tree: Tree) -> bool:
    return type(tree) is dict or type(tree) is tuple or type(tree) is list


def tree_map(fn: Callable[..., Any], tree: Tree, *others: Tree) -> Tree:
    """``fn`` applied to every leaf of ``tree`` (with the matching leaves of ``others``), in the same structure."""
    if type(tree) is dict:
        return {key: tree_map(fn, value, *(other[key] for other in others)) for key, value in tree.items()}
    if type(tree) is tuple or type(tree) is list:
        return type(tree)(tree_map(fn, *items) for items in zip(tree, *others, strict=True))
    return fn(tree, *others)


def tree_leaves(tree: Tree) -> Iterator[tuple[str, Any]]:
    """The leaves of ``tree`` with their paths (``""`` for a bare leaf, ``"image"`` or ``"0"`` for a key's)."""
    if not _is_container(tree):
        yield "", tree
        return
    items = tree.items() if type(tree) is dict else enumerate(tree)
    for key, value in items:
        for path, leaf in tree_leaves(value):
            yield (f"{key}.{path}" if path else str(key)), leaf


def first_leaf(tree: Tree) -> Any:
    """``tree``'s first leaf: of a batch of observations, a tensor with the batch size and the device of them all."""
    return next(tree_leaves(tree))[1]


def empty(
    shape: Sequence[int] | Tree, dtype: torch.dtype | Tree, leading: Sequence[int], device: torch.device | str
) -> Tree:
    """Preallocated, uninitialised ``(*leading, *shape)`` per leaf: ``dtype`` is a dtype (one tensor of ``shape``), or
    a dict or tuple of dtypes with ``shape`` the dict or tuple of the matching shapes (one tensor per key).

    A large CPU tensor's pages then stay untouched, so not resident, until written: for storage whose every read
    comes after a write of the same rows (a replay buffer's ring)."""
    if isinstance(dtype, torch.dtype):
        return torch.empty((*leading, *shape), dtype=dtype, device=device)
    if type(dtype) is dict:
        return {key: empty(shape[key], value, leading, device) for key, value in dtype.items()}
    return tuple(empty(key_shape, value, leading, device) for key_shape, value in zip(shape, dtype, strict=True))


def zeros(
    shape: Sequence[int] | Tree, dtype: torch.dtype | Tree, leading: Sequence[int], device: torch.device | str
) -> Tree:
    """As :func:`empty`, filled with zeros."""
    return tree_map(Tensor.zero_, empty(shape, dtype, leading, device))


def assign(destination: Tree, index: Any, source: Tree) -> None:
    """``destination[index] = source``, leaf by leaf."""
    tree_map(lambda dst, src: dst.__setitem__(index, src), destination, source)


def to_device(tree: Tree, device: torch.device | str) -> Tree:
    """``tree`` with every tensor moved to ``device`` (other leaves, None included, unchanged)."""
    return tree_map(lambda leaf: leaf.to(device) if isinstance(leaf, Tensor) else leaf, tree)
