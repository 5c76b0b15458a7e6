"""How an algorithm's updates go through Lightning: optimizers, manual steps, skipped steps, gradient clipping."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor

from rl_lightning.algos.compat import attached_trainer


class Optimization(LightningModule):
    """Mixin of :class:`~rl_lightning.RLAlgorithm`: the update plumbing every algorithm shares.

    The Trainer's ``gradient_clip_val`` wins over an algorithm's ``max_grad_norm``; precision goes through
    ``manual_backward``; a step that must change nothing under DDP still joins the gradient all-reduce.
    """

    _skip_optimizer_step: bool

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
        """One step of ``optimizer`` on ``loss`` under manual optimization (algorithms with several optimizers).

        The backward pass and the step go through Lightning (precision plugins, loss scaling); gradients are
        clipped to the algorithm's ``max_grad_norm`` when it has one, since Lightning refuses the Trainer's
        ``gradient_clip_val`` under manual optimization.
        """
        optimizer.zero_grad()
        self.manual_backward(loss)
        max_grad_norm = getattr(self, "max_grad_norm", None)
        if max_grad_norm:
            self.clip_gradients(optimizer, gradient_clip_val=max_grad_norm, gradient_clip_algorithm="norm")
        optimizer.step()

    def skip_update(self, loss: Tensor | None = None) -> Tensor | None:
        """What ``training_step`` returns for a step that leaves the parameters and optimizers unchanged.

        Under manual optimization: None. Under automatic optimization Lightning refuses None from a DDP
        process, since every rank must join each backward pass's gradient all-reduce: the step's ``loss`` (or
        a zero reaching every parameter) goes through the backward pass, and :meth:`optimizer_step` then
        leaves the optimizer alone. Every rank must skip the same steps.
        """
        if not self.automatic_optimization:
            return None
        self._skip_optimizer_step = True
        if loss is None:
            loss = sum(parameter.sum() for parameter in self.parameters() if parameter.requires_grad) * 0.0
        return loss

    def optimizer_step(
        self,
        epoch: int,
        batch_idx: int,
        optimizer: torch.optim.Optimizer,
        optimizer_closure: Any = None,
    ) -> None:
        # The closure runs training_step and its backward pass; only then is it known whether to step.
        loss = optimizer_closure()
        if not self._skip_optimizer_step:
            optimizer.step(closure=lambda: loss)

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        # The Trainer's gradient_clip_val wins; otherwise the algorithm's own max_grad_norm applies.
        if gradient_clip_val is None:
            gradient_clip_val, gradient_clip_algorithm = getattr(self, "max_grad_norm", None), "norm"
        if gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
