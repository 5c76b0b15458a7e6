"""SumTree against hand-computed sums and searches, in every shape: flat, one interior level, a deep narrow tree."""

from __future__ import annotations

import pytest
import torch

from rl_lightning.buffers import SumTree
from tests.buffers.test_replay import saved_and_loaded

# (fanout, top_size) -> the node counts of the levels of a 10-leaf tree, leaves (padded) first.
SHAPES = {
    (64, 16384): [10],  # the default: all 10 leaves are the top, searched whole
    (3, 2): [18, 6, 2],  # 10 leaves -> 4 nodes -> 2 <= top_size: padded to 2 * 3 * 3 leaves
    (2, 1): [16, 8, 4, 2, 1],  # a binary tree
}


def level_sums(tree: SumTree) -> list[list[float]]:
    return [level.tolist() for level in tree.levels]


def expected_levels(leaves: list[float], fanout: int, sizes: list[int]) -> list[list[float]]:
    """Each level as the sums of ``fanout`` consecutive nodes of the one below, from ``leaves`` padded with 0."""
    levels = [leaves + [0.0] * (sizes[0] - len(leaves))]
    for _ in sizes[1:]:
        below = levels[-1]
        levels.append([sum(below[i : i + fanout]) for i in range(0, len(below), fanout)])
    return levels


@pytest.fixture(params=list(SHAPES), ids=lambda shape: f"fanout{shape[0]}-top{shape[1]}")
def shape(request: pytest.FixtureRequest) -> tuple[int, int]:
    return request.param


def test_level_sizes_follow_fanout_and_top_size(shape: tuple[int, int]) -> None:
    assert [len(level) for level in SumTree(10, *shape).levels] == SHAPES[shape]


def test_set_writes_leaves_and_every_sum_above_them(shape: tuple[int, int]) -> None:
    tree = SumTree(10, *shape)
    tree.set(torch.tensor([1, 3, 9]), torch.tensor([1.0, 2.0, 4.0]))
    tree.set(torch.tensor([3, 6]), torch.tensor([0.5, 8.0]))  # overwrite one, add one
    leaves = [0, 1, 0, 0.5, 0, 0, 8, 0, 0, 4]
    assert tree.leaves.tolist() == leaves
    assert level_sums(tree) == expected_levels(leaves, shape[0], SHAPES[shape])
    assert tree.total().item() == 13.5
    if shape == (3, 2):  # written out once by hand
        assert level_sums(tree)[1:] == [[1, 0.5, 8, 4, 0, 0], [9.5, 4]]


def test_repeated_indices_keep_their_largest_value_over_the_old_one(shape: tuple[int, int]) -> None:
    tree = SumTree(10, *shape)
    tree.set(torch.tensor([2, 2, 5, 2, 5, 7]), torch.tensor([1.0, 4.0, 3.0, 2.0, 5.0, 6.0]))
    leaves = [0, 0, 4, 0, 0, 5, 0, 6, 0, 0]
    assert tree.leaves.tolist() == leaves
    assert level_sums(tree) == expected_levels(leaves, shape[0], SHAPES[shape])
    # Lower values than the leaves hold replace them: the old value takes no part in the maximum.
    tree.set(torch.tensor([5, 2, 5, 5]), torch.tensor([0.5, 1.0, 0.75, 0.25]))
    leaves = [0, 0, 1, 0, 0, 0.75, 0, 6, 0, 0]
    assert level_sums(tree) == expected_levels(leaves, shape[0], SHAPES[shape])


def test_fill_wraps_past_the_last_leaf(shape: tuple[int, int]) -> None:
    tree = SumTree(10, *shape)
    tree.fill(0, 10, 1.0)
    tree.fill(8, 4, torch.tensor(3.0, dtype=torch.float64))  # leaves 8, 9, then 0, 1
    leaves = [3, 3, 1, 1, 1, 1, 1, 1, 3, 3]
    assert tree.leaves.tolist() == leaves
    assert level_sums(tree) == expected_levels(leaves, shape[0], SHAPES[shape])
    tree.fill(3, 2, 0.0)
    assert tree.total().item() == 16.0


def test_find_returns_the_leaf_each_prefix_sum_falls_in_and_skips_empty_leaves(shape: tuple[int, int]) -> None:
    tree = SumTree(10, *shape)
    tree.set(torch.tensor([1, 3, 4, 9]), torch.tensor([1.0, 2.0, 0.5, 4.0]))
    # Prefix sums: leaf 1 covers [0, 1), leaf 3 [1, 3), leaf 4 [3, 3.5), leaf 9 [3.5, 7.5); the others are empty.
    targets = torch.tensor([0.0, 0.999, 1.0, 2.5, 3.0, 3.25, 3.5, 7.0, 7.49])
    assert tree.find(targets).tolist() == [1, 1, 3, 3, 4, 4, 9, 9, 9]


