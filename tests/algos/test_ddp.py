"""DDP on CPU (gloo): two processes, each a full actor-learner, as ``rl-lightning fit --trainer.devices 2``.

Each run is an ``rl-lightning fit --trainer.strategy ddp --trainer.devices 2`` subprocess on CartPole with a tiny
budget (Lightning's "ddp" launches the other rank by running the same command again). :class:`DDPProbe`
records in every rank what it played, the episodes it finished, its evaluation share and its final
parameters; the tests compare the ranks with each other, with the logged metrics and with the checkpoints.
"""

from __future__ import annotations

import csv
import math
import os
import pickle
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from rl_lightning import DQN, ConfigurationError
from rl_lightning.tree import tree_leaves, tree_map
from tests.algos.test_resume import output, start_fit

RUNS: dict[str, dict[str, Any]] = {
    "dqn": {
        "class_path": "rl_lightning.DQN",
        "init_args": dict(
            num_envs=2,
            hidden_sizes=[16],
            learning_starts=128,
            batch_size=16,
            train_freq=4,  # one step of the 2 envs of each of the 2 processes
            target_update_interval=64,
            n_step=2,
            total_timesteps=1024,
            steps_per_epoch=512,
            eval_episodes=3,  # rank 0 plays 2, rank 1 plays 1
            eval_envs=2,
        ),
    },
    "ppo": {
        "class_path": "rl_lightning.PPO",
        "init_args": dict(
            num_envs=2,
            hidden_sizes=[16],
            n_steps=32,
            batch_size=16,
            n_epochs=4,
            learning_rate="lin_0.003",
            target_kl=0.002,  # stops some rollouts' updates early: every rank must stop at the same minibatch
            normalize_observations=True,  # statistics of both ranks' observations
            total_timesteps=512,
            steps_per_epoch=256,  # 2 rollouts of 32 steps of 2 envs in each of 2 processes
            eval_episodes=2,
            eval_envs=1,
        ),
    },
    "ppo-dict": {  # Dict observations; the flag key's statistics of both ranks' observations
        "class_path": "rl_lightning.PPO",
        "init_args": dict(
            env="tests.toy_envs:RLLightningDict-v0",
            num_envs=2,
            hidden_sizes=[16],
            n_steps=32,
            batch_size=16,
            n_epochs=2,
            normalize_observations=True,
            total_timesteps=512,
            steps_per_epoch=256,
            eval_episodes=2,
            eval_envs=1,
        ),
    },
    "ppo-masked": {  # each rank acts under its own envs' valid-action masks, and learns under them
        "class_path": "rl_lightning.PPO",
        "init_args": dict(
            env="tests.toy_envs:RLLightningInvalidAction-v0",
            num_envs=2,
            hidden_sizes=[16],
            n_steps=32,
            batch_size=16,
            n_epochs=2,
            total_timesteps=512,
            steps_per_epoch=256,
            eval_episodes=2,
            eval_envs=1,
        ),
    },
    "ppo-gru": {  # a recurrent policy: each rank carries its own envs' hidden states; chunks of 16 steps
        "class_path": "rl_lightning.PPO",
        "init_args": dict(
            env="rl_lightning/CartPoleNoVel-v1",
            recurrent="gru",
            rnn_hidden_size=8,
            num_envs=2,
            hidden_sizes=[16],
            n_steps=32,
            batch_size=16,
            sequence_length=16,
            n_epochs=2,
            total_timesteps=512,
            steps_per_epoch=256,
            eval_episodes=2,
            eval_envs=1,
        ),
    },
}


