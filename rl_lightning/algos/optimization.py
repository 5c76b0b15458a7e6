"""How an algorithm's updates go through Lightning: a round of updates per training step, under manual optimization.

Lightning's per-step loop (hooks, the closure, the progress and logging bookkeeping) costs about a quarter of a
small network's update, so ``training_step`` takes a whole round (an off-policy round's ``gradient_steps``
batches, an on-policy rollout's minibatches) and steps the optimizers itself. The Trainer's features stay:
backward passes and optimizer steps go through Lightning (``manual_backward``, ``LightningOptimizer.step``), so
precision plugins, loss scaling and DDP's gradient all-reduce apply to every update, and ``trainer.global_step``
still counts optimizer steps; the Trainer's ``gradient_clip_val`` still wins over an algorithm's
``max_grad_norm``; checkpoints still fall at epoch ends, which rounds never cross. Where those layers would only
pass an update through (one device, 32-bit precision, no profiler), :class:`~.compat.DirectUpdates` takes it
directly, calling only the hooks that someone overrides.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from torch import Tensor

from rl_lightning.algos.compat import (
    LightningUpdates,
    attached_trainer,
    restore_gradient_clipping,
    take_over_gradient_clipping,
    update_path,
)


class Optimization(LightningModule):
    """Mixin of :class:`~rl_lightning.RLAlgorithm`: the update plumbing every algorithm shares."""

    _trainer_clipping: tuple[float | None, str | None] | None = None
    """The Trainer's ``gradient_clip_val`` and algorithm, while a fit runs (see :meth:`take_over_clipping`)."""
    _updates: LightningUpdates | None = None
    """How this fit's updates go through Lightning (see :func:`.compat.update_path`), chosen at its first update,
    when the Trainer's callbacks are final."""

    def make_optimizer(
        self,
        params: Any,
        learning_rate: float,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        **kwargs: Any,
    ) -> torch.optim.Optimizer:
        """An optimizer, fused where torch has a fused kernel for it (Adam on CPU: about 4x faster per step).

        Lightning's mixed-precision plugins cannot clip the gradients of a fused optimizer, so under
        ``*-mixed`` precision the multi-tensor (foreach) kernel is used instead.
        """
        if optimizer_class in (torch.optim.Adam, torch.optim.AdamW) and self.device.type in ("cpu", "cuda"):
            trainer = attached_trainer(self)
            mixed = trainer is not None and "mixed" in str(trainer.precision)
            kwargs.setdefault("foreach" if mixed else "fused", True)
        return optimizer_class(params, lr=learning_rate, **kwargs)

    def minimize(self, optimizer: torch.optim.Optimizer, loss: Tensor) -> None:
        """One step of ``optimizer`` (one of ``self.optimizers()``) on ``loss``.

        The backward pass and the step go through Lightning (precision plugins, loss scaling, DDP, the update
        hooks), or directly where Lightning would only pass them through (:func:`.compat.update_path`). Gradients
        are clipped to the Trainer's ``gradient_clip_val`` when it has one, else to the algorithm's
        ``max_grad_norm`` when it has one.
        """
        if self._updates is None:
            self._updates = update_path(self)
        optimizer.zero_grad()
        self._updates.backward(loss)
        clip_val, clip_algorithm = self._trainer_clipping or (None, None)
        if clip_val is None:
            clip_val, clip_algorithm = getattr(self, "max_grad_norm", None), "norm"
        if clip_val:
            self._updates.clip(optimizer, clip_val, clip_algorithm)
        self._updates.step(optimizer)

    def take_updates(self, batch: Any) -> None:
        """One update on ``batch``: ``update`` returns a loss for the module's one optimizer, or None (it stepped
        its optimizers itself with :meth:`minimize`, or took no step: then every rank must take none)."""
        loss = self.update(batch)
        if loss is not None:
            self.minimize(self.optimizers(), loss)

    def take_over_clipping(self, trainer: Trainer) -> None:
        """Apply the Trainer's ``gradient_clip_val`` in :meth:`minimize` (Lightning refuses it under manual
        optimization before any hook could apply it: see :func:`.compat.take_over_gradient_clipping`)."""
        if self._trainer_clipping is None:
            self._trainer_clipping = take_over_gradient_clipping(trainer)

    def give_back_clipping(self) -> None:
        """Put the Trainer's clipping settings back, at the end of a fit."""
        trainer = attached_trainer(self)
        if self._trainer_clipping is not None and trainer is not None:
            restore_gradient_clipping(trainer, self._trainer_clipping)
        self._trainer_clipping = None
        self._updates = None
