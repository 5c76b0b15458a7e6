"""Shared Lightning wiring of every algorithm: environments, the env-step clock, evaluation, metrics."""

from __future__ import annotations

import contextlib
import inspect
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader
from torchmetrics import Metric

from rl_lightning.algos.checkpointing import (
    default_checkpoint_callback,
    global_rng_state,
    resume_checkpoint,
    set_global_rng_state,
    use_atomic_checkpoint_io,
)
from rl_lightning.algos.metrics import EpisodeStatistics, EpochMeans
from rl_lightning.data import Collector, Episodes, evaluate_policy
from rl_lightning.distributed import gather_on_rank_zero
from rl_lightning.envs import EnvSpec, make_vector_env, probe_spaces
from rl_lightning.envs.factory import Vectorization, Wrapper, env_name
from rl_lightning.errors import ConfigurationError, check_positive
from rl_lightning.loggers import WandbLogger

# Our datasets are iterable by design (num_workers=0, batch_size=None): Lightning's warnings about it would
# only confuse.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
warnings.filterwarnings("ignore", message=r".*Found `dataloader_iter` argument in the `training_step`.*")
warnings.filterwarnings("ignore", message=r".*You are using the `dataloader_iter` step flavor.*")
warnings.filterwarnings("ignore", message=r".*is an instance of `nn.Module` and is already saved.*")

EVAL_SEED_OFFSET = 1_000_003
"""Evaluation envs are seeded ``seed + EVAL_SEED_OFFSET`` so they never replay a training episode."""

DEFAULT_EPOCH_STEPS = 10_000

_PLAIN_ATTRIBUTES = frozenset({"_current_fx_name", "_skip_optimizer_step"})
"""Attributes set at every step that are never parameters, modules or buffers (see ``RLAlgorithm.__setattr__``)."""


def torch_dtype(space: gym.Space) -> torch.dtype:
    """The tensor dtype that stores samples of ``space`` (float64 becomes float32)."""
    if isinstance(space, gym.spaces.Discrete):
        return torch.long
    dtype = np.dtype(space.dtype)
    if dtype == np.float64:
        return torch.float32
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


