"""Weights & Biases for RL runs: a Lightning ``WandbLogger`` plotted against env steps, and a reader of offline runs.

Switch it on with ``--trainer.logger rl_lightning.loggers.WandbLogger`` (CLI) or ``Trainer(logger=WandbLogger())``.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from rl_lightning import metric_names
from rl_lightning.errors import ConfigurationError

EVAL_KEYS = metric_names.VAL_METRICS
"""The metrics of one deterministic evaluation (``RLAlgorithm``'s validation round)."""

REACHABILITY_TIMEOUT_S = 5.0
"""How long an online run waits for the W&B server to answer before it goes offline instead."""


def _server_reachable(url: str, timeout: float) -> bool:
    """Whether an HTTP server answers at ``url`` within ``timeout`` seconds, through the environment's proxies.

    The probe runs in a daemon thread joined with a timeout, because name resolution ignores socket timeouts.
    """
    answered: list[bool] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
        except urllib.error.HTTPError:  # an error status is still an answer
            pass
        except (OSError, ValueError):
            return
        answered.append(True)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answered)


class WandbLogger(LightningWandbLogger):
    """Lightning's ``WandbLogger``, set up for RL runs.

    - **Run name, group and tags** default to ``<algorithm>-<env>-s<seed>``, ``<algorithm>-<env>`` (so the
      seeds of one configuration sit together) and ``[<algorithm>, <env>]``, from the
      :class:`~rl_lightning.RLAlgorithm` being trained (see :meth:`describe_run`). Arguments given here win.
    - **The run config** holds the algorithm's hyperparameters and its run description: algorithm, env id,
      number of envs, seed and the class of each network.
    - **Env steps are the x-axis** of every metric (``define_metric("*", step_metric="env_steps")``).
    - **The final evaluation** (the last ``val/*`` metrics logged, and ``val/env_steps``, the env step they
      were measured at) goes into the run summary when training ends.
    - **Checkpoints as artifacts** with ``log_checkpoints=True``: every checkpoint file a ``ModelCheckpoint``
      wrote and kept is uploaded when training ends (successfully or not), one version of the artifact
      ``model-<run id>`` each, with the evaluation current when the file was written in its metadata
      (``val/return_mean``, ``val/env_steps``, ...); the newest file gets the alias ``latest``, a monitoring
      callback's best file ``best``.
    - **No network, no hang**: a run asked to be online (``WANDB_MODE`` unset or ``online``) whose W&B server
      does not answer within a few seconds, or that has no credentials, is recorded offline instead, with a
      warning naming the ``wandb sync`` command that uploads it later. The training is never lost to a
      network problem, and never waits minutes on wandb's own connection timeout.

    Args:
        project: the W&B project (default: ``$WANDB_PROJECT``, else ``rl-lightning``).
        name: the run's display name (default ``<algorithm>-<env>-s<seed>``).
        group: the run's group (default ``<algorithm>-<env>``).
        tags: the run's tags (default ``[<algorithm>, <env>]``).
        save_dir: where ``wandb/`` with the run's local files is written (default: ``$WANDB_DIR``, else the run's
            folder, the Trainer's ``default_root_dir``, beside its checkpoints; wandb's ``dir`` is the same).
        offline: record offline (``wandb sync`` uploads later); same as ``WANDB_MODE=offline``.
        log_checkpoints: upload the checkpoints as artifacts when training ends.
        **kwargs: passed to ``wandb.init`` (e.g. ``entity``, ``notes``, ``mode``).
    """

    def __init__(
        self,
        project: str | None = None,
        name: str | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
        save_dir: str | None = None,
        offline: bool = False,
        log_checkpoints: bool = False,
        **kwargs: Any,
    ) -> None:
        if kwargs.pop("log_model", False):
            raise ConfigurationError("WandbLogger(log_model=...): use log_checkpoints=True to upload checkpoints.")
        # Where the user chose no folder, the run's folder is used once it is known (use_run_folder).
        self._folder_chosen = bool(save_dir or kwargs.get("dir") or os.environ.get("WANDB_DIR"))
        super().__init__(
            name=name,
            project=project or os.environ.get("WANDB_PROJECT", "rl-lightning"),
            save_dir=save_dir or os.environ.get("WANDB_DIR", "."),
            offline=offline,
            group=group,
            tags=tags,
            **kwargs,
        )
        if self._wandb_init.get("anonymous") is None:
            # Lightning passes anonymous=None when not asked, which wandb warns about on every run as a
            # setting with no effect; one the user asked for stays, with wandb's warning.
            self._wandb_init.pop("anonymous", None)
        self.log_checkpoints = log_checkpoints
        self.last_evaluation: dict[str, float] = {}
        """The ``val/*`` metrics of the last evaluation logged, with ``val/env_steps``."""
        self._checkpoints: dict[str, dict[str, Any]] = {}  # path -> its mtime and the evaluation before it
        self._best_checkpoints: dict[str, str] = {}  # each monitoring ModelCheckpoint's current best file

    # ----------------------------------------------------------------------------------------- the run
    def describe_run(self, description: Mapping[str, Any]) -> None:
        """Default name, group and tags from an RL algorithm's :meth:`~rl_lightning.RLAlgorithm.run_description`.

        Arguments given to the constructor win. Takes effect only before the run is created: the algorithm
        calls it from ``configure_callbacks``, the last hook before Lightning creates its loggers' runs.
        """
        if self._experiment is not None:
            return
        algorithm, env_id, seed = (description.get(key) for key in ("algorithm", "env_id", "seed"))
        defaults = {
            "name": f"{algorithm}-{env_id}-s{seed}",
            "group": f"{algorithm}-{env_id}",
            "tags": [str(algorithm), str(env_id)],
        }
        for key, value in defaults.items():
            if self._wandb_init.get(key) is None:
                self._wandb_init[key] = value
        self._name = self._wandb_init["name"]

    def use_run_folder(self, folder: str | os.PathLike) -> None:
        """Write ``wandb/`` under ``folder`` (the Trainer's ``default_root_dir``, one run's folder), unless a folder
        was chosen (``save_dir``, ``dir`` or ``$WANDB_DIR``). Called with :meth:`describe_run`, before the run
        starts."""
        if self._folder_chosen or self._experiment is not None:
            return
        Path(folder).mkdir(parents=True, exist_ok=True)
        self._wandb_init["dir"] = self._save_dir = os.fspath(folder)

    def _go_offline(self, reason: str) -> None:
        rank_zero_warn(
            f"W&B: {reason}; recording this run offline instead (upload it later with `wandb sync "
            f"<run dir>`, the folder `wandb/offline-run-*` under {self._save_dir!r}; set WANDB_MODE=offline "
            f"to skip this check)."
        )
        self._wandb_init["mode"] = "offline"

    def _check_online(self) -> None:
        """Go offline, with a warning, when an online run's W&B server cannot be reached."""
        import wandb

        if self._offline or self._wandb_init.get("mode") in ("offline", "dryrun", "disabled"):
            return
        settings = wandb.setup().settings  # resolves WANDB_MODE, WANDB_BASE_URL and the settings files
        if settings.mode not in ("online", "run"):
            return
        if not _server_reachable(settings.base_url, REACHABILITY_TIMEOUT_S):
            self._go_offline(f"no answer from {settings.base_url} (waited up to {REACHABILITY_TIMEOUT_S:.0f} s)")

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The ``wandb`` run, created on first use (online if W&B can be reached, else offline)."""
        import wandb

        if self._experiment is None:
            self._check_online()
            try:
                super().experiment  # noqa: B018 (the property creates the run)
            except wandb.errors.Error as error:  # e.g. no API key: without one an online run cannot start
                if self._wandb_init.get("mode") == "offline":
                    raise
                self._go_offline(f"an online run could not start ({type(error).__name__}: {error})")
                super().experiment  # noqa: B018
            # Lightning's default x-axis is trainer/global_step (gradient steps); RL curves are read in env steps.
            self._experiment.define_metric("env_steps")
            self._experiment.define_metric("*", step_metric="env_steps", step_sync=True)
        return self._experiment

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if EVAL_KEYS[0] in metrics:
            self.last_evaluation = {key: float(metrics[key]) for key in EVAL_KEYS if key in metrics}
            if "env_steps" in metrics:
                self.last_evaluation["val/env_steps"] = int(metrics["env_steps"])
        super().log_metrics(metrics, step)

    # ----------------------------------------------------------------------------------------- checkpoints
    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        """Note which files the callback (re)wrote, with the evaluation they were written after."""
        if not self.log_checkpoints:
            return
        for path in (checkpoint_callback.last_model_path, *checkpoint_callback.best_k_models):
            if path and os.path.isfile(path) and self._checkpoints.get(path, {}).get("mtime") != os.path.getmtime(path):
                self._checkpoints[path] = {"mtime": os.path.getmtime(path), **self.last_evaluation}
        if checkpoint_callback.monitor and checkpoint_callback.best_model_path:
            self._best_checkpoints[checkpoint_callback.state_key] = checkpoint_callback.best_model_path

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._experiment is None:
            return
        if self.last_evaluation:
            self._experiment.summary.update(self.last_evaluation)
        if self.log_checkpoints:
            self._upload_checkpoints()

    def _upload_checkpoints(self) -> None:
        import wandb

        # Oldest first: W&B gives the alias "latest" to the version logged last.
        for path, noted in sorted(self._checkpoints.items(), key=lambda item: item[1]["mtime"]):
            if not os.path.isfile(path):  # a top-k file that a better one replaced
                continue
            metadata = {key: value for key, value in noted.items() if key != "mtime"}
            metadata["original_filename"] = os.path.basename(path)
            artifact = wandb.Artifact(f"model-{self._experiment.id}", type="model", metadata=metadata)
            artifact.add_file(path, name="model.ckpt")
            best = path in self._best_checkpoints.values()
            self._experiment.log_artifact(artifact, aliases=["best"] if best else [])


# --------------------------------------------------------------------------------------------- offline runs
_BLOCK_SIZE = 32 * 1024
_HEADER_SIZE = 7  # file header: b":W&B", magic 0xBEE1, version; record header: crc32, length, type
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _records(path: Path) -> Iterator[bytes]:
    """The records of a ``.wandb`` file (LevelDB's log format: 32 KiB blocks, records split across them).

    Stops at the first incomplete or corrupt record, which is where a run that is still writing (or crashed)
    ends.
    """
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    position, pending = _HEADER_SIZE, b""
    while position + _HEADER_SIZE <= len(data):
        room = _BLOCK_SIZE - position % _BLOCK_SIZE
        if room < _HEADER_SIZE:  # a block's zero-filled tail
            position += room
            continue
        checksum, length, kind = struct.unpack("<IHB", data[position : position + _HEADER_SIZE])
        payload = data[position + _HEADER_SIZE : position + _HEADER_SIZE + length]
        position += _HEADER_SIZE + length
        if len(payload) < length or zlib.crc32(payload, zlib.crc32(bytes([kind]))) != checksum:
            return
        if kind == _FULL:
            yield payload
        elif kind == _FIRST:
            pending = payload
        elif kind == _MIDDLE:
            pending += payload
        elif kind == _LAST:
            yield pending + payload


def _items(items: Any) -> dict[str, Any]:
    """A dict of recorded key/value items; a nested key (W&B stores media that way) becomes nested dicts."""
    values: dict[str, Any] = {}
    for item in items:
        *parents, key = [item.key] if item.key else list(item.nested_key)
        target = values
        for parent in parents:
            target = target.setdefault(parent, {})
        target[key] = json.loads(item.value_json)
    return values


@dataclass
class WandbOfflineRun:
    """What a W&B run recorded locally: read from its ``run-<id>.wandb`` file (offline runs write nothing else)."""

    path: Path
    name: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    """One dict per ``log`` call, in order."""
    step_metrics: dict[str, str] = field(default_factory=dict)
    """``define_metric``: metric name or glob -> its x-axis metric."""
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    """``{"name", "type", "aliases", "metadata"}`` of each logged artifact."""
    finished: bool = False
    """Whether the run's exit is recorded (W&B may still be writing the file for a moment after ``finish()``)."""


def read_wandb_offline_run(run_dir: str | os.PathLike) -> WandbOfflineRun:
    """Read the run in ``run_dir`` (``wandb/offline-run-*``, or the ``.wandb`` file itself) without the network."""
    from wandb.proto import wandb_internal_pb2

    run_dir = Path(run_dir)
    files = [run_dir] if run_dir.is_file() else sorted(run_dir.glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no run-*.wandb file in {run_dir}")
    run = WandbOfflineRun(files[0])
    for payload in _records(files[0]):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.name, run.group, run.tags = record.run.display_name, record.run.run_group, list(record.run.tags)
            run.config.update(_items(record.run.config.update))
        elif kind == "config":
            run.config.update(_items(record.config.update))
        elif kind == "history":
            run.history.append(_items(record.history.item))
        elif kind == "summary":
            run.summary.update(_items(record.summary.update))
        elif kind == "metric" and record.metric.step_metric:
            run.step_metrics[record.metric.name or record.metric.glob_name] = record.metric.step_metric
        elif kind == "artifact":
            artifact = record.artifact
            run.artifacts.append(
                {
                    "name": artifact.name,
                    "type": artifact.type,
                    "aliases": list(artifact.aliases),
                    "metadata": json.loads(artifact.metadata or "{}"),
                }
            )
        elif kind == "exit":
            run.finished = True
    run.config.pop("_wandb", None)
    return run
