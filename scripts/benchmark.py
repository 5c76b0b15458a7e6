"""Speed benchmark: rl-lightning against Stable-Baselines3, same algorithm, same hyperparameters, same machine.

Each entry of ``BENCHMARKS`` trains one algorithm with both libraries, using the hyperparameters of our
YAML under ``experiments/`` for both. Runs alternate between the libraries (ours seed 0, SB3 seed 0, ours
seed 1, ...) so that a machine getting busier or cooler affects both alike, and each run is a fresh
Python process with the same torch thread count, so that its peak memory is its own and no run warms a
cache for the next. Wall time covers building the model and its envs and training; the final evaluation
(deterministic episodes on a separately seeded env, the same protocol for both) is not timed.

Timings are only comparable within one invocation on an otherwise idle machine: nothing here asserts a
speed.

    python scripts/benchmark.py                        # every algorithm, 3 seeds, full budgets
    python scripts/benchmark.py --algos dqn --seeds 5 --output results.json --markdown results.md
    python scripts/benchmark.py --quick --seeds 1      # small budgets: checks that everything runs
    python scripts/benchmark.py --algos dqn_acrobot --timesteps 50000 --set gradient_steps=1   # both sides
    python scripts/benchmark.py --algos dqn_pong --timesteps 104000 --set learning_starts=100000 --seeds 1
                                                       # Pong's 100k buffer filled on both sides, then 1,000 updates
    python scripts/benchmark.py --algos ppo_pong --timesteps 4096 --seeds 1 --eval-episodes 0 --profile profiles

The parent process imports neither torch nor either library, so that it adds nothing to the peak memory
measured for its children.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EVAL_SEED_OFFSET = 10_000
"""Evaluation envs are seeded ``seed + EVAL_SEED_OFFSET``, away from every training seed."""


@dataclass(frozen=True)
class Outcome:
    """What one training run measured inside its process."""

    env_steps: int
    wall_s: float
    cpu_s: float
    """CPU time of the process over the same span as ``wall_s``: what a busy machine's other work does not add."""
    eval_returns: list[float]


TrainFn = Callable[[dict[str, Any], int, int], Outcome]
"""``(hyperparameters, eval_episodes, eval_seed) -> Outcome``: build, train (timed), then evaluate (untimed)."""


@dataclass(frozen=True)
class Settings:
    """What both libraries share for one algorithm."""

    config: str
    """Our YAML under the repository root; its ``model.init_args`` are the hyperparameters of both libraries."""
    quick_timesteps: int
    """The env-step budget of ``--quick``."""
    eval_episodes: int = 10


# ----------------------------------------------------------------------------------------- in the child process
def load_hyperparameters(settings: Settings) -> dict[str, Any]:
    """``model.init_args`` of the algorithm's YAML, plus its ``class_path``."""
    import yaml

    model = yaml.safe_load((REPO / settings.config).read_text())["model"]
    return {"class_path": model["class_path"], **model["init_args"]}


def import_object(class_path: str) -> Any:
    """The object a YAML's ``class_path`` names (``"rl_lightning.DQN"``)."""
    module_name, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module_name), name)


def train_ours(hyperparameters: dict[str, Any], eval_episodes: int, eval_seed: int) -> Outcome:
    """Any rl-lightning algorithm: ``Trainer.fit`` with no logger, checkpoints, progress bar or validation."""
    import lightning as L
    import torch

    from rl_lightning.data import Collector, evaluate_policy

    init_args = dict(hyperparameters)
    algorithm = import_object(init_args.pop("class_path"))
    # The YAML's wrappers as the CLI builds them: the class, with its init_args bound.
    init_args["wrappers"] = [
        functools.partial(import_object(wrapper["class_path"]), **wrapper.get("init_args", {}))
        for wrapper in init_args.get("wrappers", [])
    ]
    L.seed_everything(init_args["seed"], verbose=False)

    started, cpu_started = time.perf_counter(), time.process_time()
    model = algorithm(**init_args)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,  # no evaluation while training: SB3 runs without an eval callback
    )
    trainer.fit(model)
    wall_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    if eval_episodes == 0:
        return Outcome(model.env_steps, wall_s, cpu_s, [])

    collector = Collector(model.make_env(1))  # the module's own env: same kwargs and wrappers as training
    with torch.no_grad():
        episodes = evaluate_policy(model, collector, eval_episodes, seed=eval_seed)
    collector.close()
    return Outcome(model.env_steps, wall_s, cpu_s, episodes.returns.tolist())


