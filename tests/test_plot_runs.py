"""scripts/plot_runs.py: runs found in CSV logs and offline W&B runs, grouped by algorithm, env and seed."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import wandb

from tests.tracking import finish_wandb, isolate_wandb

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "plot_runs.py"
spec = importlib.util.spec_from_file_location("plot_runs", SCRIPT)
plot_runs = sys.modules["plot_runs"] = importlib.util.module_from_spec(spec)  # dataclasses look themselves up
spec.loader.exec_module(plot_runs)


def write_csv_run(
    folder: Path, algorithm: str, env_id: str, seed: int, points: list[tuple[int, float]], learning_rate: float = 1e-3
) -> None:
    """A folder as Lightning's CSVLogger leaves it, with a tuple tag in hparams.yaml as yaml.dump writes them."""
    folder.mkdir(parents=True)
    (folder / "hparams.yaml").write_text(
        f"algorithm: {algorithm}\nenv_id: {env_id}\nseed: {seed}\nhidden_sizes: !!python/tuple\n- 64\n- 64\n"
        f"learning_rate: {learning_rate}\n"
    )
    rows = ["env_steps,step,train/episode_return,val/return_mean"]
    for steps, value in points:
        rows += [f"{steps}.0,{steps},,{value}", f"{steps}.0,{steps},{value / 2},"]
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Iterator[Path]:
    """Two seeds of DQN and one of PPO on CartPole as CSV logs, one seed of SAC on Pendulum as an offline W&B run."""
    root = tmp_path_factory.mktemp("runs")
    write_csv_run(root / "dqn" / "s0" / "version_0", "DQN", "CartPole-v1", 0, [(100, 10.0), (200, 30.0)])
    write_csv_run(root / "dqn" / "s1" / "version_0", "DQN", "CartPole-v1", 1, [(100, 20.0), (200, 50.0)])
    write_csv_run(root / "ppo" / "s0" / "version_0", "PPO", "CartPole-v1", 0, [(128, 15.0), (256, 60.0)])
    with pytest.MonkeyPatch.context() as monkeypatch:
        wandb_root = isolate_wandb(monkeypatch, root / "sac")
        run = wandb.init(project="plots", config={"algorithm": "SAC", "env_id": "Pendulum-v1", "seed": 0})
        for steps, value in [(1000, -1200.0), (2000, -400.0)]:
            run.log({"env_steps": steps, "val/return_mean": value})
        finish_wandb(wandb_root)
        wandb.teardown()
    yield root


def test_finds_csv_and_wandb_runs_by_algorithm_env_and_seed(runs):
    curves = plot_runs.find_curves([runs], "val/return_mean")
    found = {(c.algorithm, c.env_id, c.seed): (c.env_steps.tolist(), c.values.tolist()) for c in curves}
    assert found == {
        ("DQN", "CartPole-v1", 0): ([100, 200], [10, 30]),
        ("DQN", "CartPole-v1", 1): ([100, 200], [20, 50]),
        ("PPO", "CartPole-v1", 0): ([128, 256], [15, 60]),
        ("SAC", "Pendulum-v1", 0): ([1000, 2000], [-1200, -400]),
    }


def test_a_resumed_runs_log_versions_are_one_curve_and_configurations_stay_apart(tmp_path, capsys):
    dqn = tmp_path / "dqn_cartpole" / "lightning_logs"
    write_csv_run(dqn / "version_0", "DQN", "CartPole-v1", 0, [(100, 10.0), (200, 30.0)])
    # Resumed from the checkpoint at step 100 (the run was stopped after logging step 200): step 200 played again.
    write_csv_run(dqn / "version_1", "DQN", "CartPole-v1", 0, [(200, 32.0), (300, 40.0)])
    # The README's lr example in its own folder: another configuration, not a second seed.
    lr = tmp_path / "lr" / "lightning_logs" / "version_0"
    write_csv_run(lr, "DQN", "CartPole-v1", 3, [(100, 5.0), (300, 20.0)], learning_rate=2.3e-3)
    curves = plot_runs.find_curves([tmp_path], "val/return_mean")
    found = {(c.source.name, c.seed): (c.env_steps.tolist(), c.values.tolist()) for c in curves}
    assert found == {("dqn_cartpole", 0): ([100, 200, 300], [10, 32, 40]), ("lr", 3): ([100, 300], [5, 20])}
    assert plot_runs.main([str(tmp_path), "--output", str(tmp_path / "curves.png")]) == 0
    table = capsys.readouterr().out
    assert "CartPole-v1              DQN learning_rate=0.001       40.0 ± 0.0      (1 seeds)" in table
    assert "CartPole-v1              DQN learning_rate=0.0023       20.0 ± 0.0      (1 seeds)" in table


def test_mean_and_spread_over_seeds_on_the_union_of_their_env_steps():
    curves = [
        plot_runs.Curve("A", "E", 0, np.array([0.0, 10.0, 20.0]), np.array([0.0, 10.0, 20.0]), Path()),
        plot_runs.Curve("A", "E", 1, np.array([0.0, 20.0]), np.array([2.0, 22.0]), Path()),
        plot_runs.Curve("A", "E", 2, np.array([0.0, 10.0]), np.array([4.0, 14.0]), Path()),
    ]
    steps, mean, std, counts = plot_runs.mean_and_std(curves)
    np.testing.assert_array_equal(steps, [0, 10, 20])
    # At 10 the second seed is interpolated (12); at 20 the third has stopped and is left out.
    np.testing.assert_allclose(mean, [2, 12, 21])
    np.testing.assert_allclose(std, [np.std([0, 2, 4]), np.std([10, 12, 14]), 1])
    np.testing.assert_array_equal(counts, [3, 3, 2])


def test_writes_one_png_and_a_table_of_final_returns(runs, tmp_path, capsys):
    output = tmp_path / "plots" / "curves.png"
    assert plot_runs.main([str(runs), "--output", str(output)]) == 0
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "CartPole-v1              DQN            40.0 ± 10.0     (2 seeds)" in table
    assert "Pendulum-v1              SAC          -400.0 ± 0.0      (1 seeds)" in table


def test_no_run_with_the_metric_is_an_error(runs, tmp_path, capsys):
    assert plot_runs.main([str(runs), "--metric", "val/no_such_metric", "--output", str(tmp_path / "x.png")]) == 2
    assert "logged val/no_such_metric" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
