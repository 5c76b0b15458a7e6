"""Networks: MLPs, encoders for each observation space, heads, and checks of user networks."""

from rl_lightning.nets.checks import NetworkSpec, build_network, check_output_shape, example_observations
from rl_lightning.nets.encoders import FlattenEncoder, NatureCNN, OneHotEncoder, is_image_space, make_encoder
from rl_lightning.nets.mlp import mlp
from rl_lightning.nets.q import QNetwork

__all__ = [
    "FlattenEncoder",
    "NatureCNN",
    "NetworkSpec",
    "OneHotEncoder",
    "QNetwork",
    "build_network",
    "check_output_shape",
    "example_observations",
    "is_image_space",
    "make_encoder",
    "mlp",
]
