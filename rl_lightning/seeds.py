"""Many seeds of one configuration in one command: ``rl-lightning fit --config X.yaml --seeds 0-4 --parallel 2``.

``rl-lightning fit`` hands its command line here when it holds ``--seeds``. The launcher's own options are taken
out, and every seed runs as a ``python -m rl_lightning.cli fit`` process of its own with the rest of the command
line plus ``--model.init_args.seed S --seed_everything S --trainer.default_root_dir <root>/seed_S``:

- ``<root>`` is ``--trainer.default_root_dir`` when given, else the config's ``trainer.default_root_dir``, else
  ``runs/<config file stem>``. Each seed's folder holds its run as a single ``fit`` would write it (the CSV log
  in ``lightning_logs/version_N/``, ``checkpoints/``) and ``fit.log``, the process's output (appended to on a
  rerun). With a W&B logger the runs of all seeds share one group (``<algorithm>-<env>``), and the W&B files go
  to the seed's folder unless ``WANDB_DIR`` is set.
- Locally (the default), at most ``--parallel`` seeds run at a time, each with ``OMP_NUM_THREADS=1`` unless it
  is set; a failed seed is reported (exit status, the end of its ``fit.log``) while the others go on, and the
  command exits with status 1 if any seed failed.
- ``--ckpt_path last`` resumes every seed from its ``<root>/seed_S/checkpoints/last.ckpt``, starts the seeds that
  have none, and skips the finished ones: a seed is finished when its ``last.ckpt`` records at least
  ``total_timesteps`` env steps (the value on the command line or in the config, else the checkpoint's own).
- ``--launcher slurm`` submits the seeds as one SLURM array job through submitit instead, passing every
  ``--slurm_<name> VALUE`` to submitit (``slurm_partition``, ``slurm_time`` in minutes, ``slurm_gpus_per_node``,
  ``slurm_cpus_per_task``, ``slurm_mem``, ``slurm_account``, ``slurm_qos``, ``slurm_constraint``, ...:
  submitit's ``SlurmExecutor`` parameters, each written as the sbatch option of that name).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
import yaml

from rl_lightning.algos.checkpointing import READ_ERRORS
from rl_lightning.errors import ConfigurationError

LOG_NAME = "fit.log"
"""Each seed's output, in its folder."""

TAIL_LINES = 12
"""How many of a failed seed's last log lines are shown."""

LAUNCHERS = ("local", "slurm")
_VALUED_OPTIONS = ("--seeds", "--parallel", "--launcher")
_EXAMPLES = {"--seeds": "0-4", "--parallel": "2", "--launcher": "slurm"}
_SLURM_PREFIX = "--slurm_"
_POLL_S = 0.2


@dataclass(frozen=True)
class SeedRun:
    """One seed's ``fit`` process: its command line and the folder its run and ``fit.log`` go to."""

    seed: int
    folder: Path
    command: tuple[str, ...]

    @property
    def log(self) -> Path:
        return self.folder / LOG_NAME


# ------------------------------------------------------------------------------------------------ the command line
def parse_seeds(spec: str) -> list[int]:
    """The seeds of ``--seeds``: ``0-4`` (both ends included), ``0,3,7``, or both (``0-2,10``), in the order given."""
    seeds: list[int] = []
    for item in spec.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", item)
        if match is None:
            raise ConfigurationError(
                f"--seeds {spec!r}: {item.strip()!r} is not a seed or a range; write e.g. --seeds 0-4 (seeds 0 to 4) "
                f"or --seeds 0,3,7."
            )
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if last < first:
            raise ConfigurationError(
                f"--seeds {spec!r}: the range {first}-{last} is empty; write the smaller seed first ({last}-{first})."
            )
        seeds.extend(range(first, last + 1))
    repeated = sorted(seed for seed, count in Counter(seeds).items() if count > 1)
    if repeated:
        raise ConfigurationError(f"--seeds {spec!r} names seed {repeated[0]} twice; each seed runs once.")
    return seeds


