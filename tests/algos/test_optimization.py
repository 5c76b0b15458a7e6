"""How updates go through Lightning: directly where its layers would only pass them through, else through them."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from rl_lightning import DQN, PPO, SAC
from rl_lightning.algos import compat
from rl_lightning.algos.compat import DirectUpdates, LightningUpdates
from tests.helpers import CONTINUOUS_SMALL, DQN_SMALL, PPO_SMALL, parameters, trainer


class PathSeen(Callback):
    """Records which update path each fit took (the module forgets it when the fit ends)."""

    def on_train_epoch_end(self, trainer, pl_module):
        self.path = type(pl_module._updates)


def fit_taking(path, algorithm, monkeypatch, **trainer_options):
    """Fit ``algorithm`` with its updates forced through ``path``; its parameters and global_step."""
    monkeypatch.setattr("rl_lightning.algos.optimization.update_path", path)
    run = trainer(**trainer_options)
    run.fit(algorithm)
    return parameters(algorithm), run.global_step


@pytest.mark.parametrize(
    ("algorithm", "options"),
    [
        (DQN, {**DQN_SMALL, "gradient_steps": 4, "train_freq": 8}),
        (PPO, {**PPO_SMALL, "learning_rate": "lin_1e-3", "ent_coef": 0.01}),
        (SAC, CONTINUOUS_SMALL),  # three optimizers
    ],
)
def test_direct_updates_are_bitwise_those_through_lightning(algorithm, options, monkeypatch):
    direct = fit_taking(compat.update_path, algorithm(seed=5, **options), monkeypatch)
    through = fit_taking(LightningUpdates, algorithm(seed=5, **options), monkeypatch)
    assert direct[1] == through[1] > 0
    assert all(torch.equal(a, b) for a, b in zip(direct[0], through[0], strict=True))


def test_the_direct_path_only_where_lightning_would_add_nothing():
    seen = PathSeen()

    def path(module=None, **options):
        trainer(callbacks=[seen], **options).fit(module or PPO(**PPO_SMALL))
        return seen.path

    assert path() is DirectUpdates
    assert path(precision="bf16-mixed") is LightningUpdates  # loss scaling, casts: the precision plugin's work
    assert path(profiler="simple") is LightningUpdates  # a profiler times each hook

    class OwnBackward(PPO):
        def backward(self, loss, *args, **kwargs):
            loss.backward(*args, **kwargs)

    assert path(OwnBackward(**PPO_SMALL)) is LightningUpdates


def test_overridden_update_hooks_run_once_per_update_on_the_direct_path():
    calls = {"on_before_backward": 0, "on_after_backward": 0, "on_before_optimizer_step": 0}

    class Counting(PathSeen):
        def on_before_backward(self, trainer, pl_module, loss):
            assert loss.requires_grad
            calls["on_before_backward"] += 1

        def on_after_backward(self, trainer, pl_module):
            assert pl_module.q_net.advantage.weight.grad is not None
            calls["on_after_backward"] += 1

    class Logging(DQN):
        def on_before_optimizer_step(self, optimizer):
            calls["on_before_optimizer_step"] += 1
            norm = torch.nn.utils.get_total_norm([p.grad for p in self.q_net.parameters()])
            self.log("grad_norm", norm, batch_size=1)

    counting = Counting()
    run = trainer(callbacks=[counting])
    run.fit(Logging(**DQN_SMALL))
    assert counting.path is DirectUpdates
    assert set(calls.values()) == {run.global_step} and run.global_step > 0
    assert torch.isfinite(run.callback_metrics["grad_norm"])  # self.log works in a hook, as through Lightning


def test_a_module_clip_gradients_override_is_still_called(monkeypatch):
    clipped = []

    class Recording(DQN):
        def clip_gradients(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
            clipped.append(gradient_clip_val)
            super().clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    seen = PathSeen()
    run = trainer(callbacks=[seen])
    run.fit(Recording(max_grad_norm=3.0, **DQN_SMALL))
    assert seen.path is DirectUpdates and clipped == [3.0] * run.global_step