class RLAlgorithm(LightningModule):
    """The base of every algorithm: a LightningModule that plays its own environments.

    Subclasses implement ``act(observations, deterministic=False)`` (the policy, called without
    gradients), ``update(batch)`` (one update: return the loss to minimise, or step the optimizers
    yourself and return None) and ``train_dataloader``. This class builds the environments when the
    Trainer sets the module up, keeps the env-step clock (``env_steps``, over all envs and processes)
    that schedules and stopping use, plays deterministic evaluation episodes as Lightning's validation
    loop, and logs episode statistics once per epoch.

    Args:
        env: a registered env id (``"CartPole-v1"``, ``"package.module:Env-v0"``), an ``Env`` subclass, or a
            factory returning an ``Env``.
        num_envs: environments stepped together in each process.
        seed: seeds the envs (``seed + rank * num_envs + i``), the network initialisation, exploration and
            replay sampling. The same seed on the same machine (and the same number of processes) gives the
            same run.
        total_timesteps: env steps (summed over envs and processes) after which training stops.
        steps_per_epoch: env steps per epoch; validation runs and epoch metrics are logged after each.
        vectorization: ``"sync"``, ``"async"`` (one subprocess per env) or ``"native"`` (the env's own
            vectorized implementation, e.g. CartPole's).
        env_kwargs: keyword arguments for the env's constructor.
        wrappers: callables applied to each sub-environment, e.g. ``gymnasium.wrappers.FlattenObservation``.
        eval_episodes: deterministic episodes played at each validation, over all processes: under DDP each
            rank plays its share on envs of its own seeds, and the statistics are those of all the episodes.
        eval_envs: environments stepped together during evaluation (in each process).
    """

    def __init__(
        self,
        env: EnvSpec,
        num_envs: int,
        *,
        seed: int,
        total_timesteps: int,
        steps_per_epoch: int,
        vectorization: Vectorization,
        env_kwargs: dict[str, Any] | None,
        wrappers: Sequence[Wrapper],
        eval_episodes: int,
        eval_envs: int,
    ) -> None:
        super().__init__()
        check_positive(num_envs=num_envs, total_timesteps=total_timesteps, steps_per_epoch=steps_per_epoch)
        check_positive(eval_episodes=eval_episodes, eval_envs=eval_envs)
        if vectorization not in ("sync", "async", "native"):
            raise ConfigurationError(
                f"vectorization={vectorization!r} must be one of 'sync', 'async', 'native'."
            )
        self.env_spec, self.num_envs, self.seed = env, num_envs, seed
        self.total_timesteps, self.steps_per_epoch = total_timesteps, steps_per_epoch
        self.vectorization, self.env_kwargs, self.wrappers = (
            vectorization,
            dict(env_kwargs or {}),
            list(wrappers),
        )
        self.eval_episodes, self.eval_envs = eval_episodes, eval_envs
        self.observation_space, self.action_space = probe_spaces(env, self.env_kwargs, self.wrappers)

        self.env_steps = 0
        self.collector: Collector | None = None
        self.eval_collector: Collector | None = None
        self.generator: torch.Generator | None = None
        self.train_episodes = EpisodeStatistics()
        self.val_episodes = EpisodeStatistics()
        self.update_stats = EpochMeans()  # what update() records, logged as train/<name> once per epoch
        self._epoch_start: tuple[float, int] = (time.perf_counter(), 0)
        self._pending_global_rng: dict[str, Any] | None = None  # restored when training starts, see on_train_start
        self._skip_optimizer_step = False  # set by skip_update(), read by optimizer_step()

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets _current_fx_name before and after every hook it calls, about 36 times per gradient
        # step; nn.Module.__setattr__ first checks the value against parameters, modules and buffers, which
        # made those assignments about a tenth of a small update's time. A hook name (or None) is none of them,
        # nor is the flag that training_step sets at every step.
        if name in _PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # ----------------------------------------------------------------------------------------- construction helpers
    def save_hyperparameters(self, *args: Any, ignore: Any = None, frame: Any = None, logger: bool = True) -> None:
        """Lightning's ``save_hyperparameters``, with tuples (``hidden_sizes=(64, 64)``) stored as lists.

        Loggers write the hyperparameters to ``hparams.yaml``; a tuple there becomes ``!!python/tuple``, which
        ``yaml.safe_load`` refuses to read.
        """
        frame = frame or inspect.currentframe().f_back  # Lightning reads the caller's arguments from its frame
        super().save_hyperparameters(*args, ignore=ignore, frame=frame, logger=logger)
        for hparams in (self._hparams, getattr(self, "_hparams_initial", {})):
            for key, value in hparams.items():
                if isinstance(value, tuple):
                    hparams[key] = list(value)

    @property
    def env_name(self) -> str:
        return env_name(self.env_spec)

    @contextlib.contextmanager
    def seeded(self, offset: int = 0) -> Iterator[None]:
        """Run a block (network initialisation) under torch's global RNG seeded from ``seed``, then restore it."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + offset)
            yield

    def make_env(self, num_envs: int, render_mode: str | None = None) -> gym.vector.VectorEnv:
        """A vector env of this module's environment."""
        return make_vector_env(
            self.env_spec,
            num_envs,
            vectorization=self.vectorization,
            env_kwargs=self.env_kwargs,
            wrappers=self.wrappers,
            render_mode=render_mode,
        )

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
            mixed = self._trainer is not None and "mixed" in str(self.trainer.precision)
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

    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self._trainer is not None else 1

    def run_description(self) -> dict[str, Any]:
        """What identifies the run beside the hyperparameters: logged to every logger's config when fit starts.

        W&B runs take their default name, group and tags from it (see ``rl_lightning.loggers.WandbLogger``).
        """
        networks = {
            name: f"{type(child).__module__}.{type(child).__qualname__}"
            for name, child in self.named_children()
            if not isinstance(child, Metric)
        }
        return {
            "algorithm": type(self).__name__,
            "env_id": self.env_name,
            "num_envs": self.num_envs,
            "seed": self.seed,
            "networks": networks,
        }

    def log_epoch(self, name: str, value: Tensor | float, **kwargs: Any) -> None:
        """``self.log`` of one number per epoch (or evaluation); under DDP, its mean over the ranks.

        Most of what is logged is already the same on every rank (the global env-step count, the schedules, episode
        statistics that torchmetrics combined over ranks): the mean is then that value.
        """
        self.log(name, value, batch_size=1, sync_dist=True, **kwargs)

    def log_env_steps(self) -> None:
        """Log ``env_steps`` with the metrics of this epoch or evaluation, and make it their x-axis.

        Lightning takes a logged ``step`` as the step of every logger (TensorBoard, CSV, W&B's
        ``trainer/global_step``), instead of its count of optimizer steps.
        """
        self.log_epoch("env_steps", float(self.env_steps))
        self.log_epoch("step", float(self.env_steps))

    # ----------------------------------------------------------------------------------------- Lightning hooks
    def configure_callbacks(self) -> list[Callback]:
        # The last hook before Lightning creates its loggers' runs: W&B runs are named after this one here.
        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                logger.describe_run(self.run_description())
        # Lightning's default ModelCheckpoint() keeps one checkpoint per epoch but no last.ckpt: put one in its
        # place that writes last.ckpt every epoch. A Trainer given checkpoint callbacks of its own keeps them.
        if default_checkpoint_callback(self.trainer) is not None:
            return [resume_checkpoint()]
        return []

    def setup(self, stage: str) -> None:
        strategy = self.trainer.strategy
        use_atomic_checkpoint_io(strategy)
        if isinstance(strategy, DDPStrategy) and not self.automatic_optimization:
            # Each of the manual backward passes (critic, actor, entropy coefficient) reaches only some of the
            # parameters; DDP must be told to expect that. Set here, before the strategy wraps the module.
            strategy._ddp_kwargs["find_unused_parameters"] = True
        device = strategy.root_device
        rank = self.global_rank
        if stage == "fit" and self.collector is None:
            self.collector = Collector(self.make_env(self.num_envs), device)
            self.collector.reset(self.seed, rank)
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(self.seed + rank)
        if stage in ("fit", "validate") and self.eval_collector is None and self.eval_share() > 0:
            self.eval_collector = Collector(self.make_env(min(self.eval_envs, self.eval_share())), device)

    def teardown(self, stage: str) -> None:
        for collector in (self.collector, self.eval_collector):
            if collector is not None:
                collector.close()
        self.collector = self.eval_collector = None

    def on_fit_start(self) -> None:
        for logger in self.loggers:
            logger.log_hyperparams(self.run_description())
        max_epochs = self.trainer.max_epochs
        epochs_needed = math.ceil((self.total_timesteps - self.env_steps) / self.steps_per_epoch)
        if (
            max_epochs is not None
            and max_epochs >= 0
            and self.trainer.current_epoch + epochs_needed > max_epochs
        ):
            rank_zero_warn(
                f"Trainer(max_epochs={max_epochs}) stops training before total_timesteps={self.total_timesteps} "
                f"env steps ({epochs_needed} epochs of {self.steps_per_epoch} steps remain). Pass max_epochs=-1 "
                f"to let total_timesteps decide."
            )

    def on_train_start(self) -> None:
        # The process-wide generators are restored last, just before the first epoch of a resumed run: the
        # Trainer draws from torch's while it starts (each DataLoader iterator takes a seed from it).
        if self._pending_global_rng is not None:
            set_global_rng_state(self._pending_global_rng, self.device)
            self._pending_global_rng = None

    def training_step(self, dataloader_iter: Iterator) -> Tensor | None:
        # Lightning passes the iterator itself to a training_step that asks for it, and then does not
        # prefetch: the next batch (and the env steps played before it) comes after this update.
        self._skip_optimizer_step = False
        try:
            batch, _, _ = next(dataloader_iter)
        except StopIteration:
            return self.skip_update()  # the epoch's env steps are played
        # Our datasets make their batches on the module's device (unless buffer_device says otherwise), and
        # moving a batch walks it at a cost of a few percent of a small update: only move what needs it.
        device = self.device
        if not (isinstance(batch, tuple) and all(isinstance(t, Tensor) and t.device == device for t in batch)):
            batch = move_data_to_device(batch, device)
        return self.update(batch)

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

    def on_train_epoch_start(self) -> None:
        self._epoch_start = (time.perf_counter(), self.env_steps)

    def on_train_epoch_end(self) -> None:
        episodes = self.collector.pop_episodes()
        self.train_episodes.update(episodes.returns, episodes.lengths)
        stats = self.train_episodes.compute()
        self.train_episodes.reset()
        if stats["episodes"] > 0:
            self.log_epoch("train/episode_return", stats["return_mean"].float(), prog_bar=True)
            self.log_epoch("train/episode_length", stats["length_mean"].float())
        for name, mean in self.update_stats.pop().items():
            self.log_epoch(f"train/{name}", mean)
        started, steps_then = self._epoch_start
        elapsed = max(time.perf_counter() - started, 1e-9)
        self.log_env_steps()
        self.log_epoch("env_steps_per_sec", (self.env_steps - steps_then) / elapsed, prog_bar=True)
        if self.env_steps >= self.total_timesteps:
            self.trainer.should_stop = True

    def val_dataloader(self) -> DataLoader:
        # One item per validation round: validation_step plays all the episodes itself.
        return DataLoader([0], batch_size=None)

    def eval_share(self) -> int:
        """The evaluation episodes this process plays: its share of ``eval_episodes`` (rank 0 takes the first extra)."""
        share, extra = divmod(self.eval_episodes, self.world_size)
        return share + (self.global_rank < extra)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        share = self.eval_share()
        episodes = Episodes.none()
        if share > 0:
            # Rank r's envs take seeds from seed + EVAL_SEED_OFFSET + r * eval_envs on: no two ranks share one.
            episodes = evaluate_policy(
                lambda obs: self.act(obs, deterministic=True),
                self.eval_collector,
                share,
                seed=self.seed + EVAL_SEED_OFFSET + self.global_rank * self.eval_envs,
            )
        # Updated on every rank, even with no episode: compute() then combines the episodes of all ranks.
        self.val_episodes.update(episodes.returns, episodes.lengths)

    def on_validation_epoch_end(self) -> None:
        stats = self.val_episodes.compute()
        self.val_episodes.reset()
        for key in ("return_mean", "return_std", "length_mean"):
            self.log_epoch(f"val/{key}", stats[key].float(), prog_bar=key == "return_mean")
        self.log_env_steps()

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

    # ----------------------------------------------------------------------------------------- checkpoints
    def rl_state_dict(self) -> dict[str, Any]:
        """What moves besides the parameters: the env-step clock, the collector and its envs, the generator.

        Subclasses add their own state (buffers, counters) and call ``super()``. Keep it to tensors, numbers,
        strings and bytes, so that checkpoints load with ``torch.load(weights_only=True)``.
        """
        return {
            "env_steps": self.env_steps,
            "collector": None if self.collector is None else self.collector.state_dict(),
            "generator": None if self.generator is None else self.generator.get_state(),
        }

    def load_rl_state_dict(self, state: dict[str, Any]) -> None:
        self.env_steps = state["env_steps"]
        if self.collector is not None and state["collector"] is not None:
            self.collector.load_state_dict(state["collector"])
        if self.generator is not None and state["generator"] is not None:
            self.generator.set_state(state["generator"])

    def restart_episodes(self) -> None:
        """Start new episodes in every training env, seeded from ``seed`` and the env step count.

        What resuming does when the checkpoint holds no state of the envs (they could not be pickled).
        Subclasses also drop what belongs to the cut-off episodes, and call ``super()``.
        """
        self.collector.reset(self.seed + self.env_steps, self.global_rank)

    def _identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed by this module."""
        cls = type(self)
        return {
            "algorithm": f"{cls.__module__}.{cls.__qualname__}",
            "env": self.env_name,
            "observation_space": repr(self.observation_space),
            "action_space": repr(self.action_space),
            "num_envs": self.num_envs,
        }

    def _checkpoint_source(self) -> str:
        """The checkpoint being loaded, as error messages name it."""
        path = self._trainer.ckpt_path if self._trainer is not None else None
        return f"checkpoint {path}" if path else "the checkpoint"

    def _check_resumable(self, saved: dict[str, Any] | None) -> None:
        """Refuse, before anything is loaded, a checkpoint of another algorithm, env, space or number of envs."""
        source = self._checkpoint_source()
        if saved is None:
            raise ConfigurationError(
                f"{source} was not written by an rl-lightning algorithm, so {type(self).__name__} cannot resume it."
            )
        ours = self._identity()
        ancestors = {f"{c.__module__}.{c.__qualname__}" for c in type(self).__mro__}
        labels = {
            "algorithm": "algorithm",
            "env": "environment",
            "observation_space": "observation space",
            "action_space": "action space",
            "num_envs": "num_envs",
        }
        differences = [
            f"{label}: {saved[key]} in the checkpoint, {ours[key]} here"
            for key, label in labels.items()
            if saved.get(key) != ours[key] and not (key == "algorithm" and saved.get(key) in ancestors)
        ]
        if differences:
            raise ConfigurationError(
                f"cannot resume from {source}: it was written by another run ({'; '.join(differences)}). Resume "
                f"with the configuration that wrote it, or start a new run without ckpt_path."
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Rank 0's state at the top, as in a single-process checkpoint; under DDP every other rank's under
        # "ranks", keyed by rank. Every rank runs this hook (Lightning's save is collective); rank 0 writes.
        state = {**self.rl_state_dict(), "global_rng": global_rng_state(self.device)}
        if self.world_size > 1:
            state = move_data_to_device(state, "cpu")  # a tensor pickled on cuda:1 would unpickle there on rank 0
        states = gather_on_rank_zero(state)
        if states is None:
            return  # not rank 0: this copy of the checkpoint is not written
        own, *others = states
        checkpoint["rl_lightning"] = {**self._identity(), "world_size": self.world_size, **own}
        if others:
            checkpoint["rl_lightning"]["ranks"] = dict(enumerate(others, start=1))

    def _check_world_size(self, saved: dict[str, Any]) -> None:
        """Refuse to resume a fit on another number of processes than the one that wrote the checkpoint."""
        saved_world_size = saved.get("world_size", 1)
        if saved_world_size != self.world_size:
            raise ConfigurationError(
                f"cannot resume from {self._checkpoint_source()}: it was written by {saved_world_size} process(es) "
                f"(world size {saved_world_size}) and this run has {self.world_size}. Each process's envs, buffer and "
                f"generators are in the checkpoint and cannot be split or merged over another number of processes. "
                f"Resume with devices x num_nodes = {saved_world_size}, or start a new run from its networks with "
                f"{type(self).__name__}.load_from_checkpoint(path) (new envs and buffers)."
            )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("rl_lightning")
        self._check_resumable(saved)
        if self.collector is not None:  # resuming a fit, not only reading weights (load_from_checkpoint)
            self._check_world_size(saved)
            if self.global_rank > 0:
                saved = saved["ranks"][self.global_rank]
        self.load_rl_state_dict(saved)
        collector_state = saved["collector"]
        if self.collector is not None and collector_state is not None and collector_state["env"] is None:
            rank_zero_warn(
                f"The checkpoint holds no state of the training envs ({collector_state['env_error']}): the resumed "
                f"run starts new episodes, seeded from the env step count, and does not repeat the uninterrupted run."
            )
            self.restart_episodes()
        if self.collector is not None:
            self._pending_global_rng = saved["global_rng"]
