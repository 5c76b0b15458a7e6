"""``rl-lightning report``: runs read from CSV logs and offline W&B runs, joined across resumes, grouped by
configuration, summarised as IQMs with stratified bootstrap intervals (rliable), drawn as curves and profiles.

Most runs here are written by hand, so that every number the report prints can be computed beside it; one test reads
the real runs of ``rl-lightning fit --seeds`` (the session fixture ``seeded_runs``).
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import wandb
import yaml

from rl_lightning.report import (
    Piece,
    Run,
    common_curve,
    group_runs,
    iqm,
    iqm_over_runs,
    join_pieces,
    score_distribution,
    score_range,
)
from tests.seeded_runs import RESUMED_TOTAL, run_cli
from tests.tracking import finish_wandb, isolate_wandb

PNG = b"\x89PNG\r\n\x1a\n"
REPS = "2000"


def write_csv_run(version: Path, config: dict, points: list[tuple[int, float]]) -> None:
    """A version folder as Lightning's CSVLogger leaves it: hparams.yaml (tuples tagged, as yaml.dump writes them) and
    metrics.csv with evaluation rows and training rows apart."""
    version.mkdir(parents=True)
    (version / "hparams.yaml").write_text(yaml.dump({**config, "hidden_sizes": (64, 64), "_instantiator": "x"}))
    rows = ["env_steps,step,train/episode_return,val/return_mean"]
    for steps, value in points:
        rows += [f"{steps}.0,{steps},,{value}", f"{steps}.0,{steps},{value / 2},"]
    (version / "metrics.csv").write_text("\n".join(rows) + "\n")


def config(algorithm: str, env_id: str, seed: int, learning_rate: float) -> dict:
    return {"algorithm": algorithm, "env_id": env_id, "seed": seed, "learning_rate": learning_rate, "gamma": 0.99}


# Final returns by seed; PPO's seeds 0 and 1 are pieced together from two version folders each (below). Eight seeds
# of spread-out values make the bootstrap distribution smooth enough to compare with another bootstrap's.
PPO_CARTPOLE_FINALS = [0.0, 20.0, 60.0, 110.0, 180.0, 260.0, 370.0, 500.0]
PPO_CARTPOLE_BESTS = [10.0, 20.0, 250.0, 110.0, 180.0, 260.0, 370.0, 500.0]
PPO_LR_FINALS = [150.0, 250.0]
PPO_ACROBOT_FINALS = [-500.0, -450.0, -380.0, -300.0, -220.0, -150.0, -100.0, -80.0]
DQN_CARTPOLE_FINALS = [200.0, 300.0, 500.0]
DQN_ACROBOT_FINALS = [-200.0, -150.0, -90.0]  # seed 2 logged to W&B


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("runs")
    ppo = root / "cartpole" / "ppo"
    # Seed 0 was resumed after its first evaluation; seed 1 was started afresh in the same folder, replacing a run.
    write_csv_run(ppo / "seed_0/lightning_logs/version_0", config("PPO", "CartPole-v1", 0, 1e-3), [(100, 10.0)])
    write_csv_run(ppo / "seed_0/lightning_logs/version_1", config("PPO", "CartPole-v1", 0, 1e-3), [(200, 0.0)])
    old = [(100, 400.0), (200, 450.0), (300, 480.0)]
    write_csv_run(ppo / "seed_1/lightning_logs/version_0", config("PPO", "CartPole-v1", 1, 1e-3), old)
    new = [(100, 5.0), (200, 20.0)]
    write_csv_run(ppo / "seed_1/lightning_logs/version_1", config("PPO", "CartPole-v1", 1, 1e-3), new)
    for seed in range(2, 8):
        points = [(100, PPO_CARTPOLE_BESTS[seed] if seed == 2 else 40.0), (200, PPO_CARTPOLE_FINALS[seed])]
        write_csv_run(ppo / f"seed_{seed}/lightning_logs/version_0", config("PPO", "CartPole-v1", seed, 1e-3), points)
    for seed, final in enumerate(PPO_LR_FINALS):
        write_csv_run(
            root / f"cartpole/ppo_lr/seed_{seed}/lightning_logs/version_0",
            config("PPO", "CartPole-v1", seed, 1e-2),
            [(100, 50.0), (200, final)],
        )
    for seed, final in enumerate(PPO_ACROBOT_FINALS):
        write_csv_run(
            root / f"acrobot/ppo/seed_{seed}/lightning_logs/version_0",
            config("PPO", "Acrobot-v1", seed, 1e-3),
            [(1000, -500.0), (2000, final)],
        )
    for seed, final in enumerate(DQN_CARTPOLE_FINALS):
        write_csv_run(
            root / f"cartpole/dqn/seed_{seed}/lightning_logs/version_0",
            config("DQN", "CartPole-v1", seed, 2.3e-3),
            [(100, 9.0), (200, final)],
        )
    for seed, final in enumerate(DQN_ACROBOT_FINALS[:2]):
        write_csv_run(
            root / f"acrobot/dqn/seed_{seed}/lightning_logs/version_0",
            config("DQN", "Acrobot-v1", seed, 2.3e-3),
            [(1000, -500.0), (2000, final)],
        )
    with pytest.MonkeyPatch.context() as monkeypatch:
        wandb_root = isolate_wandb(monkeypatch, root / "acrobot" / "dqn" / "seed_2")
        run = wandb.init(project="report", config={**config("DQN", "Acrobot-v1", 2, 2.3e-3), "hidden_sizes": [64, 64]})
        for steps, value in [(1000, -500.0), (2000, DQN_ACROBOT_FINALS[2])]:
            run.log({"env_steps": steps, "val/return_mean": value})
        finish_wandb(wandb_root)
        wandb.teardown()
    yield root


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return run_cli("report", str(runs), "--out", str(out), "--reps", REPS), out


def table_rows(text: str) -> dict[tuple[str, str], list[str]]:
    """The per-configuration table: (env, configuration) -> the other columns."""
    rows = {}
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 6 and cells[0] != "env":
            rows[(cells[0], cells[1])] = cells[2:]
    return rows


def interval(cell: str) -> tuple[float, float, float]:
    point, low, high = re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", cell).groups()
    return float(point), float(low), float(high)


def interquartile_mean(values: list[float]) -> float:
    """The mean of the values left when a quarter (rounded down) is cut from each end."""
    ordered, cut = sorted(values), len(values) // 4
    return float(np.mean(ordered[cut : len(ordered) - cut]))


def bootstrap_interval(scores: list[float] | np.ndarray, reps: int = 20_000) -> tuple[float, float]:
    """A 95% percentile interval of the IQM over ``scores`` (runs, or runs x envs), written apart from rliable: each
    resample draws the runs of every env from that env's runs (stratified)."""
    data = np.asarray(scores, dtype=float).reshape(len(scores), -1)
    runs, envs = data.shape
    picks = np.random.default_rng(1).integers(0, runs, (reps, runs, envs))
    samples = np.sort(np.take_along_axis(np.broadcast_to(data, picks.shape), picks, axis=1).reshape(reps, -1), axis=1)
    cut = samples.shape[1] // 4
    return tuple(np.percentile(samples[:, cut : samples.shape[1] - cut].mean(axis=1), [2.5, 97.5]))


