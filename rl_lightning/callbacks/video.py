"""Videos of deterministic episodes: during training (:class:`EvalVideo`) and by ``rl-lightning evaluate --video``."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv, VectorWrapper
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_warn

from rl_lightning import seeding
from rl_lightning.data import Collector, Episodes, evaluate_policy
from rl_lightning.errors import ConfigurationError

if TYPE_CHECKING:
    from rl_lightning.algos.base import RLAlgorithm

VIDEO_INSTALL_HINT = "pip install 'rl-lightning[video]'"


class RenderError(ConfigurationError):
    """The environment cannot render ``rgb_array`` frames; the message says why."""


def check_video_writer() -> None:
    """Refuse early when the mp4 encoder (imageio with its ffmpeg binary) is not installed."""
    if importlib.util.find_spec("imageio") is None or importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ConfigurationError(f"writing mp4 videos needs imageio and imageio-ffmpeg: {VIDEO_INSTALL_HINT}.")


def _first_frame(vector_env: VectorEnv) -> np.ndarray:
    """The current frame of the vector env's first sub-env, padded to even sides.

    H.264 in the yuv420p pixel format that every player reads needs even sides: the last row or column is
    repeated where a side is odd.
    """
    frames = vector_env.render()
    if frames is None or len(frames) == 0 or frames[0] is None:
        raise ValueError("render() returned no frame")
    frame = np.asarray(frames[0], dtype=np.uint8)
    return np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")


def _give_sdl_a_runtime_dir() -> None:
    """Point ``XDG_RUNTIME_DIR`` at an empty private folder (mode 0700, removed at exit) where it is unset or no folder.

    pygame's SDL, which gymnasium's classic-control envs render with even to arrays, probes for a Wayland display
    when it starts; on a machine without a desktop session (a server, a container, a batch job) that probe prints
    ``error: XDG_RUNTIME_DIR is invalid or not set in the environment.`` though nothing failed. In an empty
    folder it finds no display and says nothing. A folder the session set is kept as it is.
    """
    if os.path.isdir(os.environ.get("XDG_RUNTIME_DIR", "")):
        return
    folder = tempfile.mkdtemp(prefix="rl-lightning-runtime-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["XDG_RUNTIME_DIR"] = folder


def open_render_env(algorithm: RLAlgorithm, seed: int) -> VectorEnv:
    """One env of ``algorithm``'s environment that renders RGB frames, reset with ``seed``.

    Raises:
        RenderError: the env cannot render ``rgb_array`` frames.
    """
    _give_sdl_a_runtime_dir()
    vector_env = None
    try:
        vector_env = algorithm.make_env(1, render_mode="rgb_array", evaluation=True)
        vector_env.reset(seed=seed)
        _first_frame(vector_env)
    except Exception as error:  # whatever fails here, constructor or render(), the cause is the render mode
        if vector_env is not None:
            vector_env.close()
        raise RenderError(
            f"{algorithm.env_name} cannot render rgb_array frames ({type(error).__name__}: {error})"
        ) from None
    return vector_env


class _EpisodeRecorder(VectorWrapper):
    """Streams the episodes of sub-env 0 into mp4 files, one per path, frame by frame as they are played.

    An episode of L steps gets L + 1 frames: the first observation's and one after each step. Nothing piles
    up in memory, which matters for long episodes of large frames (Atari: about 100 kB a frame).
    """

    def __init__(self, env: VectorEnv, paths: Sequence[Path], fps: int) -> None:
        super().__init__(env)
        self.paths, self.fps = list(paths), fps
        self.writer: Any = None
        self.episode_ended = False

    def _start_episode(self) -> None:
        import imageio.v2 as imageio

        self._close_writer()
        if self.paths:
            path = self.paths.pop(0)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = imageio.get_writer(path, fps=self.fps, codec="libx264", macro_block_size=1, quality=7)
            self.writer.append_data(_first_frame(self.env))

    def _close_writer(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        result = self.env.reset(**kwargs)
        self.episode_ended = False
        self._start_episode()
        return result

    def step(self, actions: Any) -> tuple[Any, ...]:
        result = self.env.step(actions)
        if self.episode_ended:  # this was sub-env 0's autoreset step (NEXT_STEP mode): a new episode begins
            self.episode_ended = False
            self._start_episode()
        elif self.writer is not None:
            self.writer.append_data(_first_frame(self.env))
            _, _, terminations, truncations, _ = result
            if terminations[0] or truncations[0]:
                self.episode_ended = True
                self._close_writer()
        return result

    def close(self, **kwargs: Any) -> None:
        self._close_writer()
        super().close(**kwargs)


def record_episodes(algorithm: RLAlgorithm, paths: Sequence[Path], seed: int, fps: int = 30) -> Episodes:
    """Play ``len(paths)`` deterministic episodes, one after another on one rendering env, and write episode
    ``i`` to the mp4 ``paths[i]``, from its first observation to its final one.

    The episodes are those that ``evaluate_policy`` plays with one env and ``seed``.

    Raises:
        RenderError: the env cannot render ``rgb_array`` frames.
        ConfigurationError: no mp4 encoder is installed.
    """
    check_video_writer()
    recorder = _EpisodeRecorder(open_render_env(algorithm, seed), paths, fps)
    collector = Collector(recorder, algorithm.device, env_records=algorithm.env_traits.records_episodes)
    try:
        with torch.no_grad():
            return evaluate_policy(algorithm, collector, len(paths), seed)
    finally:
        collector.close()


def run_directory(trainer: Trainer) -> Path:
    """Where this run's local files live: the W&B run's folder, else the first logger's (or Trainer's) directory."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            return Path(logger.experiment.dir).parent
    return Path(trainer.log_dir or trainer.default_root_dir)


