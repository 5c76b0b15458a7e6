"""Every place where rl-lightning touches a Lightning internal, each with why (Lightning 2.4-2.6).

Nothing else in the package reads or writes a private attribute of Lightning's classes: when Lightning
changes one of these, this is the one file to update.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from types import FrameType
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy, Strategy
from lightning.pytorch.trainer import call
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import Tensor

PLAIN_ATTRIBUTES = frozenset({"_current_fx_name"})
"""Attributes set at every training step that are never parameters, modules or buffers.

Lightning sets ``_current_fx_name`` before and after every hook it calls, many times per training step, and
``nn.Module.__setattr__`` first checks each value against parameters, modules and buffers: those assignments
were about a tenth of a small update's time. :class:`FastHookAttributes` stores them directly.
"""

_NOISE = (
    # Our datasets are iterable by design (num_workers=0, batch_size=None) and training_step takes the
    # iterator itself (to take a batch after each update, with no prefetch): these warnings would only confuse.
    r".*does not have many workers.*",
    r".*Found `dataloader_iter` argument in the `training_step`.*",
    r".*You are using the `dataloader_iter` step flavor.*",
)


class FastHookAttributes:
    """Mixin for a LightningModule: the attributes in :data:`PLAIN_ATTRIBUTES` skip ``nn.Module.__setattr__``."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


def attached_trainer(module: LightningModule) -> Trainer | None:
    """The Trainer running ``module``, or None (``module.trainer`` raises when there is none)."""
    return module._trainer


def save_init_arguments(module: LightningModule, frame: FrameType, ignore: list[str] | None = None) -> None:
    """Lightning's ``save_hyperparameters`` from ``frame`` (an ``__init__`` of ``module``'s class chain).

    Lightning collects the arguments of every ``__init__`` from ``frame`` outward (the outermost class's values
    win, ``**kwargs`` flattened), so calling this from the base class's ``__init__`` records every argument of
    every class with its effective value. Tuples (``hidden_sizes=(64, 64)``) are stored as lists: loggers write
    hyperparameters to ``hparams.yaml``, where a tuple becomes ``!!python/tuple``, which ``yaml.safe_load``
    refuses. Lightning warns about a network passed as an argument; it is saved with the module anyway.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is an instance of `nn.Module` and is already saved.*")
        LightningModule.save_hyperparameters(module, ignore=ignore, frame=frame)
    for hparams in (module._hparams, getattr(module, "_hparams_initial", {})):
        for key, value in hparams.items():
            if isinstance(value, tuple):
                hparams[key] = list(value)


def take_over_gradient_clipping(trainer: Trainer) -> tuple[float | None, str | None]:
    """The Trainer's ``gradient_clip_val`` and ``gradient_clip_algorithm``, which the module now applies itself.

    Our ``training_step`` takes a round of updates under manual optimization (see
    :mod:`rl_lightning.algos.optimization`), and Lightning refuses a Trainer with ``gradient_clip_val`` for a
    manually optimized module before the first hook runs, although ``clip_gradients`` works there. Called from
    ``configure_callbacks`` (the model hook before that check), this clears the Trainer's value and returns it,
    so that ``Trainer(gradient_clip_val=...)`` keeps its meaning: it wins over the algorithm's ``max_grad_norm``.
    :func:`restore_gradient_clipping` puts it back when the fit ends.
    """
    taken = (trainer.gradient_clip_val, trainer.gradient_clip_algorithm)
    trainer.gradient_clip_val = None
    return taken


def restore_gradient_clipping(trainer: Trainer, taken: tuple[float | None, str | None]) -> None:
    """Undo :func:`take_over_gradient_clipping` (a Trainer may fit or validate again)."""
    trainer.gradient_clip_val, trainer.gradient_clip_algorithm = taken


def expect_unused_parameters(strategy: Strategy) -> None:
    """Tell DDP that a backward pass may reach only some parameters (before the strategy wraps the module).

    An algorithm with several optimizers takes a backward pass per network (critic, actor, entropy
    coefficient), each reaching only some of the parameters. ``DDPStrategy`` takes ``find_unused_parameters``
    only in its constructor; the algorithm knows it needs it only once it is set up, so it is set in the
    strategy's stored DDP arguments.
    """
    if isinstance(strategy, DDPStrategy):
        strategy._ddp_kwargs["find_unused_parameters"] = True


@contextlib.contextmanager
def quiet_lightning_warnings() -> Iterator[None]:
    """Silence, inside the block only, Lightning's warnings that do not apply to RL datasets (see ``_NOISE``)."""
    with warnings.catch_warnings():
        for message in _NOISE:
            warnings.filterwarnings("ignore", message=message)
        yield