OURS_ONLY = {
    "class_path",
    "env",
    "env_kwargs",
    "wrappers",  # SB3: its Atari wrappers (see sb3_envs)
    "num_envs",
    "total_timesteps",
    "steps_per_epoch",
    "vectorization",
    "eval_episodes",
    "eval_envs",
    "buffer_device",
    "save_buffer",
    "normalize_observations",  # SB3: VecNormalize around the envs (see train_sb3)
    "normalize_rewards",
}
"""Our arguments that are no SB3 constructor argument (the rest share SB3's names)."""
RENAMED_FOR_SB3 = {"n_step": "n_steps"}


def sb3_arguments(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """SB3 constructor arguments from ours: same names, except the network sizes and ``RENAMED_FOR_SB3``.

    Every shared key is passed on, so a hyperparameter added to the YAML reaches SB3 too (or makes SB3
    fail loudly if it has no such argument) rather than silently making the comparison unequal.
    """
    arguments = {
        RENAMED_FOR_SB3.get(name, name): value for name, value in hyperparameters.items() if name not in OURS_ONLY
    }
    if "hidden_sizes" in arguments:
        arguments["policy_kwargs"] = {"net_arch": list(arguments.pop("hidden_sizes"))}
    for name in SCHEDULES:
        value = arguments.get(name)
        if isinstance(value, str) and value.startswith("lin_"):
            # Ours: "lin_<initial>", linear in env steps down to 0; SB3's equivalent is a function of the
            # progress remaining (1 at the start, 0 at the end).
            initial = float(value.removeprefix("lin_"))
            arguments[name] = lambda progress_remaining, initial=initial: progress_remaining * initial
    return arguments


SCHEDULES = ("learning_rate", "clip_range", "clip_range_vf")
"""Hyperparameters that may be ``"lin_<initial>"`` schedules."""


def is_atari(hyperparameters: dict[str, Any]) -> bool:
    """Whether our config preprocesses Atari frames with ``AtariPreset`` (SB3 then uses its own Atari wrappers)."""
    return any("AtariPreset" in wrapper["class_path"] for wrapper in hyperparameters.get("wrappers", []))


def sb3_envs(hyperparameters: dict[str, Any], n_envs: int, seed: int, evaluation: bool = False) -> Any:
    """SB3's vector env for our config: ``make_vec_env``, or for Atari ``make_atari_env`` and a 4-frame stack.

    SB3's ``AtariWrapper`` is our ``AtariPreset`` (30 no-ops, frame skip 4 with max-pool, 84x84 gray, fire on
    reset, life loss ends an episode and rewards clipped, for training); evaluation envs play whole games with the
    game's rewards, as ours do.
    """
    from stable_baselines3.common.env_util import make_atari_env, make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack

    env_id, env_kwargs = hyperparameters["env"], hyperparameters.get("env_kwargs")
    if not is_atari(hyperparameters):
        return make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)  # not rl_lightning's lazy registration: importing it would add to SB3's peak memory
    wrapper_kwargs = {"terminal_on_life_loss": False, "clip_reward": False} if evaluation else None
    env = make_atari_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs, wrapper_kwargs=wrapper_kwargs)
    return VecFrameStack(env, n_stack=4)


