"""Observation trees: one tensor, or a dict or tuple of tensors, walked by the same few functions."""

from __future__ import annotations

import torch

from rl_lightning.tree import assign, first_leaf, to_device, tree_leaves, tree_map, zeros


def test_tree_map_keeps_the_structure_and_treats_named_tuples_and_sizes_as_leaves() -> None:
    tree = {"a": torch.tensor([1, 2]), "b": (torch.tensor([3]), torch.tensor([4]))}
    doubled = tree_map(lambda x, y: x + y, tree, tree)
    assert doubled["a"].tolist() == [2, 4] and doubled["b"][1].tolist() == [8]
    assert tree_map(lambda x: x * 2, torch.tensor(3)).item() == 6  # a bare tensor is a tree of one leaf
    assert tree_map(len, torch.Size([2, 3])) == 2  # a shape is a leaf, not a tuple of ints
    assert [path for path, _ in tree_leaves(tree)] == ["a", "b.0", "b.1"]
    assert [path for path, _ in tree_leaves(torch.zeros(1))] == [""]
    assert first_leaf(tree) is tree["a"]


def test_zeros_makes_one_tensor_per_key_of_its_own_dtype_and_assign_writes_rows() -> None:
    stored = zeros({"image": (2, 2), "target": ()}, {"image": torch.uint8, "target": torch.long}, (3,), "cpu")
    assert stored["image"].shape == (3, 2, 2) and stored["image"].dtype == torch.uint8
    assert stored["target"].shape == (3,) and stored["target"].dtype == torch.long
    assign(stored, 1, {"image": torch.full((2, 2), 7, dtype=torch.uint8), "target": torch.tensor(5)})
    assert stored["image"][1].tolist() == [[7, 7], [7, 7]] and stored["target"].tolist() == [0, 5, 0]
    pair = zeros(((1,), ()), (torch.float32, torch.long), (2,), "cpu")
    assert isinstance(pair, tuple) and pair[0].shape == (2, 1) and pair[1].dtype == torch.long
    assert zeros((4,), torch.float32, (2,), "cpu").shape == (2, 4)
    assert to_device({"a": None, "b": torch.ones(1)}, "cpu")["a"] is None