class DDPProbe(Callback):
    """Instrumentation of the subprocesses: each rank's record in ``<default_root_dir>/rank<r>.pt``.

    It counts the env steps the rank's collector plays, keeps the returns of the training episodes the module
    collects at each epoch's end and, at each evaluation, the rank's own (not yet combined) episode count and
    return sum; at the end, the rank's env-step clock, optimizer steps and parameters. Rank 0 also keeps a copy
    of the first epoch's checkpoint, ``first-epoch.ckpt``, to resume from.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.record: dict[str, Any] = {"played": 0, "train_episodes": [], "val_episodes": []}

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        last = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        if trainer.current_epoch == 1 and trainer.is_global_zero and last.exists():  # (not in the resumed run)
            # Whole or not at all under its name: the test starts the resumed run as soon as it appears.
            shutil.copy(last, last.with_name("first-epoch.part"))
            os.replace(last.with_name("first-epoch.part"), last.with_name("first-epoch.ckpt"))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        collector = pl_module.collector
        self.record["first_observations"] = tree_map(torch.Tensor.clone, collector.observations)
        self.record["first_masks"] = None if collector.action_masks is None else collector.action_masks.clone()
        step, pop_episodes = collector.step, collector.pop_episodes

        def counted_step(*args: Any) -> Any:
            self.record["played"] += collector.num_envs
            return step(*args)

        def recorded_pop_episodes() -> Any:
            episodes = pop_episodes()
            self.record["train_episodes"].append(episodes.returns.tolist())
            return episodes

        collector.step, collector.pop_episodes = counted_step, recorded_pop_episodes

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Callbacks run before the module's hook, which combines the ranks' episodes: these are this rank's.
        episodes = pl_module.val_episodes
        self.record["val_episodes"].append((episodes.count.item(), episodes.return_sum.item()))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        record = {
            **self.record,
            "env_steps": pl_module.env_steps,
            "global_step": trainer.global_step,
            "state_dict": {name: tensor.clone() for name, tensor in pl_module.state_dict().items()},
        }
        torch.save(record, Path(trainer.default_root_dir) / f"rank{trainer.global_rank}.pt")


def same_observations(first: Any, second: Any) -> bool:
    """Whether two batches of observations (tensors, or dicts of them) are equal, key by key."""
    pairs = zip(tree_leaves(first), tree_leaves(second), strict=True)
    return all(key == other_key and torch.equal(x, y) for (key, x), (other_key, y) in pairs)


def write_config(folder: Path, algorithm: str) -> Path:
    run = RUNS[algorithm]
    config = {
        "model": {"class_path": run["class_path"], "init_args": {**run["init_args"], "seed": 3}},
        "trainer": {
            "accelerator": "cpu",
            "deterministic": True,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "callbacks": [{"class_path": "tests.algos.test_ddp.DDPProbe"}],
        },
    }
    path = folder / f"{algorithm}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_ddp_fit(config: Path, root: Path, *extra: str) -> subprocess.Popen:
    """``rl-lightning fit --config CONFIG`` on 2 DDP processes, with ``root`` as default_root_dir."""
    return start_fit(config, root, "--trainer.strategy=ddp", "--trainer.devices=2", *extra)


def finish(process: subprocess.Popen, root: Path) -> None:
    code = process.wait(timeout=240)
    assert code == 0, output(root)


def last_checkpoint(root: Path) -> dict:
    return torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)


def rank_records(root: Path) -> list[dict]:
    return [torch.load(root / f"rank{rank}.pt", weights_only=True) for rank in range(2)]


def logged(root: Path, name: str) -> list[float]:
    """The values of metric ``name`` in the run's metrics.csv (written by rank 0), in order."""
    (path,) = root.glob("lightning_logs/version_*/metrics.csv")
    with open(path) as file:
        return [float(row[name]) for row in csv.DictReader(file) if row.get(name)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every run of RUNS straight through (together), and DQN resumed from the first epoch's checkpoint of its run."""
    folder = tmp_path_factory.mktemp("ddp")
    configs = {algorithm: write_config(folder, algorithm) for algorithm in RUNS}
    roots = {name: folder / name for name in (*RUNS, "dqn-resumed")}
    processes = {algorithm: start_ddp_fit(configs[algorithm], roots[algorithm]) for algorithm in RUNS}
    first_epoch = roots["dqn"] / "checkpoints" / "first-epoch.ckpt"
    while not first_epoch.exists() and processes["dqn"].poll() is None:
        time.sleep(0.1)
    processes["dqn-resumed"] = start_ddp_fit(configs["dqn"], roots["dqn-resumed"], f"--ckpt_path={first_epoch}")
    for name, process in processes.items():
        finish(process, roots[name])
    return roots


# ---------------------------------------------------------------------------------------------- every rank a learner
@pytest.mark.parametrize("algorithm", list(RUNS))
def test_the_ranks_play_different_episodes_and_end_with_the_same_parameters(
    algorithm: str, runs: dict[str, Path]
) -> None:
    first, second = rank_records(runs[algorithm])
    # Seeds seed + rank * num_envs + i: the ranks' envs start apart, and their episodes differ.
    assert not same_observations(first["first_observations"], second["first_observations"])
    assert first["train_episodes"] != second["train_episodes"]
    # DDP averaged the gradients: the networks (and all else in the state_dict) are the same on both ranks.
    assert first["state_dict"].keys() == second["state_dict"].keys()
    for name, tensor in first["state_dict"].items():
        assert torch.equal(tensor, second["state_dict"][name]), name
    if algorithm == "ppo-masked":  # each rank's collector kept its own envs' masks
        masks = [first["first_masks"], second["first_masks"]]
        assert masks[0].shape == masks[1].shape == (2, 4)
        assert torch.equal(masks[0], first["first_observations"].bool())  # the env shows its mask as observation
    if algorithm == "ppo":  # the normalizer saw every observation both ranks played
        total = RUNS[algorithm]["init_args"]["total_timesteps"]
        assert first["state_dict"]["observation_normalizer.count"].item() == pytest.approx(total + 1e-4)
    if algorithm == "ppo-dict":  # the same of the flag key, the only float vector key
        total = RUNS[algorithm]["init_args"]["total_timesteps"]
        flag_count = first["state_dict"]["observation_normalizer.normalizers.flag.count"]
        assert flag_count.item() == pytest.approx(total + 1e-4)
        assert first["first_observations"]["image"].dtype == torch.uint8
    # The checkpoint holds both ranks' collectors, which stand at different observations.
    checkpoint = last_checkpoint(runs[algorithm])["rl_lightning"]
    assert checkpoint["world_size"] == 2 and list(checkpoint["ranks"]) == [1]
    ranks_observations = checkpoint["collector"]["observations"], checkpoint["ranks"][1]["collector"]["observations"]
    assert not same_observations(*ranks_observations)


@pytest.mark.parametrize("algorithm", list(RUNS))
def test_env_steps_are_counted_over_both_ranks_and_both_stop_together(algorithm: str, runs: dict[str, Path]) -> None:
    total = RUNS[algorithm]["init_args"]["total_timesteps"]
    first, second = rank_records(runs[algorithm])
    assert first["played"] == second["played"] == total // 2
    assert first["env_steps"] == second["env_steps"] == total
    assert first["global_step"] == second["global_step"] > 0  # the same number of optimizer steps
    assert logged(runs[algorithm], "env_steps")[-1] == total


@pytest.mark.parametrize("algorithm", list(RUNS))
def test_logged_episode_statistics_cover_both_ranks(algorithm: str, runs: dict[str, Path]) -> None:
    records = rank_records(runs[algorithm])
    # Training: the mean return of the episodes both ranks finished in each epoch.
    expected = [np.mean(first + second) for first, second in zip(*(r["train_episodes"] for r in records), strict=True)]
    assert logged(runs[algorithm], "train/episode_return") == pytest.approx(expected, rel=1e-6)
    # Evaluation: each rank plays its share of eval_episodes; the logged mean is over all of them.
    eval_episodes = RUNS[algorithm]["init_args"]["eval_episodes"]
    shares = [[count for count, _ in r["val_episodes"]] for r in records]
    assert shares == [[math.ceil(eval_episodes / 2)] * 2, [eval_episodes // 2] * 2]
    sums = [sum(total for _, total in evaluation) for evaluation in zip(*(r["val_episodes"] for r in records))]
    assert logged(runs[algorithm], "val/return_mean") == pytest.approx([s / eval_episodes for s in sums], rel=1e-6)


# ---------------------------------------------------------------------------------------------- checkpoints
def assert_same(expected: Any, got: Any, where: str = "checkpoint") -> None:
    if isinstance(expected, dict):
        assert expected.keys() == got.keys(), where
        for key, value in expected.items():
            assert_same(value, got[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(expected) == len(got), where
        for index, (value, other) in enumerate(zip(expected, got)):
            assert_same(value, other, f"{where}[{index}]")
    elif isinstance(expected, torch.Tensor):
        assert torch.equal(expected, got), where
    elif isinstance(expected, bytes):  # pickled envs: equal states need not pickle to equal bytes
        assert env_states(expected) == env_states(got), where
    else:
        assert expected == got, where


def env_states(pickled: bytes) -> list[tuple]:
    """What a pickled SyncVectorEnv of CartPoles holds that decides its future: each sub-env's physics, step
    count and generator, and the action space's generator."""
    attributes = pickle.loads(pickled)
    return [
        *(
            (
                tuple(env.unwrapped.state.tolist()),
                env.get_wrapper_attr("_elapsed_steps"),
                str(env.unwrapped.np_random.bit_generator.state),
            )
            for env in attributes["envs"]
        ),
        (str(attributes["single_action_space"].np_random.bit_generator.state),),
    ]


def test_a_ddp_run_resumed_from_a_checkpoint_restores_every_rank_and_ends_as_if_never_stopped(
    runs: dict[str, Path],
) -> None:
    saved = torch.load(runs["dqn"] / "checkpoints" / "first-epoch.ckpt", weights_only=True)["rl_lightning"]
    assert saved["env_steps"] == 512
    rank_states = [saved, saved["ranks"][1]]
    # Each rank went on from its own collector: the observations its envs stood at, different for each rank.
    for rank, state in enumerate(rank_states):
        resumed = torch.load(runs["dqn-resumed"] / f"rank{rank}.pt", weights_only=True)
        assert same_observations(resumed["first_observations"], state["collector"]["observations"])
    buffers = [state["buffer"]["storage"]["observations"] for state in rank_states]
    assert not torch.equal(*buffers)

    # And both ranks ended exactly where the uninterrupted run's did: networks, optimizer, envs, buffers, RNGs.
    expected, got = last_checkpoint(runs["dqn"]), last_checkpoint(runs["dqn-resumed"])
    assert_same(expected["state_dict"], got["state_dict"], "state_dict")
    assert_same(expected["optimizer_states"], got["optimizer_states"], "optimizer_states")
    # (Except torch's global generator, which nothing of the run draws from, but Lightning does: a DataLoader
    # iterator takes its seed from it. The resumed run's is behind the uninterrupted one's, in one process too.)
    for state in (expected["rl_lightning"], expected["rl_lightning"]["ranks"][1], got["rl_lightning"],
                  got["rl_lightning"]["ranks"][1]):
        del state["global_rng"]["torch"]
    assert_same(expected["rl_lightning"], got["rl_lightning"], "rl_lightning")


def test_resuming_on_another_number_of_processes_is_refused_naming_both(runs: dict[str, Path], tmp_path: Path) -> None:
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_epochs=-1, logger=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    model = DQN(**{**RUNS["dqn"]["init_args"], "hidden_sizes": (16,), "seed": 3})
    message = r"written by 2 process\(es\) \(world size 2\) and this run has 1\..*Resume with devices x num_nodes = 2"
    with pytest.raises(ConfigurationError, match=message):
        trainer.fit(model, ckpt_path=runs["dqn"] / "checkpoints" / "last.ckpt")


# ---------------------------------------------------------------------------------------------- faults
def test_a_fault_on_one_rank_stops_every_rank_with_its_message(tmp_path: Path) -> None:
    """PPO on 2 processes where only rank 1's env 0 (seed 3 + 1 * 2 + 0 = 5) returns a NaN, as its 5th observation.

    Rank 1 cannot raise alone (rank 0 would wait for it in the next collective): both stop at the end of the
    first rollout, each with rank 1's message, and nothing is checkpointed.
    """
    init_args = {
        **RUNS["ppo"]["init_args"],
        "env": "tests.toy_envs:RLLightningNonFinite-v0",
        "env_kwargs": {"nan_at": 5, "nan_in": "observation", "nan_seed": 5},
        "normalize_observations": False,
        "seed": 3,
    }
    config = tmp_path / "nan.yaml"
    trainer_config = {"accelerator": "cpu", "enable_progress_bar": False, "enable_model_summary": False}
    config.write_text(yaml.safe_dump({"model": {"class_path": "rl_lightning.PPO", "init_args": init_args},
                                      "trainer": trainer_config}))
    root = tmp_path / "run"
    process = start_ddp_fit(config, root)
    try:
        code = process.wait(timeout=240)
    finally:
        process.kill()
    text = output(root)
    assert code == 1, text
    message = (
        "rl-lightning: error: rank 1: env 0 returned a non-finite observation at vector step 5 ([nan]); it was "
        "replaced by zeros until the run stopped here, and no checkpoint is written after it."
    )
    assert text.count(message) == 2, text  # one line from each rank
    assert "Traceback" not in text
    assert not (root / "checkpoints").exists()