def train_sb3(algorithm: str) -> TrainFn:
    """A :data:`TrainFn` for the SB3 class ``algorithm`` (e.g. ``"DQN"``): ``MlpPolicy``, or ``CnnPolicy`` on Atari."""

    def train(hyperparameters: dict[str, Any], eval_episodes: int, eval_seed: int) -> Outcome:
        import numpy as np
        import stable_baselines3
        from stable_baselines3.common.evaluation import evaluate_policy
        from stable_baselines3.common.noise import NormalActionNoise
        from stable_baselines3.common.vec_env import VecNormalize

        sb3_class = getattr(stable_baselines3, algorithm)
        seed = hyperparameters["seed"]
        norm_obs, norm_reward = (bool(hyperparameters.get(f"normalize_{what}")) for what in ("observations", "rewards"))
        policy = "CnnPolicy" if is_atari(hyperparameters) else "MlpPolicy"

        started, cpu_started = time.perf_counter(), time.process_time()
        env = sb3_envs(hyperparameters, hyperparameters.get("num_envs", 1), seed)
        if norm_obs or norm_reward:
            # Ours normalizes inside the module; SB3 (and RL-Zoo's `normalize: true`) wraps the envs, with the
            # algorithm's gamma for the return statistics as RL-Zoo passes it.
            env = VecNormalize(env, norm_obs=norm_obs, norm_reward=norm_reward, gamma=hyperparameters["gamma"])
        arguments = sb3_arguments(hyperparameters)
        if "action_noise" in arguments:
            # Ours: the std of Gaussian exploration noise in units of the action half-range; SB3 takes a noise object.
            std = arguments["action_noise"] * (env.action_space.high - env.action_space.low) / 2
            arguments["action_noise"] = NormalActionNoise(np.zeros(env.action_space.shape), std)
        model = sb3_class(policy, env, device="cpu", verbose=0, **arguments)
        model.learn(total_timesteps=hyperparameters["total_timesteps"], progress_bar=False)
        wall_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        if eval_episodes == 0:
            env.close()
            return Outcome(model.num_timesteps, wall_s, cpu_s, [])

        # One env seeded like ours: the same sequence of initial states, episode after episode.
        eval_env = sb3_envs(hyperparameters, 1, eval_seed, evaluation=True)
        if isinstance(env, VecNormalize):  # the training statistics, frozen, on unnormalized rewards
            eval_env = VecNormalize(eval_env, training=False, norm_obs=norm_obs, norm_reward=False)
            eval_env.obs_rms = env.obs_rms
        returns, _ = evaluate_policy(
            model, eval_env, n_eval_episodes=eval_episodes, deterministic=True, return_episode_rewards=True
        )
        eval_env.close()
        env.close()
        return Outcome(model.num_timesteps, wall_s, cpu_s, [float(r) for r in returns])

    return train


@dataclass(frozen=True)
class Benchmark:
    """One registry entry: our training function, SB3's, and what they share."""

    ours: TrainFn
    sb3: TrainFn
    settings: Settings


BENCHMARKS: dict[str, Benchmark] = {
    # RL-Zoo's tuned CartPole set (50k steps, 256-256, train_freq 256, gradient_steps 128, ...).
    "dqn": Benchmark(train_ours, train_sb3("DQN"), Settings("experiments/dqn_cartpole.yaml", quick_timesteps=5_000)),
    # RL-Zoo's tuned CartPole set (8 envs, n_steps 32, batch 256, 20 epochs, linear lr and clip schedules).
    "ppo": Benchmark(train_ours, train_sb3("PPO"), Settings("experiments/ppo_cartpole.yaml", quick_timesteps=5_120)),
    # RL-Zoo's CartPole set: 8 envs and SB3's defaults (RMSprop, n_steps 5), 500k steps.
    "a2c": Benchmark(train_ours, train_sb3("A2C"), Settings("experiments/a2c_cartpole.yaml", quick_timesteps=20_000)),
    # RL-Zoo's Pendulum sets, 20k steps, one gradient step per env step.
    "sac": Benchmark(train_ours, train_sb3("SAC"), Settings("experiments/sac_pendulum.yaml", quick_timesteps=2_000)),
    "td3": Benchmark(train_ours, train_sb3("TD3"), Settings("experiments/td3_pendulum.yaml", quick_timesteps=12_000)),
    # RL-Zoo's Acrobot sets: DQN 100k steps with one update per env step; PPO 16 envs with VecNormalize, 1M steps.
    "dqn_acrobot": Benchmark(
        train_ours, train_sb3("DQN"), Settings("experiments/dqn_acrobot.yaml", quick_timesteps=5_000)
    ),
    "ppo_acrobot": Benchmark(
        train_ours, train_sb3("PPO"), Settings("experiments/ppo_acrobot.yaml", quick_timesteps=8_192)
    ),
    # Pong (PongNoFrameskip-v4, SB3's AtariWrapper and a 4-frame stack against our AtariPreset), RL-Zoo's Atari sets:
    # PPO with 8 envs; DQN with its 100k buffer, learning from 1/4 of any budget on (the config's 100k would leave a
    # short budget without an update). One whole game evaluated (an untrained agent's takes ~800 steps).
    "ppo_pong": Benchmark(
        train_ours,
        train_sb3("PPO"),
        Settings("experiments/ppo_pong.yaml", quick_timesteps=2_048, eval_episodes=1),
    ),
    "dqn_pong": Benchmark(
        train_ours,
        train_sb3("DQN"),
        Settings("experiments/dqn_pong.yaml", quick_timesteps=2_000, eval_episodes=1),
    ),
}

