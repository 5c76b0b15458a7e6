"""The ``rl-lightning`` command: Lightning's CLI for training, plus ``evaluate`` for a checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import torch
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from rl_lightning.algos.base import RLAlgorithm
from rl_lightning.data import Collector, evaluate_policy
from rl_lightning.errors import ConfigurationError


class _ConciseParser(LightningArgumentParser):
    """On a bad option, say what is wrong and where to look, without a screenful of usage first."""

    def print_usage(self, file: object = None) -> None:
        pass


class RLCLI(LightningCLI):
    """``rl-lightning fit|validate --config experiments/<algo>_<env>.yaml [--model.init_args.X ...]``.

    Any :class:`RLAlgorithm` is a model (``model.class_path``); the Trainer defaults differ from
    Lightning's only where RL needs it: ``total_timesteps`` decides when training ends (``max_epochs=-1``),
    and there is no sanity validation before training.
    """

    def __init__(self, args: Sequence[str] | None = None) -> None:
        super().__init__(
            RLAlgorithm,
            subclass_mode_model=True,
            trainer_defaults={"max_epochs": -1, "num_sanity_val_steps": 0},
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_class=_ConciseParser,
            args=args,
        )


def _configuration_error(error: BaseException) -> ConfigurationError | None:
    """The ConfigurationError behind ``error``, however deep jsonargparse or Lightning wrapped it."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ConfigurationError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def load_algorithm(ckpt_path: str, device: str = "cpu") -> RLAlgorithm:
    """The algorithm saved in a checkpoint written by ``rl-lightning fit`` or a Trainer."""
    try:
        checkpoint = torch.load(ckpt_path, map_location=device, weights_only=False)
    except FileNotFoundError:
        raise ConfigurationError(f"--ckpt_path {ckpt_path}: no such file.") from None
    except Exception as err:
        raise ConfigurationError(
            f"--ckpt_path {ckpt_path} is not a readable checkpoint ({type(err).__name__}: {err}); it may be "
            f"truncated or from another program."
        ) from None
    algorithm_path = checkpoint.get("rl_lightning", {}).get("algorithm")
    if algorithm_path is None:
        raise ConfigurationError(f"--ckpt_path {ckpt_path} was not written by an rl-lightning algorithm.")
    module_name, _, class_name = algorithm_path.rpartition(".")
    algorithm_class = getattr(__import__(module_name, fromlist=[class_name]), class_name)
    # LightningCLI adds private keys such as `_class_path` beside the constructor's arguments.
    hyperparameters = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}
    algorithm = algorithm_class(**hyperparameters)
    algorithm.load_state_dict(checkpoint["state_dict"])
    return algorithm.to(device).eval()


def evaluate(argv: Sequence[str]) -> None:
    """``rl-lightning evaluate --ckpt_path PATH``: play deterministic episodes, print one JSON line."""
    parser = argparse.ArgumentParser(
        prog="rl-lightning evaluate", description="Play deterministic episodes with a trained agent."
    )
    parser.add_argument("--ckpt_path", required=True, help="checkpoint written during training")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to play (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation envs (default 0)")
    parser.add_argument("--num_envs", type=int, default=1, help="envs stepped together (default 1)")
    parser.add_argument("--device", default="cpu", help="where the policy runs (default cpu)")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.num_envs < 1:
        raise ConfigurationError("--episodes and --num_envs must be at least 1.")
    algorithm = load_algorithm(args.ckpt_path, args.device)
    collector = Collector(algorithm.make_env(min(args.num_envs, args.episodes)), args.device)
    try:
        episodes = evaluate_policy(
            lambda obs: algorithm.act(obs, deterministic=True), collector, args.episodes, args.seed
        )
    finally:
        collector.close()
    print(
        json.dumps(
            {
                "return_mean": float(episodes.returns.mean()),
                "return_std": float(episodes.returns.std()),
                "length_mean": float(episodes.lengths.mean()),
                "episodes": len(episodes.returns),
            }
        )
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``rl-lightning``; ``argv`` defaults to the command line."""
    command = list(sys.argv[1:] if argv is None else argv)
    try:
        if command and command[0] == "evaluate":
            evaluate(command[1:])
        else:
            RLCLI(args=argv)
    except Exception as error:
        configuration_error = _configuration_error(error)
        if configuration_error is None:
            raise
        print(f"rl-lightning: error: {configuration_error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
