"""A sum tree of tensors: write a batch of leaf values, and find the leaves at a batch of prefix sums, in a few ops."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class SumTree:
    """Non-negative values over ``capacity`` leaves, with the sums needed to draw leaves in proportion to them.

    The tree is wide and shallow, since on small batches the cost is the number of tensor ops more than the data
    they touch: each interior level holds the sums of ``fanout`` consecutive nodes of the level below, and levels
    are added only until at most ``top_size`` nodes are left. That top level is searched whole (one cumsum shared
    by the batch), every level below it with one gather, cumsum and searchsorted over ``fanout`` children per
    query. At 1M leaves the default (64, 16384) is one interior level of 15,625 sums of blocks of 64 leaves (a
    blocked prefix sum); ``scripts/per_speed.py`` measures it against a binary tree and other shapes.

    Every interior sum is recomputed from its children whenever one of them changes, never adjusted by a
    difference, so sums do not drift however long the tree lives. The leaves are float32 (a priority needs no
    more, and a draw touches half the memory); the sums above them are float64, so that the top level's prefix
    sum, the longest chain of additions, stays exact to far below one leaf's share of the total. (In float32 the
    top prefix of 15,625 block sums could be off by up to 15,625 * 2^-24 ~ 1e-3 of the total, a thousand mean
    leaves' worth at 1M.) The draws are float64 too: float32's 24 bits give only 16 distinct targets per mean leaf
    at 1M leaves, so a leaf far below the mean would be drawn in steps of 1/2^24 of the total, not in proportion.
    Within a block the leaves are summed into float64 as well: ``searchsorted`` compares in one dtype, and casting
    the targets down would cost the op that a float32 sum saves. Float64 costs no time on the top level's cumsum
    (measured: 16 us float64, 18 us float32 at 15,625 sums), which is memory-bound. Nothing is read back to the
    host: writes and searches are batched tensor ops on ``device``.

    The tree's own ops run in :func:`torch.inference_mode`: no gradient ever flows through priorities, and on small
    batches the autograd bookkeeping every other op pays is a good part of an op's cost (a draw and a write-back took
    about a quarter less time, ``scripts/per_speed.py``). The indices :meth:`sample` and :meth:`find` return are
    therefore inference tensors: index with them, or pass them back to :meth:`set`, but do not modify them in place
    outside inference mode (``clone()`` them first), nor save them for a backward pass.

    Args:
        capacity: number of leaves (indices ``0 .. capacity - 1``); all start at 0.
        fanout: children per interior node (at least 2).
        top_size: most nodes the searched-whole top level may have (at least 1).
        device: where the sums live, and where indices and values passed in must be.
    """

    def __init__(
        self, capacity: int, fanout: int = 64, top_size: int = 16384, device: torch.device | str = "cpu"
    ) -> None:
        if capacity < 1 or fanout < 2 or top_size < 1:
            raise ValueError(
                f"SumTree needs capacity >= 1, fanout >= 2 and top_size >= 1, not {capacity}, {fanout}, {top_size}."
            )
        self.capacity, self.fanout, self.device = capacity, fanout, torch.device(device)
        top, self.depth = capacity, 0
        while top > top_size:
            top, self.depth = -(-top // fanout), self.depth + 1
        # levels[0] holds the leaves, padded with zeros up to a whole number of top nodes; levels[-1] is the top.
        self.levels = [
            torch.zeros(top * fanout ** (self.depth - level), dtype=torch.float64 if level else torch.float32,
                        device=self.device)
            for level in range(self.depth + 1)
        ]  # fmt: skip
        # Each level below the top as rows of siblings (views made once: a view costs as much as a small op).
        self._siblings = [level.view(-1, fanout) for level in self.levels[:-1]]
        # Each block of leaves but its last: searching only the first fanout - 1 ends never goes past the last child.
        self._leaf_heads = self._siblings[0][:, :-1] if self.depth else None
        # The top level's prefix sums after a leading 0: [k] is the mass before top node k, [k + 1] up to its end.
        # Searching only the first top - 1 ends never goes past the last node, as a clamp would do.
        self._top_prefix = torch.zeros(top + 1, dtype=torch.float64, device=self.device)
        self._top_ends, self._top_search = self._top_prefix[1:], self._top_prefix[1:-1]
        self._top_total = self._top_prefix[-1:]
        self._slice_starts = torch.zeros(0, dtype=torch.float64, device=self.device)

    @property
    def leaves(self) -> Tensor:
        """The ``capacity`` leaf values (a view: write them with :meth:`set` or :meth:`fill`, never in place)."""
        return self.levels[0][: self.capacity]

    def total(self) -> Tensor:
        """The sum of all leaves, a 0-dim float64 tensor."""
        return self.levels[-1].sum(dtype=torch.float64)

    def set(self, indices: Tensor, values: Tensor) -> None:
        """Write ``values[k]`` at leaf ``indices[k]``; where an index repeats, the largest of its values wins.

        Args:
            indices: leaf indices, a 1-dim long tensor on the tree's device.
            values: non-negative values, one per index (cast to float32).
        """
        # An indexed copy with repeated indices keeps an unspecified one of their values (on a GPU, any). A max
        # reduction is order-free, so the same on every device, in one op; include_self=False ignores the old
        # values. (A transition drawn twice in one batch has one TD error anyway, unless the two draws saw
        # different noise.)
        with torch.inference_mode():
            self.levels[0].scatter_reduce_(0, indices, values.to(torch.float32), "amax", include_self=False)
            for siblings, above in zip(self._siblings, self.levels[1:], strict=True):
                indices = indices.div(self.fanout, rounding_mode="floor")
                # A repeated parent gets the same sum each time: the leaves are all written by now.
                above.index_copy_(0, indices, siblings.index_select(0, indices).sum(1, dtype=torch.float64))

    def fill(self, start: int, count: int, value: Tensor | float) -> None:
        """Write ``value`` at the ``count`` leaves from ``start`` on, wrapping past the last leaf to leaf 0.

        Args:
            start: first leaf written, in ``[0, capacity)``.
            count: number of leaves written, at most ``capacity``.
            value: the value written, a number or a 0-dim tensor on the tree's device.
        """
        end = start + count
        with torch.inference_mode():
            if end <= self.capacity:
                self._fill_range(start, end, value)
            else:
                self._fill_range(start, self.capacity, value)
                self._fill_range(0, end - self.capacity, value)

    def _fill_range(self, start: int, end: int, value: Tensor | float) -> None:
        # A contiguous range of leaves has contiguous ranges of ancestors: slices, no index tensors.
        self.levels[0][start:end] = value
        for siblings, above in zip(self._siblings, self.levels[1:], strict=True):
            start, end = start // self.fanout, -(-end // self.fanout)
            torch.sum(siblings[start:end], 1, dtype=torch.float64, out=above[start:end])

    def find(self, targets: Tensor) -> Tensor:
        """The leaf where each prefix sum ``t`` of ``targets`` falls: the first ``i`` with ``sum(leaves[:i + 1]) > t``.

        A leaf of value 0 is never found, except that a target at or past the total (or past the sum of a node's
        children, by rounding) ends at the last leaf of its node, which may be 0, even one of the padding after
        ``capacity - 1``: callers clamp the result to the leaves they have filled.

        Args:
            targets: 1-dim float tensor of prefix sums in ``[0, total())``.

        Returns:
            The leaf indices, a 1-dim long tensor like ``targets``.
        """
        with torch.inference_mode():
            torch.cumsum(self.levels[-1], 0, dtype=torch.float64, out=self._top_ends)
            return self._descend(targets.to(torch.float64))

    def sample(self, batch_size: int, generator: torch.Generator | None = None, below: int | None = None) -> Tensor:
        """``batch_size`` leaves drawn in proportion to their values, one from each of ``batch_size`` equal slices
        of the total (stratified sampling: the batch spreads over the whole distribution).

        As with :meth:`find`, a draw that rounding puts past the end of a node may end at a leaf of value 0.

        Args:
            batch_size: leaves drawn.
            generator: the random stream of the draws, on the tree's device.
            below: if given, indices at or past it (leaves of value 0 that only rounding can reach) are clamped to
                ``below - 1``: the number of leaves in use.

        Returns:
            The leaf indices, a 1-dim long tensor, ascending (the slices are in order).
        """
        with torch.inference_mode():
            torch.cumsum(self.levels[-1], 0, dtype=torch.float64, out=self._top_ends)
            if len(self._slice_starts) != batch_size:
                self._slice_starts = torch.arange(batch_size, dtype=torch.float64, device=self.device) / batch_size
            # (k + u) / batch_size of the total, u uniform in [0, 1): a draw in slice k.
            draws = torch.rand(batch_size, dtype=torch.float64, device=self.device, generator=generator)
            leaves = self._descend(torch.add(self._slice_starts, draws, alpha=1 / batch_size).mul_(self._top_total))
            if below is not None and below < len(self.levels[0]):
                leaves.clamp_(max=below - 1)
            return leaves

    def _descend(self, targets: Tensor) -> Tensor:
        """Walk from the top level down to the leaves, keeping each target relative to the node it is in."""
        nodes = torch.searchsorted(self._top_search, targets, right=True)
        if self.depth == 0:
            return nodes
        targets = (targets - self._top_prefix.index_select(0, nodes)).view(-1, 1)
        for depth in range(self.depth - 1, 0, -1):
            children = self._siblings[depth].index_select(0, nodes)  # (batch, fanout)
            cumsum = children.cumsum(1, dtype=torch.float64)
            child = torch.searchsorted(cumsum, targets, right=True).clamp_(max=self.fanout - 1)
            targets = targets - (cumsum - children).gather(1, child)
            nodes = child.view(-1).add_(nodes, alpha=self.fanout)
        # The leaves need no target within them, and searching only the first fanout - 1 ends never goes past the
        # last child: one op less than a clamp, on the level every draw passes.
        ends = self._leaf_heads.index_select(0, nodes).cumsum(1, dtype=torch.float64)
        return torch.searchsorted(ends, targets, right=True).view(-1).add_(nodes, alpha=self.fanout)

    def clear(self) -> None:
        """Set every leaf (and so every sum) to 0."""
        with torch.inference_mode():
            for level in self.levels:
                level.zero_()

    def state_dict(self, used: int) -> dict[str, Any]:
        """The leaves ``0 .. used - 1`` (all others must be 0) and the interior sums.

        When all leaves are in use they are handed over themselves, not copied (as a full replay buffer's storage
        is): write the state out before the tree changes.
        """
        leaves = self.levels[0][:used]
        return {
            "leaves": leaves if used == self.capacity else leaves.clone(),
            "sums": [level.clone() for level in self.levels[1:]],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` of a tree of the same shape."""
        sums, leaves = state["sums"], state["leaves"]
        shapes = [len(level) for level in self.levels[1:]]
        if [len(saved) for saved in sums] != shapes or len(leaves) > self.capacity:
            raise ValueError(
                f"the saved sum tree (levels {[len(leaves)] + [len(s) for s in sums]}) does not fit this one "
                f"(capacity {self.capacity}, levels {shapes}): capacity, fanout or top_size differ"
            )
        with torch.inference_mode():
            self.levels[0].zero_()
            self.levels[0][: len(leaves)] = leaves.to(self.device)
            for level, saved in zip(self.levels[1:], sums, strict=True):
                level.copy_(saved)