LEARNING_STARTS_SHARE = {"dqn_pong": 0.25}
"""Entries whose ``learning_starts`` is this share of the run's budget (both libraries), so that updates are timed."""

LIBRARIES = ("rl-lightning", "sb3")


def child_main(spec: dict[str, Any]) -> None:
    """Train and evaluate one run as ``spec`` says, and write its :class:`Outcome` as JSON."""
    import torch

    torch.set_num_threads(spec["threads"])
    benchmark = BENCHMARKS[spec["algo"]]
    hyperparameters = load_hyperparameters(benchmark.settings)
    overrides = spec.get("overrides", {})
    hyperparameters.update(overrides, seed=spec["seed"], total_timesteps=spec["total_timesteps"])
    if spec["algo"] in LEARNING_STARTS_SHARE and "learning_starts" not in overrides:
        hyperparameters["learning_starts"] = int(LEARNING_STARTS_SHARE[spec["algo"]] * spec["total_timesteps"])
    train = benchmark.ours if spec["library"] == "rl-lightning" else benchmark.sb3
    eval_episodes = spec.get("eval_episodes", benchmark.settings.eval_episodes)
    profiler = cProfile.Profile(time.process_time) if "profile" in spec else None
    if profiler:
        profiler.enable()
    outcome = train(hyperparameters, eval_episodes, spec["seed"] + EVAL_SEED_OFFSET)
    if profiler:
        profiler.disable()
        profiler.dump_stats(spec["profile"])
    Path(spec["result_path"]).write_text(json.dumps(asdict(outcome)))


# ----------------------------------------------------------------------------------------- in the parent process
@dataclass(frozen=True)
class Run:
    """One finished run, as reported."""

    algo: str
    library: str
    seed: int
    total_timesteps: int
    env_steps: int
    wall_s: float
    cpu_s: float
    env_steps_per_s: float
    peak_rss_mb: float
    eval_return_mean: float
    eval_return_std: float


def peak_rss_mb(usage: Any) -> float:
    """``ru_maxrss`` in MB: kilobytes on Linux, bytes on macOS."""
    scale = 1 if sys.platform == "darwin" else 1024
    return usage.ru_maxrss * scale / 2**20