def assert_iqm_cell(cell: str, values: list[float]) -> None:
    point, low, high = interval(cell)
    assert point == pytest.approx(interquartile_mean(values), abs=0.05)
    expected_low, expected_high = bootstrap_interval(values)
    tolerance = 0.04 * (max(values) - min(values))  # Monte Carlo error of 2,000 resamples
    assert low == pytest.approx(expected_low, abs=tolerance)
    assert high == pytest.approx(expected_high, abs=tolerance)


def test_prints_seeds_and_final_and_best_iqm_with_intervals_per_configuration(report):
    result, _ = report
    assert result.status == 0, result.err
    rows = table_rows(result.out)
    assert set(rows) == {
        ("Acrobot-v1", "DQN"),
        ("Acrobot-v1", "PPO learning_rate=0.001"),
        ("CartPole-v1", "DQN"),
        ("CartPole-v1", "PPO learning_rate=0.001"),
        ("CartPole-v1", "PPO learning_rate=0.01"),
    }
    seeds, steps, final, best = rows[("CartPole-v1", "PPO learning_rate=0.001")]
    assert (seeds, steps) == ("8", "200")
    # The IQM (the mean of the middle four: 152.5) is not the mean (187.5); seeds 0 and 1 are their joined pieces.
    assert interval(final)[0] == 152.5
    assert_iqm_cell(final, PPO_CARTPOLE_FINALS)
    assert_iqm_cell(best, PPO_CARTPOLE_BESTS)
    # Two seeds: the IQM is their mean, and every bootstrap resample lies between them.
    seeds, _, final, _ = rows[("CartPole-v1", "PPO learning_rate=0.01")]
    assert (seeds, final) == ("2", "200.0 [150.0, 250.0]")
    # The W&B run is the third seed of DQN on Acrobot.
    seeds, steps, final, _ = rows[("Acrobot-v1", "DQN")]
    assert (seeds, steps) == ("3", "2,000")
    assert_iqm_cell(final, DQN_ACROBOT_FINALS)
    assert_iqm_cell(rows[("Acrobot-v1", "PPO learning_rate=0.001")][2], PPO_ACROBOT_FINALS)
    assert "With fewer than 5 seeds" in result.out


