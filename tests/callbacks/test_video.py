"""Evaluation videos: the frames of each episode, the rounds recorded, W&B, envs that cannot render, the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import imageio.v2 as imageio
import lightning as L
import numpy as np
import pytest
import wandb
from lightning.pytorch.loggers import CSVLogger

from rl_lightning import DQN
from rl_lightning.callbacks import EvalVideo, record_episodes
from rl_lightning.cli import main
from rl_lightning.data import Collector, evaluate_policy
from rl_lightning.loggers import WandbLogger
from tests.toy_envs import COUNTING_ID
from tests.tracking import PAINTED_EPISODE, PAINTED_ID, finish_wandb, isolate_wandb, metric_rows

PAINTED = f"tests.tracking:{PAINTED_ID}"
TINY = dict(
    hidden_sizes=(16,),
    buffer_size=10_000,
    learning_starts=128,
    train_freq=4,
    gradient_steps=1,
    steps_per_epoch=256,
    eval_episodes=2,
    eval_envs=1,
)


def trainer(**overrides) -> L.Trainer:
    options = dict(
        max_epochs=-1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    return L.Trainer(**{**options, **overrides})


def frames_of(path: Path) -> list[np.ndarray]:
    return imageio.mimread(path, memtest=False)


@pytest.fixture
def wandb_root(monkeypatch, tmp_path) -> Iterator[Path]:
    yield isolate_wandb(monkeypatch, tmp_path)
    wandb.finish()
    wandb.teardown()


def test_record_episodes_writes_each_episode_from_first_to_final_frame(tmp_path):
    agent = DQN(PAINTED, total_timesteps=256, **TINY)
    paths = [tmp_path / "first.mp4", tmp_path / "second.mp4"]
    episodes = record_episodes(agent, paths, seed=3, fps=10)

    collector = Collector(agent.make_env(1))
    expected = evaluate_policy(agent, collector, 2, seed=3)
    collector.close()
    np.testing.assert_array_equal(episodes.returns, expected.returns)
    assert list(episodes.lengths) == [PAINTED_EPISODE, PAINTED_EPISODE]
    for path in paths:
        frames = frames_of(path)
        assert frames[0].shape == (16, 18, 3)  # 15 x 17 padded to even sides for H.264
        # Gray level 20 t for t = 0 (reset) ... 5 (the final state), up to the codec's rounding.
        levels = [float(frame.mean()) for frame in frames]
        np.testing.assert_allclose(levels, [20 * t for t in range(PAINTED_EPISODE + 1)], atol=4)


def test_eval_video_records_the_chosen_rounds_to_the_run_dir_and_wandb(wandb_root):
    video = EvalVideo(every_n_evals=2, fps=10)
    trainer(logger=WandbLogger(), callbacks=[video]).fit(DQN(PAINTED, total_timesteps=768, **TINY))
    run = finish_wandb(wandb_root)

    # Evaluations at 256, 512 and 768 env steps: the first, then every second, and the last.
    assert [path.name for path in video.paths] == ["eval_env_steps=256.mp4", "eval_env_steps=768.mp4"]
    assert all(path.parent == run.path.parent / "videos" for path in video.paths)
    assert all(len(frames_of(path)) == PAINTED_EPISODE + 1 for path in video.paths)
    logged = metric_rows(run, "val/video")
    assert [row["env_steps"] for row in logged] == [256, 768]
    assert all(row["val/video"]["_type"] == "video-file" for row in logged)


def test_eval_video_skips_an_env_that_cannot_render_with_one_warning(tmp_path):
    logger = CSVLogger(tmp_path)
    with pytest.warns(UserWarning, match=r"EvalVideo: no videos for this run: .*cannot render") as warned:
        trainer(logger=logger, callbacks=[EvalVideo(every_n_evals=1)]).fit(
            DQN(COUNTING_ID, total_timesteps=512, **TINY)
        )
    assert len([w for w in warned if "EvalVideo" in str(w.message)]) == 1
    assert not (Path(logger.log_dir) / "videos").exists()


def test_evaluate_video_records_the_evaluated_episodes(tmp_path, capsys):
    fitted = trainer(logger=False, limit_val_batches=0)
    fitted.fit(DQN(PAINTED, total_timesteps=256, **TINY))
    checkpoint = tmp_path / "agent.ckpt"
    fitted.save_checkpoint(checkpoint)

    evaluate = ["evaluate", "--ckpt_path", str(checkpoint), "--episodes", "2", "--seed", "4"]
    main([*evaluate, "--video", str(tmp_path / "videos"), "--fps", "10"])
    with_video = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    main(evaluate)
    without_video = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    assert with_video == without_video
    assert sorted(path.name for path in (tmp_path / "videos").iterdir()) == ["episode_0.mp4", "episode_1.mp4"]
    assert len(frames_of(tmp_path / "videos" / "episode_1.mp4")) == PAINTED_EPISODE + 1

    with pytest.raises(SystemExit) as exit_:
        main([*evaluate, "--video", str(tmp_path / "more"), "--num_envs", "2"])
    assert exit_.value.code == 2
    assert "--video plays the episodes one after another on one env" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("pygame") is None, reason="CartPole renders with pygame")
def test_evaluate_video_of_a_pygame_env_prints_no_error_line_without_a_desktop_session(tmp_path):
    """``rl-lightning evaluate --video`` of CartPole, run as a user runs it, on a machine without XDG_RUNTIME_DIR:
    pygame's display probe once printed ``error: XDG_RUNTIME_DIR is invalid ...`` though nothing failed."""
    fitted = trainer(logger=False, limit_val_batches=0)
    fitted.fit(DQN("CartPole-v1", total_timesteps=256, **TINY))
    fitted.save_checkpoint(tmp_path / "agent.ckpt")
    environment = {key: value for key, value in os.environ.items() if key != "XDG_RUNTIME_DIR"}
    environment["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    command = [sys.executable, "-m", "rl_lightning.cli", "evaluate", "--ckpt_path", "agent.ckpt", "--episodes", "2"]
    result = subprocess.run(
        [*command, "--video", "videos"], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == []
    assert json.loads(result.stdout.splitlines()[-1])["episodes"] == 2
    assert sorted(path.name for path in (tmp_path / "videos").iterdir()) == ["episode_0.mp4", "episode_1.mp4"]
