"""The base of every algorithm: run arguments, environments, the env-step clock, updates, evaluation, logging.

What an algorithm author needs of it (the rest is plumbing):

- Declare only the algorithm's own hyperparameters, end the signature with ``**run`` and pass it on to the
  base (``super().__init__(env, ..., **run)``): the run arguments (``num_envs``, ``seed``,
  ``total_timesteps``, ...) are declared once, here, and the CLI (which follows ``**run``) lists them for
  every algorithm. The base saves every argument of every class as a hyperparameter, with its effective
  value: no ``save_hyperparameters()`` call.
- Implement ``act(observations, deterministic=False)`` (the policy, called without gradients), ``update(batch)``
  (one update: return the loss to minimise, or step the optimizers with :meth:`minimize` and return None) and
  ``configure_optimizers``. A policy with memory overrides :meth:`policy_step` instead of ``act``.
- An algorithm that masks invalid actions (``info["action_mask"]``, :mod:`rl_lightning.envs.masks`) takes
  ``act(observations, deterministic, action_masks)`` and overrides :meth:`check_action_masks`; others refuse them.
- Work that belongs once per round of updates, after its env steps (a schedule of env steps), goes into
  :meth:`start_round`.
- Record per-update scalars with ``self.update_stats.add(name=tensor)`` (logged as ``train/<name>`` once per
  epoch, no host sync) and per-epoch values with :meth:`log_epoch`.
- Whatever else changes during training goes into :meth:`rl_state_dict` / :meth:`load_rl_state_dict` (call
  ``super()``), so that resuming gives the same run as never stopping.
- Random numbers come from ``self.generator`` (the exploration stream, see :mod:`rl_lightning.seeding`);
  networks are built inside ``with self.seeded():``.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from rl_lightning import seeding
from rl_lightning.algos import checkpointing
from rl_lightning.algos.checkpointing import RunState
from rl_lightning.algos.compat import (
    FastHookAttributes,
    attached_trainer,
    expect_unused_parameters,
    quiet_lightning_warnings,
    save_init_arguments,
)
from rl_lightning.algos.masking import ActionMasking
from rl_lightning.algos.metrics import EpisodeStatistics, EpochMeans
from rl_lightning.algos.optimization import Optimization
from rl_lightning.algos.preemption import PreemptionCheckpoint
from rl_lightning.algos.reporting import Reporting
from rl_lightning.data import Collector, PolicyState, refuse_faults
from rl_lightning.envs import EnvSpec, TorchVectorEnv, Vectorization, Wrapper, env_name, make_vector_env, probe_env
from rl_lightning.errors import check_choice, check_hyperparameters
from rl_lightning.tree import tree_leaves

DEFAULT_EPOCH_STEPS = 10_000


class RLAlgorithm(FastHookAttributes, Optimization, Reporting, RunState, ActionMasking, LightningModule):
    """A LightningModule that plays its own environments (see the module docstring for what a subclass writes).

    The environments are built when the Trainer sets the module up; the env-step clock (``env_steps``, over
    all envs and processes) drives schedules and stopping; deterministic evaluation episodes are Lightning's
    validation loop; episode statistics are logged once per epoch.

    Args:
        env: a registered env id (``"CartPole-v1"``, ``"package.module:Env-v0"``), an ``Env`` subclass, or a
            factory returning an ``Env``.
        num_envs: environments stepped together in each process.
        seed: seeds the envs (``seed + rank * num_envs + i``), the network initialisation, exploration and
            replay sampling (:mod:`rl_lightning.seeding`). The same seed on the same machine (and the same number
            of processes) gives the same run.
        total_timesteps: env steps (summed over envs and processes) after which training stops.
        steps_per_epoch: env steps per epoch; validation runs and epoch metrics are logged after each. Default:
            about 10,000, rounded to what the algorithm plays between updates.
        vectorization: ``"sync"``, ``"async"`` (one subprocess per env), ``"native"`` (the env's own
            vectorized implementation, e.g. CartPole's) or ``"torch"`` (a torch-native vector env stepping all envs
            as tensors on the module's device: an id of ``rl_lightning.envs.TORCH_ENVS``, a ``TorchVectorEnv``
            subclass, or a factory called as ``env(num_envs=..., device=..., **env_kwargs)``).
        env_kwargs: keyword arguments for the env's constructor.
        wrappers: callables applied to each sub-environment, e.g. ``gymnasium.wrappers.TimeAwareObservation``.
        eval_episodes: deterministic episodes played at each validation, over all processes: under DDP each
            rank plays its share on envs of its own seeds, and the statistics are those of all the episodes.
        eval_envs: environments stepped together during evaluation (in each process).
        check_finite: stop with a :class:`~rl_lightning.errors.RunFault` naming the source when an env returns a NaN
            or infinite observation or reward, or an update's recorded value (a loss) is not finite (checked once
            per epoch); never checkpoint non-finite parameters. A numpy env's values are checked as they arrive; a
            torch env's on its device, read back at the end of each rollout, epoch and evaluation (as are a numpy
            env's under DDP, where every rank stops together), with zeros in their place until then
            (:class:`~rl_lightning.data.Collector`). ``False``: no checks (their cost: ``scripts/collection.py``).
    """

    trainer_adjustments: ClassVar[list[Callable[[Trainer], None]]] = []
    """Changes to a Trainer's defaults made when fitting starts, registered by the layers above the algorithms
    (``rl_lightning/__init__.py`` registers the env-step progress bar in place of Lightning's batch counter)."""

    several_optimizers: ClassVar[bool] = False
    """Whether ``update`` steps several optimizers (e.g. critic, actor, entropy coefficient), each backward pass
    reaching only some of the parameters, which DDP must then expect."""

    fixed_arguments: ClassVar[tuple[str, ...]] = ()
    """Arguments of a parent class that a subclass fixes (passes explicitly to ``super().__init__``, as DDPG does
    TD3's ``n_critics``): left out of the saved hyperparameters, which rebuild the subclass."""

    def __init__(
        self,
        env: EnvSpec,
        *,
        num_envs: int = 1,
        seed: int = 0,
        total_timesteps: int = 100_000,
        steps_per_epoch: int | None = None,
        vectorization: Vectorization = "sync",
        env_kwargs: dict[str, Any] | None = None,
        wrappers: Sequence[Wrapper] = (),
        eval_episodes: int = 10,
        eval_envs: int = 5,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        save_init_arguments(self, inspect.currentframe(), ignore=list(self.fixed_arguments))
        check_hyperparameters(num_envs=num_envs, total_timesteps=total_timesteps, steps_per_epoch=steps_per_epoch)
        check_hyperparameters(eval_episodes=eval_episodes, eval_envs=eval_envs)
        check_choice("vectorization", vectorization, ("sync", "async", "native", "torch"))
        self.env_spec, self.num_envs, self.seed = env, num_envs, seed
        self.total_timesteps, self.steps_per_epoch = total_timesteps, steps_per_epoch or DEFAULT_EPOCH_STEPS
        self.vectorization, self.env_kwargs, self.wrappers = vectorization, dict(env_kwargs or {}), list(wrappers)
        self.eval_episodes, self.eval_envs, self.check_finite = eval_episodes, eval_envs, check_finite
        self.env_traits = probe_env(env, self.env_kwargs, self.wrappers, vectorization=vectorization)
        self.observation_space, self.action_space = self.env_traits.observation_space, self.env_traits.action_space

        self.env_steps = 0
        self.collector: Collector | None = None
        self.eval_collector: Collector | None = None
        self.generator: torch.Generator | None = None  # the exploration stream, made on the module's device
        self.train_episodes, self.val_episodes = EpisodeStatistics(), EpisodeStatistics()
        self.update_stats = EpochMeans()  # what update() records, logged as train/<name> once per epoch
        self._epoch_start: tuple[float, int] = (time.perf_counter(), 0)
        self._pending_global_rng: dict[str, Any] | None = None  # see RunState.on_train_start
        self.automatic_optimization = False  # training_step takes a round of updates (see optimization.py)
        self._quiet = contextlib.ExitStack()

    # ----------------------------------------------------------------------------------------- what a run is
    @property
    def env_name(self) -> str:
        return env_name(self.env_spec)

    @property
    def world_size(self) -> int:
        trainer = attached_trainer(self)
        return trainer.world_size if trainer is not None else 1

    @contextlib.contextmanager
    def seeded(self) -> Iterator[None]:
        """Run a block (network initialisation) under torch's global RNG seeded for ``init``, then restore it."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeding.stream_seed(self.seed, "init"))
            yield

    def make_env(
        self, num_envs: int, render_mode: str | None = None, evaluation: bool = False,
        device: torch.device | str | None = None,
    ) -> gym.vector.VectorEnv | TorchVectorEnv:
        """A vector env of this module's environment: a torch env's tensors on ``device`` (default: the module's);
        with ``evaluation``, its training-only wrappers off (:class:`~rl_lightning.envs.TrainingSignal`)."""
        return make_vector_env(
            self.env_spec,
            num_envs,
            vectorization=self.vectorization,
            env_kwargs=self.env_kwargs,
            wrappers=self.wrappers,
            render_mode=render_mode,
            device=self.device if device is None else device,
            evaluation=evaluation,
        )

    def make_collector(self, num_envs: int, device: torch.device, evaluation: bool = False) -> Collector:
        """A collector over :meth:`make_env`'s vector env, reading episodes from the env where it records them."""
        vector_env = self.make_env(num_envs, evaluation=evaluation, device=device)
        # Under DDP a fault waits for the next check point, where all ranks stop together (refuse_faults).
        return Collector(
            vector_env, device, self.check_finite, env_records=self.env_traits.records_episodes,
            stop_at_once=self.world_size == 1,
        )

    # ----------------------------------------------------------------------------------------- the policy contract
    def act(self, observations: Tensor, deterministic: bool = False) -> Tensor:
        """The actions of a memoryless policy for a batch of observations (called without gradients)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither act() nor policy_step()")

    def policy_step(
        self, observations: Tensor, state: PolicyState, episode_starts: Tensor, deterministic: bool = False,
        action_masks: Tensor | None = None,
    ) -> tuple[Tensor, PolicyState]:
        """What collection, evaluation, videos and ``rl-lightning evaluate`` call: actions and the next state.

        ``state`` is what the previous call returned for these envs (None at the start); ``episode_starts``
        (bool, ``(num_envs,)``) marks the envs whose observation is the first of an episode, where a policy with
        memory resets it. A memoryless policy (the default) is :meth:`act`, and its state stays None.
        ``action_masks`` (bool, ``(num_envs, n)``, True: valid) is given only where the env gives masks; they go
        to ``act`` after :meth:`check_action_masks`.
        """
        if action_masks is None:
            return self.act(observations, deterministic), state
        self.check_action_masks(action_masks)
        return self.act(observations, deterministic, action_masks), state

    # ----------------------------------------------------------------------------------------- Lightning hooks
    def configure_callbacks(self) -> list[Callback]:
        self._quiet.enter_context(quiet_lightning_warnings())  # a fit's first hook, before Lightning's loop check
        # The last hook before Lightning creates its loggers' runs: loggers that name runs read the description.
        for logger in self.loggers:
            if hasattr(logger, "describe_run"):
                logger.describe_run(self.run_description())
            if hasattr(logger, "use_run_folder"):  # a logger writing files of its own puts them in the run's folder
                logger.use_run_folder(self.trainer.default_root_dir)
        checkpointing.use_resume_checkpoints(self.trainer)
        self.take_over_clipping(self.trainer)
        for adjust in self.trainer_adjustments:
            adjust(self.trainer)
        return [PreemptionCheckpoint()]

    def setup(self, stage: str) -> None:
        strategy = self.trainer.strategy
        checkpointing.use_atomic_checkpoint_io(strategy)
        if self.several_optimizers:
            expect_unused_parameters(strategy)
        device, rank = strategy.root_device, self.global_rank
        if stage == "fit" and self.collector is None:
            self.collector = self.make_collector(self.num_envs, device)
            self.collector.reset(self.seed, rank)
            if self.collector.action_masks is not None:
                self.check_action_masks(self.collector.action_masks)  # before anything is trained or written
            self.generator = seeding.generator(self.seed, "exploration", rank, device)
        if stage in ("fit", "validate") and self.eval_collector is None and self.eval_share() > 0:
            self.eval_collector = self.make_collector(min(self.eval_envs, self.eval_share()), device, evaluation=True)

    def teardown(self, stage: str) -> None:
        for collector in (self.collector, self.eval_collector):
            if collector is not None:
                collector.close()
        self.collector = self.eval_collector = None
        self.give_back_clipping()
        self._quiet.close()

    def start_round(self) -> None:
        """Called by ``training_step`` once the env steps of a round are played, before its updates (e.g. to set a
        learning rate that follows the env steps, which do not change during a round)."""

    def training_step(self, dataloader_iter: Iterator) -> None:
        # Lightning passes the iterator itself to a training_step that asks for it, and then does not
        # prefetch: the next round (and the env steps played before it) comes after this one's updates.
        try:
            batches, _, _ = next(dataloader_iter)
        except StopIteration:  # the epoch's env steps are played
            if self.check_finite:  # before validation and checkpoints see the updated networks
                refuse_faults(self.collector)
                self.refuse_non_finite_updates()
            return
        self.start_round()
        # A round's batches come one at a time, each made after the previous update. Our datasets make them on
        # the module's device (unless buffer_device says otherwise), and moving a batch walks it at a cost of a
        # few percent of a small update: only move what needs it.
        device = self.device
        for batch in batches:
            if not all(field is None or _on_device(field, device) for field in batch):
                batch = move_data_to_device(batch, device)
            self.take_updates(batch)


def _on_device(field: Any, device: torch.device) -> bool:
    """Whether a batch field (a tensor, or a dict or tuple of them for Dict or Tuple observations) is on ``device``."""
    if isinstance(field, Tensor):
        return field.device == device
    return all(isinstance(leaf, Tensor) and leaf.device == device for _, leaf in tree_leaves(field))
