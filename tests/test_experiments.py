"""experiments/*.yaml: every config can be resumed with `--ckpt_path last` from the end of any epoch."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

EXPERIMENTS = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml"))
MODEL_CHECKPOINT = "lightning.pytorch.callbacks.ModelCheckpoint"


def test_there_is_a_config_for_every_algorithm():
    algorithms = {yaml.safe_load(path.read_text())["model"]["class_path"] for path in EXPERIMENTS}
    assert algorithms == {f"rl_lightning.{name}" for name in ("DQN", "PPO", "A2C", "SAC", "TD3", "DDPG")}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda path: path.stem)
def test_last_ckpt_is_written_every_epoch_where_ckpt_path_last_finds_it(path):
    """A ModelCheckpoint with a ``monitor`` writes last.ckpt only when the monitored value improves (Lightning 2.6),
    and a fixed ``dirpath`` would not move with ``--trainer.default_root_dir``: each config needs one without a
    monitor that writes ``last.ckpt``, and none with a dirpath (the CLI puts them in <default_root_dir>/checkpoints)."""
    config = yaml.safe_load(path.read_text())
    assert "seed_everything" not in config  # it follows the model's seed (rl_lightning.cli.RLCLI)
    assert config["trainer"]["default_root_dir"] == f"runs/{path.stem}"
    checkpoints = [c["init_args"] for c in config["trainer"]["callbacks"] if c["class_path"] == MODEL_CHECKPOINT]
    assert [c for c in checkpoints if "monitor" not in c] == [{"filename": "last"}]
    assert not any("dirpath" in c for c in checkpoints)