def test_compares_configurations_across_envs_on_normalised_scores(report):
    result, out = report
    text = result.out
    # Normalised by the return ranges of CartPole-v1 (0 to 500) and Acrobot-v1 (-500 to 0): runs x envs.
    ppo = np.array([[final / 500 for final in PPO_CARTPOLE_FINALS], [(f + 500) / 500 for f in PPO_ACROBOT_FINALS]]).T
    dqn = np.array([[final / 500 for final in DQN_CARTPOLE_FINALS], [(f + 500) / 500 for f in DQN_ACROBOT_FINALS]]).T
    rows = {}
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 3 and cells[1].isdigit():
            rows[cells[0]] = cells[1:]
    assert set(rows) == {"PPO learning_rate=0.001", "DQN"}
    assert (rows["PPO learning_rate=0.001"][0], rows["DQN"][0]) == ("8", "3")
    for label, scores in (("PPO learning_rate=0.001", ppo), ("DQN", dqn)):
        point, low, high = interval(rows[label][1])
        assert point == pytest.approx(interquartile_mean(scores.ravel().tolist()), abs=5e-4)
        expected = bootstrap_interval(scores)
        assert (low, high) == pytest.approx(expected, abs=0.03)
    assert "CartPole-v1: low 0, high 500 (the env's return range)" in text
    assert "Acrobot-v1: low -500, high 0 (the env's return range)" in text
    # The learning-rate variant ran on CartPole only.
    assert "PPO learning_rate=0.01 has no runs on Acrobot-v1" in result.err
    for name in ("curves.png", "profiles.png"):
        assert (out / name).read_bytes()[:8] == PNG


def test_a_score_range_given_replaces_the_known_one(runs, tmp_path):
    dqn = [str(runs / env / "dqn") for env in ("cartpole", "acrobot")]
    result = run_cli("report", *dqn, "--out", str(tmp_path), "--reps", "100", "--score_range", "Acrobot-v1=-500:-100")
    assert result.status == 0, result.err
    assert "Acrobot-v1: low -500, high -100 (--score_range)" in result.out


def test_the_pieces_of_a_run_are_joined_the_later_replacing_the_earlier_from_its_first_step():
    def piece(version: int, points: list[tuple[int, float]]) -> Piece:
        steps, returns = (np.array(column, dtype=float) for column in zip(*points))
        return Piece(Path("logs"), (version, f"version_{version}"), config("A", "E", 0, 1.0), steps, returns, Path())

    # Resumed from the checkpoint at step 200 after the run had logged 300: the replayed epoch replaces it.
    run = join_pieces([piece(1, [(300, 5.0), (400, 6.0)]), piece(0, [(100, 1.0), (200, 2.0), (300, 3.0)])])
    assert run.env_steps.tolist() == [100, 200, 300, 400]
    assert run.returns.tolist() == [1, 2, 5, 6]
    assert (run.final, run.best) == (6, 6)
    assert "seed" not in run.hyperparameters and run.hyperparameters["learning_rate"] == 1.0