def run_child(
    algo: str,
    library: str,
    seed: int,
    total_timesteps: int,
    threads: int,
    workdir: Path,
    overrides: dict[str, Any],
    profile: Path | None = None,
    eval_episodes: int | None = None,
) -> Run:
    """Run one training in a fresh interpreter; its peak memory comes from the kernel's accounting of it. With
    ``profile`` (a folder), under cProfile, timing CPU time (what other processes on the machine do not add to),
    its statistics written there as ``<algo>-<library>-<seed>.prof``. Its evaluation plays ``eval_episodes``
    (default: the entry's ``Settings``; 0: none)."""
    result_path, log_path = workdir / f"{algo}-{library}-{seed}.json", workdir / f"{algo}-{library}-{seed}.log"
    spec = dict(
        algo=algo,
        library=library,
        seed=seed,
        total_timesteps=total_timesteps,
        threads=threads,
        result_path=str(result_path),
        overrides=overrides,
    )
    if eval_episodes is not None:
        spec["eval_episodes"] = eval_episodes
    # OpenMP and MKL size their pools when torch loads; the child's torch.set_num_threads does the rest.
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if profile is not None:
        spec["profile"] = str(profile / f"{algo}-{library}-{seed}.prof")
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        # wait4 gives this child's own resource usage, peak RSS included (RUSAGE_CHILDREN would give the
        # maximum over every child so far).
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-30:])
        raise RuntimeError(f"{algo} / {library} / seed {seed} failed (exit {process.returncode}):\n{tail}")
    outcome = Outcome(**json.loads(result_path.read_text()))
    returns = outcome.eval_returns
    return Run(
        algo=algo,
        library=library,
        seed=seed,
        total_timesteps=total_timesteps,
        env_steps=outcome.env_steps,
        wall_s=outcome.wall_s,
        cpu_s=outcome.cpu_s,
        env_steps_per_s=outcome.env_steps / outcome.wall_s,
        peak_rss_mb=peak_rss_mb(usage),
        eval_return_mean=statistics.fmean(returns) if returns else float("nan"),
        eval_return_std=statistics.pstdev(returns) if returns else float("nan"),
    )


def summarize(runs: list[Run]) -> list[dict[str, Any]]:
    """Per algorithm and library: means over seeds, and the wall-time ratio ours / SB3."""
    summary = []
    for algo in dict.fromkeys(run.algo for run in runs):
        means = {}
        for library in LIBRARIES:
            mine = [run for run in runs if run.algo == algo and run.library == library]
            if mine:
                means[library] = {
                    field: statistics.fmean(getattr(run, field) for run in mine)
                    for field in ("wall_s", "cpu_s", "env_steps_per_s", "peak_rss_mb", "eval_return_mean")
                }
        ratio = cpu_ratio = None
        if len(means) == 2:
            ratio = means["rl-lightning"]["wall_s"] / means["sb3"]["wall_s"]
            cpu_ratio = means["rl-lightning"]["cpu_s"] / means["sb3"]["cpu_s"]
        summary.append(
            {
                "algo": algo,
                "means": means,
                "wall_time_ratio_ours_over_sb3": ratio,
                "cpu_time_ratio_ours_over_sb3": cpu_ratio,
            }
        )
    return summary