def split_launcher_options(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Take ``--seeds``, ``--parallel``, ``--launcher`` and ``--slurm_*`` (``--name VALUE`` or ``--name=VALUE``) out
    of ``argv``: returns them by name without dashes, and the rest of ``argv``, which goes to every seed's ``fit``."""
    options: dict[str, str] = {}
    rest: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        name, equals, value = token.partition("=")
        if name not in _VALUED_OPTIONS and not name.startswith(_SLURM_PREFIX):
            rest.append(token)
            continue
        if not equals:
            value = next(tokens, None)
            if value is None or value.startswith("--"):
                raise ConfigurationError(f"{name} needs a value, e.g. {name} {_EXAMPLES.get(name, 'VALUE')}.")
        if name.lstrip("-") in options:
            raise ConfigurationError(f"{name} is given twice.")
        options[name.lstrip("-")] = value
    return options, rest


def option_values(argv: list[str], *names: str) -> list[str]:
    """Every value given to one of ``names`` in ``argv`` (``--name VALUE`` or ``--name=VALUE``), in order."""
    values = []
    for index, token in enumerate(argv):
        name, equals, value = token.partition("=")
        if name in names:
            if equals:
                values.append(value)
            elif index + 1 < len(argv):
                values.append(argv[index + 1])
    return values


def _without_option(argv: list[str], name: str) -> list[str]:
    """``argv`` without ``name`` and its value."""
    kept, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == name:
            skip = True
        elif not token.startswith(f"{name}="):
            kept.append(token)
    return kept


def config_value(fit_args: list[str], section: str, key: str, option_names: tuple[str, ...]) -> Any:
    """A setting as ``fit`` would see it, as far as can be told without building anything: the last value on the
    command line, else the last ``--config`` file that sets ``<section>...<key>`` (directly or under ``init_args``)."""
    given = option_values(fit_args, *option_names)
    if given:
        return given[-1]
    value = None
    for config in option_values(fit_args, "--config", "-c"):
        path = Path(config)
        if not path.is_file():
            continue
        content = yaml.safe_load(path.read_text()) or {}
        node = content.get(section) if isinstance(content, dict) else None
        if isinstance(node, dict):
            for mapping in (node, node.get("init_args")):
                if isinstance(mapping, dict) and mapping.get(key) is not None:
                    value = mapping[key]
    return value


def run_root(fit_args: list[str]) -> Path:
    """Where the seeds' folders go: ``default_root_dir`` of the command line or config, else ``runs/<config stem>``."""
    root = config_value(fit_args, "trainer", "default_root_dir", ("--trainer.default_root_dir",))
    if root is not None:
        return Path(root)
    configs = option_values(fit_args, "--config", "-c")
    if not configs:
        raise ConfigurationError(
            "--seeds needs a --config (its seeds go to runs/<config name>/seed_S) or --trainer.default_root_dir DIR "
            "(they go to DIR/seed_S)."
        )
    return Path("runs") / Path(configs[0]).stem


def seed_runs(fit_args: list[str], seeds: list[int], root: Path) -> list[SeedRun]:
    """The ``fit`` command of each seed: ``fit_args`` with the seed and its folder under ``root``."""
    common = _without_option(fit_args, "--trainer.default_root_dir")
    runs = []
    for seed in seeds:
        folder = root / f"seed_{seed}"
        command = (
            sys.executable,
            "-m",
            "rl_lightning.cli",
            *common,
            "--model.init_args.seed",
            str(seed),
            "--seed_everything",
            str(seed),
            "--trainer.default_root_dir",
            str(folder),
        )
        runs.append(SeedRun(seed, folder, command))
    return runs


def check_fit_args(fit_args: list[str]) -> None:
    if not fit_args or fit_args[0] != "fit":
        raise ConfigurationError("--seeds runs `rl-lightning fit`: write rl-lightning fit --config X.yaml --seeds 0-4.")
    for name in ("--model.init_args.seed", "--model.seed", "--seed_everything"):
        if option_values(fit_args, name):
            raise ConfigurationError(f"--seeds sets each run's seed: leave out {name}.")
    ckpt_paths = option_values(fit_args, "--ckpt_path")
    if ckpt_paths and ckpt_paths[-1] != "last":
        raise ConfigurationError(
            f"--ckpt_path {ckpt_paths[-1]} with --seeds: each seed resumes its own checkpoint, so only --ckpt_path "
            f"last is accepted."
        )
    shared = _checkpoint_dirpath(fit_args)
    if shared is not None:
        raise ConfigurationError(
            f"--seeds: a checkpoint callback writes to dirpath {shared}, one folder for every seed, where they would "
            f"overwrite each other's checkpoints. Leave dirpath out: each seed's then go to <root>/seed_S/checkpoints."
        )


def _checkpoint_dirpath(fit_args: list[str]) -> str | None:
    """A ``dirpath`` given to a callback on the command line or in a ``--config`` file, if any."""
    for token in fit_args:
        name, _, value = token.partition("=")
        if name.startswith("--trainer.callbacks") and name.endswith(".dirpath"):
            return value or "(on the command line)"
    for config in option_values(fit_args, "--config", "-c"):
        path = Path(config)
        content = yaml.safe_load(path.read_text()) if path.is_file() else None
        trainer = content.get("trainer") if isinstance(content, dict) else None
        callbacks = trainer.get("callbacks") if isinstance(trainer, dict) else None
        for callback in callbacks if isinstance(callbacks, list) else []:
            init_args = callback.get("init_args") if isinstance(callback, dict) else None
            if isinstance(init_args, dict) and init_args.get("dirpath"):
                return str(init_args["dirpath"])
    return None


# ------------------------------------------------------------------------------------------------ finished seeds
def finished_steps(folder: Path, total_timesteps: int | None) -> tuple[int, int] | None:
    """``(env steps done, total_timesteps)`` when ``folder/checkpoints/last.ckpt`` shows a finished training, else None.

    ``total_timesteps`` is the run's target if known (from the command line or config), else the checkpoint's own.
    A checkpoint that cannot be read counts as unfinished: resuming it then says what is wrong with it.
    """
    path = folder / "checkpoints" / "last.ckpt"
    if not path.is_file():
        return None
    checkpoint = None
    # mmap: only the few numbers needed are read, not the replay buffer. A checkpoint holding Python objects (an env
    # class) needs weights_only=False; resuming it unpickles them anyway.
    for weights_only in (True, False):
        try:
            checkpoint = torch.load(path, map_location="cpu", mmap=True, weights_only=weights_only)
            break
        except READ_ERRORS:
            continue
    if not isinstance(checkpoint, dict):
        return None
    done = checkpoint.get("rl_lightning", {}).get("env_steps")
    total = (
        total_timesteps
        if total_timesteps is not None
        else checkpoint.get("hyper_parameters", {}).get("total_timesteps")
    )
    if done is None or total is None or int(done) < int(total):
        return None
    return int(done), int(total)


# ------------------------------------------------------------------------------------------------ running
def _child_environment(folder: Path) -> dict[str, str]:
    environment = dict(os.environ)
    # Seeds share the cores: one intra-op thread each, unless the user chose otherwise.
    environment.setdefault("OMP_NUM_THREADS", "1")
    environment.setdefault("WANDB_DIR", str(folder))
    environment["PYTHONUNBUFFERED"] = "1"  # fit.log follows the run as it goes (`tail -f`)
    return environment


def _open_log(run: SeedRun) -> IO[str]:
    run.folder.mkdir(parents=True, exist_ok=True)
    log = open(run.log, "a")  # noqa: SIM115 (closed when the process ends)
    log.write(f"$ {shlex.join(run.command)}\n")
    log.flush()
    return log


def _log_tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    try:
        with open(path, "rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 64 * 1024))
            text = file.read().decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def _exit_description(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _say(message: str) -> None:
    print(message, flush=True)


def _report_failure(run: SeedRun, reason: str, elapsed: float | None = None) -> None:
    after = "" if elapsed is None else f" after {elapsed:.0f} s"
    tail = _log_tail(run.log)
    _say(f"seed {run.seed}: FAILED ({reason}){after}" + (f"; the end of {run.log}:" if tail else ""))
    for line in tail:
        _say(f"    | {line}")


def run_local(runs: list[SeedRun], parallel: int, stop: threading.Event | None = None) -> list[int]:
    """Run the seeds' processes, at most ``parallel`` at a time, with a status line for each; returns the failed seeds.

    On Ctrl-C, or SIGTERM to this process (what a batch system sends at its time limit), the running seeds are
    stopped and ``KeyboardInterrupt`` is raised; likewise when ``stop`` is set (by the thread that took the signal,
    where this runs in another).
    """
    pending = deque(runs)
    running: dict[int, tuple[SeedRun, subprocess.Popen, IO[str], float]] = {}
    failed: list[int] = []
    in_main_thread = threading.current_thread() is threading.main_thread()  # where signal handlers can be set
    previous_handler = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
    try:
        while pending or running:
            while pending and len(running) < parallel:
                run = pending.popleft()
                try:
                    log = _open_log(run)
                except OSError as error:
                    _report_failure(run, f"cannot write {run.log}: {error.strerror or error}")
                    failed.append(run.seed)
                    continue
                try:
                    process = subprocess.Popen(
                        run.command,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=_child_environment(run.folder),
                    )
                except OSError as error:
                    log.close()
                    _report_failure(run, f"could not start: {error}")
                    failed.append(run.seed)
                    continue
                running[run.seed] = (run, process, log, time.monotonic())
                _say(f"seed {run.seed}: started, output in {run.log}")
            time.sleep(_POLL_S)
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            for seed, (run, process, log, started) in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                log.close()
                del running[seed]
                elapsed = time.monotonic() - started
                if code == 0:
                    _say(f"seed {seed}: finished in {elapsed:.0f} s")
                else:
                    _report_failure(run, _exit_description(code), elapsed)
                    failed.append(seed)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_handler)
        for run, process, log, _ in running.values():
            process.terminate()  # only on an interrupt: the loop above waits for every process otherwise
            process.wait()
            log.close()
            _say(f"seed {run.seed}: stopped")
    return failed


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_seed_job(seed: int, command: list[str], folder: str) -> None:
    """One task of the SLURM array job, on its node: the seed's ``fit`` with its output in ``fit.log``.

    Raises when the seed fails, so that SLURM and submitit count the task as failed.
    """
    run = SeedRun(seed, Path(folder), tuple(command))
    with _open_log(run) as log:
        code = subprocess.run(
            run.command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_environment(run.folder),
            check=False,
        ).returncode
    if code != 0:
        raise RuntimeError(f"seed {seed}: {_exit_description(code)}; see {run.log}")


def _slurm_value(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def submit_slurm(runs: list[SeedRun], parallel: int, slurm_options: dict[str, str], root: Path) -> None:
    """Submit the seeds as one SLURM array job (at most ``parallel`` tasks at a time) through submitit."""
    try:
        import submitit
    except ImportError:
        raise ConfigurationError(
            "--launcher slurm submits the seeds with submitit, which is not installed: "
            'pip install "rl-lightning[submitit]"'
        ) from None
    if "slurm_time" not in slurm_options:
        raise ConfigurationError(
            "--launcher slurm needs --slurm_time MINUTES, the time limit of each seed's job (submitit's default is 5)."
        )
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise ConfigurationError(
            "--launcher slurm: there is no sbatch or srun here; submit from a SLURM login node, or leave out "
            "--launcher to run the seeds on this machine."
        )
    executor = submitit.AutoExecutor(folder=root / "slurm", cluster="slurm")
    try:
        executor.update_parameters(
            name=f"rl-{root.name}",
            slurm_array_parallelism=parallel,
            **{name: _slurm_value(value) for name, value in slurm_options.items()},
        )
    except NameError as error:  # submitit's way of refusing an unknown parameter, with the valid ones
        raise ConfigurationError(f"--launcher slurm: {str(error).splitlines()[0]}") from None
    jobs = executor.map_array(
        run_seed_job, [run.seed for run in runs], [list(run.command) for run in runs], [str(run.folder) for run in runs]
    )
    for run, job in zip(runs, jobs):
        _say(f"seed {run.seed}: submitted as SLURM job {job.job_id}, output in {run.log}")
    _say(
        f"submitit's own logs are in {root / 'slurm'}. A seed stopped by its time limit goes on when you submit the "
        f"same command again with --ckpt_path last (finished seeds are skipped)."
    )


# ------------------------------------------------------------------------------------------------ entry point
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rl-lightning fit --config X.yaml",
        description="Train one configuration with several seeds. Every other option goes to each seed's "
        "`rl-lightning fit` (see rl-lightning fit --help).",
    )
    parser.add_argument("--seeds", required=True, help="0-4 (seeds 0 to 4), 0,3,7, or both: 0-2,10")
    parser.add_argument("--parallel", type=int, default=1, help="seeds running at a time (default 1)")
    parser.add_argument(
        "--launcher", choices=LAUNCHERS, default="local", help="local processes (default) or a SLURM array job"
    )
    parser.add_argument(
        "--slurm_<name>",
        metavar="VALUE",
        dest="slurm",
        help="with --launcher slurm: submitit's slurm_<name> (sbatch's --<name>), e.g. --slurm_partition gpu "
        "--slurm_time 120 (minutes, required) --slurm_gpus_per_node 1 --slurm_cpus_per_task 4 --slurm_mem 16GB",
    )
    return parser


def main(argv: list[str]) -> int:
    """``rl-lightning fit ... --seeds SEEDS [--parallel N] [--launcher local|slurm] [--slurm_<name> VALUE ...]``.

    Returns the command's exit status: 0 when every seed finished (or was submitted), 1 when one failed.
    """
    if "-h" in argv or "--help" in argv:
        _parser().print_help()
        return 0
    options, fit_args = split_launcher_options(list(argv))
    slurm_options = {name: value for name, value in options.items() if name.startswith("slurm_")}
    seeds = parse_seeds(options["seeds"])
    try:
        parallel = int(options.get("parallel", "1"))
    except ValueError:
        parallel = 0
    if parallel < 1:
        raise ConfigurationError(f"--parallel {options['parallel']}: write how many seeds run at a time, e.g. 2.")
    launcher = options.get("launcher", "local")
    if launcher not in LAUNCHERS:
        raise ConfigurationError(f"--launcher {launcher}: choose local (the default) or slurm.")
    if slurm_options and launcher != "slurm":
        raise ConfigurationError(f"--{next(iter(slurm_options))} applies to --launcher slurm only.")
    check_fit_args(fit_args)
    root = run_root(fit_args)
    runs = seed_runs(fit_args, seeds, root)

    if option_values(fit_args, "--ckpt_path"):
        total = config_value(
            fit_args, "model", "total_timesteps", ("--model.init_args.total_timesteps", "--model.total_timesteps")
        )
        try:
            total = None if total is None else int(float(total))
        except ValueError:  # not a number: fit itself will say so when it starts
            total = None
        unfinished = []
        for run in runs:
            finished = finished_steps(run.folder, total)
            if finished is None:
                unfinished.append(run)
            else:
                _say(
                    f"seed {run.seed}: already finished ({finished[0]:,} of {finished[1]:,} env steps in "
                    f"{run.folder / 'checkpoints' / 'last.ckpt'}); skipped"
                )
        runs = unfinished
        if not runs:
            _say("every seed has finished: nothing to resume.")
            return 0

    listed = ", ".join(str(run.seed) for run in runs)
    _say(
        f"rl-lightning: {len(runs)} seed{'s' * (len(runs) > 1)} ({listed}) into {root}/seed_<S>, "
        + (f"{parallel} at a time" if launcher == "local" else "as a SLURM array job")
    )
    if launcher == "slurm":
        submit_slurm(runs, parallel, slurm_options, root)
        return 0
    try:
        failed = run_local(runs, parallel)
    except KeyboardInterrupt:
        _say("interrupted: the same command with --ckpt_path last resumes the unfinished seeds.")
        return 130
    if failed:
        _say(
            f"{len(failed)} of {len(runs)} seeds failed (seed{'s' * (len(failed) > 1)} "
            f"{', '.join(map(str, sorted(failed)))}): see {LOG_NAME} in their folders; once the cause is fixed, the "
            f"same command with --ckpt_path last runs the unfinished seeds again."
        )
        return 1
    _say(f"all {len(runs)} seeds finished; `rl-lightning report {root}` summarises them.")
    return 0