def test_curves_use_the_env_steps_every_seed_reached():
    def run(steps: list[float], returns: list[float]):
        piece = Piece(Path(), (0, ""), config("A", "E", 0, 1.0), np.array(steps), np.array(returns), Path())
        return join_pieces([piece])

    steps, values = common_curve([run([0, 10, 20, 30], [0, 10, 20, 30]), run([0, 20], [2, 22])])
    assert steps.tolist() == [0, 10, 20]
    assert values.tolist() == [[0, 10, 20], [2, 12, 22]]


def test_an_env_without_a_known_range_is_normalised_by_the_returns_given():
    low, high, source = score_range("MyEnv-v0", {}, np.array([3.0, -1.0, 7.0]))
    assert (low, high) == (-1.0, 7.0)
    assert source == "the lowest and highest final return among these runs"
    assert score_range("CartPole-v1", {}, np.ones(1))[:2] == (0.0, 500.0)
    assert score_range("CartPole-v1", {"CartPole-v1": (10.0, 20.0)}, np.ones(1))[:2] == (10.0, 20.0)


def test_two_runs_of_one_seed_count_once(tmp_path):
    for name, points in (("a", [(100, 1.0), (200, 2.0)]), ("b", [(100, 1.0)])):
        write_csv_run(tmp_path / name / "lightning_logs/version_0", config("A", "E", 0, 1.0), points)
    # The folder a is also given on its own: its run is read once.
    result = run_cli("report", str(tmp_path), str(tmp_path / "a"), "--out", str(tmp_path / "out"), "--reps", "200")
    assert result.status == 0, result.err
    assert table_rows(result.out)[("E", "A")][:3] == ["1", "200", "2.0 [2.0, 2.0]"]
    assert result.err.count("two runs of A on E with seed 0") == 1


def test_reads_the_runs_of_fit_with_seeds_joined_across_the_resume(seeded_runs, tmp_path):
    finals, bests = [], []
    for seed in (0, 1):
        values = []
        for version in (0, 1):
            metrics = seeded_runs.root / f"seed_{seed}/lightning_logs/version_{version}/metrics.csv"
            with open(metrics, newline="") as file:
                values += [float(row["val/return_mean"]) for row in csv.DictReader(file) if row["val/return_mean"]]
        finals.append(values[-1])
        bests.append(max(values))
    result = run_cli("report", str(seeded_runs.root), "--out", str(tmp_path), "--reps", REPS)
    assert result.status == 0, result.err
    ((key, (seeds, steps, final, best)),) = table_rows(result.out).items()
    assert key == ("CartPole-v1", "PPO")
    assert (seeds, steps) == ("2", f"{RESUMED_TOTAL}")
    # Two seeds: the IQM is their mean and the interval runs from one to the other.
    assert final == f"{np.mean(finals):.1f} [{min(finals):.1f}, {max(finals):.1f}]"
    assert best == f"{np.mean(bests):.1f} [{min(bests):.1f}, {max(bests):.1f}]"
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG
    assert not (tmp_path / "profiles.png").exists()  # one env


def only_training_metrics(root: Path) -> Path:
    """A run that logged training metrics but no evaluation (eval_episodes=0)."""
    write_csv_run(root / "lightning_logs" / "version_0", config("A", "E", 0, 1.0), [])
    (root / "lightning_logs" / "version_0" / "metrics.csv").write_text("env_steps,train/episode_return\n100.0,9.0\n")
    return root


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "missing", "missing does not exist"),
        (lambda root: root, "holds no runs"),
        (only_training_metrics, "logged no val/return_mean"),
    ],
    ids=["missing", "empty", "no-evaluations"],
)
def test_bad_input_is_one_message(tmp_path, make, message):
    root = tmp_path / "runs"
    root.mkdir()
    result = run_cli("report", str(make(root)), "--out", str(tmp_path / "out"))
    assert result.status == 2
    assert message in result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "out").exists()


def test_a_malformed_score_range_is_refused(tmp_path):
    result = run_cli("report", str(tmp_path), "--score_range", "CartPole-v1=500:0")
    assert result.status == 2
    assert "write ENV=LOW:HIGH with LOW < HIGH" in result.err