_UPDATE_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


class LightningUpdates:
    """An update's backward pass, gradient clipping and optimizer step through Lightning's layers (the strategy and
    the precision plugin: loss scaling, DDP's gradient all-reduce, the hooks), as any manually optimized
    LightningModule takes them."""

    def __init__(self, module: LightningModule) -> None:
        self.module = module

    def backward(self, loss: Tensor) -> None:
        self.module.manual_backward(loss)

    def clip(self, optimizer: LightningOptimizer, value: float, algorithm: str | None) -> None:
        self.module.clip_gradients(optimizer, gradient_clip_val=value, gradient_clip_algorithm=algorithm)

    def step(self, optimizer: LightningOptimizer) -> None:
        optimizer.step()


class DirectUpdates(LightningUpdates):
    """:class:`LightningUpdates` without the layers that would only pass an update through.

    Where the strategy is one device, the precision plain (``32-true``), the profiler Lightning's pass-through one
    and the module's ``backward`` Lightning's own, the strategy and the precision plugin add nothing to an update
    but the calls of three hooks on every callback and on the module, about a tenth of a small network's update on
    a CPU. This calls only the hooks that someone overrides (through Lightning's hook callers, so that ``self.log``
    in a hook works as before), clips as the plain precision plugin does (through the module's ``clip_gradients``
    where it overrides it), and steps the optimizer between the manual loop's own before- and after-step calls,
    which count ``global_step``. Made by :func:`update_path`.
    """

    def __init__(self, module: LightningModule) -> None:
        super().__init__(module)
        self.trainer = trainer = module.trainer
        self.callback_hooks = {
            name for name in _UPDATE_HOOKS if any(is_overridden(name, each, Callback) for each in trainer.callbacks)
        }
        self.module_hooks = {name for name in _UPDATE_HOOKS if is_overridden(name, module, LightningModule)}
        self.module_clips = is_overridden("clip_gradients", module, LightningModule)

    def hook(self, name: str, *args: Any) -> None:
        if name in self.callback_hooks:
            call._call_callback_hooks(self.trainer, name, *args)
        if name in self.module_hooks:
            call._call_lightning_module_hook(self.trainer, name, *args)

    def backward(self, loss: Tensor) -> None:
        self.hook("on_before_backward", loss)
        loss.backward()
        self.hook("on_after_backward")

    def clip(self, optimizer: LightningOptimizer, value: float, algorithm: str | None) -> None:
        if self.module_clips:
            super().clip(optimizer, value, algorithm)
            return
        parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
        if algorithm == "value":
            torch.nn.utils.clip_grad_value_(parameters, value)
        else:
            torch.nn.utils.clip_grad_norm_(parameters, value)

    def step(self, optimizer: LightningOptimizer) -> None:
        optimizer._on_before_step()  # the manual loop's: global_step and the profiler's "optimizer_step"
        self.hook("on_before_optimizer_step", optimizer)
        optimizer.optimizer.step()
        optimizer._on_after_step()


def update_path(module: LightningModule) -> LightningUpdates:
    """How ``module`` takes its updates in the running fit: :class:`DirectUpdates` where the fit's strategy,
    precision and profiler allow it, else through Lightning's layers."""
    trainer = module.trainer
    direct = (
        type(trainer.strategy) is SingleDeviceStrategy
        and type(trainer.precision_plugin) is Precision
        and isinstance(trainer.profiler, PassThroughProfiler)
        and not is_overridden("backward", module, LightningModule)
    )
    return DirectUpdates(module) if direct else LightningUpdates(module)