def markdown_table(runs: list[Run], summary: list[dict[str, Any]], quick: bool) -> str:
    """The runs, then the per-library means, as a markdown table; and the wall-time ratios below it."""
    header = (
        "| algorithm | library | seed | wall time (s) | CPU time (s) | env steps | env steps/s | peak memory (MB) "
        "| eval return (mean ± std) |\n| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    lines = [header]
    for run in runs:
        lines.append(
            f"| {run.algo} | {run.library} | {run.seed} | {run.wall_s:.1f} | {run.cpu_s:.1f} | {run.env_steps} "
            f"| {run.env_steps_per_s:.0f} | {run.peak_rss_mb:.0f} "
            f"| {run.eval_return_mean:.1f} ± {run.eval_return_std:.1f} |"
        )
    for entry in summary:
        for library, mean in entry["means"].items():
            lines.append(
                f"| {entry['algo']} | {library} | mean | {mean['wall_s']:.1f} | {mean['cpu_s']:.1f} | "
                f"| {mean['env_steps_per_s']:.0f} "
                f"| {mean['peak_rss_mb']:.0f} | {mean['eval_return_mean']:.1f} |"
            )
    lines.append("")
    for entry in summary:
        if entry["wall_time_ratio_ours_over_sb3"] is not None:
            lines.append(
                f"{entry['algo']}: rl-lightning / SB3 wall time = {entry['wall_time_ratio_ours_over_sb3']:.2f}, "
                f"CPU time = {entry['cpu_time_ratio_ours_over_sb3']:.2f}"
            )
    if quick:
        lines.append("(--quick budgets: fixed start-up costs dominate; not a speed comparison)")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Where and with what the numbers were taken."""
    versions = {}
    for package in ("torch", "lightning", "gymnasium", "stable-baselines3", "rl-lightning"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
        "versions": versions,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", choices=sorted(BENCHMARKS), default=sorted(BENCHMARKS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds per library: 0 .. N-1 (default 3)")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="start the seeds here instead (to split a study over processes)"
    )
    parser.add_argument("--quick", action="store_true", help="small env-step budgets, to check that it all runs")
    parser.add_argument(
        "--timesteps", type=int, help="one env-step budget for every algorithm, instead of its config's (both sides)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads in every run (default 1)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one hyperparameter of the configs' model.init_args for both libraries (a YAML value; repeatable)",
    )
    parser.add_argument(
        "--eval-episodes", type=int, help="episodes of each run's final evaluation, instead of the entry's (0: none)"
    )
    parser.add_argument("--output", type=Path, help="write settings, machine, runs and means as JSON here")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run each child under cProfile, writing DIR/<algo>-<library>-<seed>.prof (it slows Python code: "
        "not for timings)",
    )
    parser.add_argument("--markdown", type=Path, help="write the table as markdown here")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: the JSON spec of one run
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.threads < 1 or args.first_seed < 0 or (args.eval_episodes or 0) < 0:
        parser.error("--seeds and --threads must be at least 1, --first-seed and --eval-episodes at least 0")
    args.overrides = {}
    for item in args.set:
        key, equals, value = item.partition("=")
        if not equals or not key:
            parser.error(f"--set {item!r}: expected KEY=VALUE, e.g. --set gradient_steps=1")
        args.overrides[key] = value
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        child_main(json.loads(args.child))
        return 0

    import yaml

    overrides = {key: yaml.safe_load(value) for key, value in args.overrides.items()}
    budgets = {}
    for algo in args.algos:
        settings = BENCHMARKS[algo].settings
        hyperparameters = load_hyperparameters(settings)
        unknown = sorted(set(overrides) - set(hyperparameters) - {"class_path"})
        if unknown:
            print(f"--set {', '.join(unknown)}: not in {settings.config}'s model.init_args", file=sys.stderr)
            return 2
        budgets[algo] = settings.quick_timesteps if args.quick else hyperparameters["total_timesteps"]
        budgets[algo] = args.timesteps or budgets[algo]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    plan = [(algo, library, seed) for algo in args.algos for seed in seeds for library in LIBRARIES]
    info = machine()
    load = ", ".join(f"{value:.1f}" for value in info["load_average_at_start"])
    print(f"{len(plan)} runs, {args.threads} torch thread(s) each; {info['cpu_count']} CPUs, load average {load}")
    runs: list[Run] = []
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rl-lightning-benchmark-") as workdir:
        for index, (algo, library, seed) in enumerate(plan, start=1):
            print(f"[{index}/{len(plan)}] {algo} {library} seed {seed}: {budgets[algo]} env steps ...", flush=True)
            run = run_child(
                algo, library, seed, budgets[algo], args.threads, Path(workdir), overrides, args.profile,
                args.eval_episodes,
            )  # fmt: skip
            print(
                f"    {run.wall_s:.1f} s ({run.cpu_s:.1f} s CPU), {run.env_steps_per_s:.0f} env steps/s, "
                f"{run.peak_rss_mb:.0f} MB, eval return {run.eval_return_mean:.1f}",
                flush=True,
            )
            runs.append(run)

    summary = summarize(runs)
    table = markdown_table(runs, summary, args.quick)
    print()
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.output:
        report = {
            "settings": {
                "algos": args.algos,
                "seeds": list(seeds),
                "quick": args.quick,
                "threads": args.threads,
                "budgets": budgets,
                "overrides": overrides,
                "eval_episodes": args.eval_episodes,
                "configs": {algo: BENCHMARKS[algo].settings.config for algo in args.algos},
            },
            "machine": info,
            "runs": [asdict(run) for run in runs],
            "summary": summary,
        }
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