def test_without_rliable_the_command_names_the_extra(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "rliable", None)  # an import of it now fails as if it were not installed
    result = run_cli("report", str(runs), "--out", str(tmp_path / "out"))
    assert result.status == 2
    assert 'pip install "rl-lightning[rliable]"' in result.err
    assert not (tmp_path / "out").exists()


def test_the_vectorised_statistics_equal_rliables():
    from rliable import library, metrics

    scores = np.random.default_rng(0).normal(size=(7, 2, 5))
    for runs in range(1, 8):
        expected = [metrics.aggregate_iqm(scores[:runs, :, point]) for point in range(5)]
        np.testing.assert_allclose([iqm(scores[:runs, :, point])[0] for point in range(5)], expected)
        np.testing.assert_allclose(
            iqm_over_runs(scores[:runs, :1]), [metrics.aggregate_iqm(scores[:runs, 0, p]) for p in range(5)]
        )
    taus = np.linspace(-2, 2, 9)
    np.testing.assert_allclose(
        score_distribution(scores[..., 0], taus), library.score_distributions(scores[..., 0], taus)
    )


def test_configurations_are_named_by_what_sets_them_apart():
    def run(env_id: str, **hyperparameters: float) -> Run:
        base = {"a": 1, "b": 1, "c": 1, "d": 1, "gamma": 0.99}
        return Run("PPO", env_id, 0, {**base, **hyperparameters}, np.ones(1), np.ones(1), [Path()])

    labels = [group.label for group in group_runs([run("E"), run("E", d=2), run("F")])]
    # d alone sets two groups apart on E; on F the default is named the same way, so it is matched across envs.
    assert labels == ["PPO d=1", "PPO d=2", "PPO d=1"]
    labels = [group.label for group in group_runs([run("E"), run("E", a=2, d=2), run("E", a=2, d=3)])]
    assert labels == ["PPO a=1, d=1", "PPO a=2, d=2", "PPO a=2, d=3"]
    labels = [group.label for group in group_runs([run("E"), run("E", a=2, b=2, c=2), run("E", a=2, b=2, c=2, d=2)])]
    # Three keys do not tell the last two apart: all four are spelled out.
    assert labels == ["PPO a=1, b=1, c=1, d=1", "PPO a=2, b=2, c=2, d=1", "PPO a=2, b=2, c=2, d=2"]


def test_labels_name_the_configurations_of_their_folders_and_match_them_across_envs(runs, tmp_path):
    labelled = run_cli(
        "report", str(runs), "--out", str(tmp_path), "--reps", REPS,
        "--label", f"{runs / 'cartpole' / 'dqn'}=DQN (RL-Zoo)", "--label", f"{runs / 'acrobot' / 'dqn'}=DQN (RL-Zoo)",
        "--label", f"{runs / 'cartpole' / 'ppo_lr'}=PPO fast",
    )
    assert labelled.status == 0, labelled.err
    rows = table_rows(labelled.out)
    assert {("CartPole-v1", "DQN (RL-Zoo)"), ("Acrobot-v1", "DQN (RL-Zoo)"), ("CartPole-v1", "PPO fast")} <= set(rows)
    assert ("CartPole-v1", "PPO learning_rate=0.001") in rows  # runs in no labelled folder keep their derived name
    assert_iqm_cell(rows[("CartPole-v1", "DQN (RL-Zoo)")][2], DQN_CARTPOLE_FINALS)
    across_envs = labelled.out.split("Across 2 envs")[1]
    assert re.search(r"^DQN \(RL-Zoo\)\s+3\s", across_envs, re.MULTILINE)  # one configuration, 3 runs on each env


@pytest.mark.parametrize(
    ("label", "message"),
    [("no-equals-sign", "expected FOLDER=NAME"), ("cartpole=", "expected FOLDER=NAME")],
)
def test_a_malformed_label_is_refused(runs, tmp_path, label, message):
    result = run_cli("report", str(runs), "--out", str(tmp_path), "--label", label)
    assert result.status == 2 and message in result.err