class EvalVideo(Callback):
    """Record one deterministic episode as an mp4 at chosen evaluation (validation) rounds.

    The episode is the first one of the evaluation (same seed), played on a separate env made with
    ``render_mode="rgb_array"``. It is written to ``<run dir>/videos/eval_env_steps=<N>.mp4`` (the run dir
    is the W&B run's folder, else the logger's version folder) and, with a ``WandbLogger``, logged to W&B as
    ``val/video`` at env step ``N``. An env that cannot render is skipped with a one-line warning.

    Needs ``imageio`` and ``imageio-ffmpeg`` (``pip install 'rl-lightning[video]'``).

    Args:
        every_n_evals: record the first evaluation round, then every ``every_n_evals``-th, and always the one
            after the last training epoch.
        fps: frames per second of the video.
    """

    def __init__(self, every_n_evals: int = 5, fps: int = 30) -> None:
        if every_n_evals < 1 or fps < 1:
            raise ConfigurationError(f"EvalVideo(every_n_evals={every_n_evals}, fps={fps}): both must be >= 1.")
        check_video_writer()
        self.every_n_evals, self.fps = every_n_evals, fps
        self.rounds = 0
        self.renders = True
        self.paths: list[Path] = []
        """The videos written so far."""

    def on_validation_end(self, trainer: Trainer, pl_module: RLAlgorithm) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not self.renders:
            return
        round_index, self.rounds = self.rounds, self.rounds + 1
        final = pl_module.env_steps >= pl_module.total_timesteps
        if round_index % self.every_n_evals and not final:
            return
        path = run_directory(trainer) / "videos" / f"eval_env_steps={pl_module.env_steps}.mp4"
        try:
            seed = seeding.eval_env_seed(pl_module.seed, 0, pl_module.eval_envs)  # the first evaluation episode's
            record_episodes(pl_module, [path], seed=seed, fps=self.fps)
        except RenderError as error:
            rank_zero_warn(f"EvalVideo: no videos for this run: {error}.")
            self.renders = False
            return
        self.paths.append(path)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                steps = pl_module.env_steps
                video = wandb.Video(str(path), format="mp4")
                logger.experiment.log({"val/video": video, "env_steps": steps, "trainer/global_step": steps})
