"""The collectives in one process: identities, so that single-process code needs no special case.

Their multi-process behaviour is tested through real DDP runs in ``tests/algos/test_ddp.py``.
"""

import torch

from rl_lightning import distributed


def test_in_one_process_each_collective_returns_this_process_value():
    assert distributed.world_size() == 1
    tensor = torch.tensor([1.0, 2.0])
    assert distributed.sum_over_ranks(tensor) is tensor and tensor.tolist() == [1.0, 2.0]
    assert distributed.min_over_ranks(7) == 7
    state = {"buffer": torch.arange(3)}
    assert distributed.gather_on_rank_zero(state) == [state]
    assert distributed.first_over_ranks("env 0 returned ...") == "env 0 returned ..."
    assert distributed.first_over_ranks(None) is None