def test_stratified_draws_take_one_leaf_from_each_slice_of_the_total(shape: tuple[int, int]) -> None:
    tree = SumTree(10, *shape)
    tree.set(torch.tensor([0, 2, 5, 6]), torch.tensor([1.0, 2.0, 1.0, 4.0]))
    # Total 8, batch 8: draw k falls in [k, k + 1), which lies inside one leaf's span of the prefix sums.
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        assert tree.sample(8, generator).tolist() == [0, 2, 2, 5, 6, 6, 6, 6]


def test_draws_follow_the_leaf_values() -> None:
    tree = SumTree(300, fanout=4, top_size=8)  # three interior levels
    values = torch.zeros(300, dtype=torch.float64)
    values[[3, 64, 150, 299]] = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    tree.set(torch.arange(300), values)
    generator = torch.Generator().manual_seed(1)
    draws = torch.cat([tree.sample(7, generator) for _ in range(2000)])
    counts = torch.bincount(draws, minlength=300).double()
    assert counts.sum() == 14000 and counts[[3, 64, 150, 299]].sum() == 14000  # no empty leaf is ever drawn
    expected = 14000 * values[[3, 64, 150, 299]] / 10
    chi_square = ((counts[[3, 64, 150, 299]] - expected) ** 2 / expected).sum().item()
    assert chi_square < 16.3  # the 0.999 quantile with 3 degrees of freedom


def test_sums_of_a_million_leaves_stay_exact_over_many_writes() -> None:
    tree = SumTree(1_000_000)
    generator = torch.Generator().manual_seed(2)
    tree.fill(999_990, 20, 1.0)  # wraps to leaves 0 .. 9
    for _ in range(50):
        indices = torch.randint(1_000_000, (64,), generator=generator)
        tree.set(indices, torch.rand(64, generator=generator))
    assert torch.equal(tree.levels[1], tree.levels[0].view(-1, 64).sum(1, dtype=torch.float64))
    assert tree.total().item() == pytest.approx(tree.leaves.sum(dtype=torch.float64).item(), rel=1e-12)
    drawn = tree.sample(64, generator)
    assert bool((tree.leaves[drawn] > 0).all())


def test_state_dict_round_trip_restores_every_sum(shape: tuple[int, int]) -> None:
    tree = SumTree(10, *shape)
    tree.fill(0, 6, 2.0)
    tree.set(torch.tensor([1, 4]), torch.tensor([5.0, 0.5]))
    restored = SumTree(10, *shape)
    restored.fill(0, 10, 7.0)  # overwritten by the load, the unused leaves 6 .. 9 included
    restored.load_state_dict(saved_and_loaded(tree.state_dict(used=6)))
    assert level_sums(restored) == level_sums(tree)
    assert restored.leaves.tolist() == [2, 5, 2, 2, 0.5, 2, 0, 0, 0, 0]


def test_loading_a_tree_of_another_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit this one"):
        SumTree(10, 3, 2).load_state_dict(SumTree(10, 2, 1).state_dict(used=10))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_on_a_gpu_writes_and_draws_never_wait_for_the_host() -> None:
    tree = SumTree(1_000_000, device="cuda")
    generator = torch.Generator(device="cuda").manual_seed(0)
    indices = torch.tensor([5, 5, 999_999, 70], device="cuda")
    values = torch.tensor([1.0, 2.0, 3.0, 4.0], device="cuda")
    tree.fill(999_999, 3, torch.tensor(0.5, dtype=torch.float64, device="cuda"))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        tree.set(indices, values)
        drawn = tree.sample(64, generator)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert tree.leaves[[0, 1, 5, 70, 999_999]].tolist() == [0.5, 0.5, 2.0, 4.0, 3.0]
    assert tree.total().item() == 10.0
    assert set(drawn.tolist()) <= {0, 1, 5, 70, 999_999}


def test_a_draw_that_rounding_carries_to_the_total_is_clamped_below_the_leaves_in_use(
    shape: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = SumTree(10, *shape)
    tree.set(torch.arange(6), torch.ones(6))  # leaves 0-5 in use, 6-9 (and the padding) empty
    # u = 1 puts the last slice's draw at the total itself: the search then ends at its node's last leaf.
    monkeypatch.setattr(torch, "rand", lambda n, **kwargs: torch.ones(n, dtype=kwargs["dtype"]))
    unclamped, clamped = tree.sample(3), tree.sample(3, below=6)
    assert unclamped[-1] > 5  # an empty leaf: what `below` is for
    assert clamped.tolist() == [*unclamped[:-1].tolist(), 5]
    # Indices are inference tensors: usable to index and to write back, as a batch's indices are.
    tree.set(clamped, torch.full((3,), 2.0))
    assert tree.leaves[5] == 2.0
