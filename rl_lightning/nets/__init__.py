"""Networks: MLPs, encoders for each observation space, heads, and checks of user networks."""

from rl_lightning.nets.checks import NetworkSpec, build_network, check_output_shape, example_observations
from rl_lightning.nets.continuous import (
    ActionScaling,
    ContinuousQNetworks,
    DeterministicActor,
    SquashedGaussianActor,
    action_dim,
    build_critic,
    sample_squashed_gaussian,
)
from rl_lightning.nets.encoders import FlattenEncoder, NatureCNN, OneHotEncoder, is_image_space, make_encoder
from rl_lightning.nets.mlp import mlp
from rl_lightning.nets.normalization import RunningMeanStd
from rl_lightning.nets.policies import (
    ActorCritic,
    Categorical,
    CategoricalHead,
    DiagGaussian,
    DiagGaussianHead,
    MultiCategorical,
    MultiCategoricalHead,
    default_actor,
    default_critic,
    make_action_head,
    orthogonal_init,
)
from rl_lightning.nets.polyak import polyak_update, target_network
from rl_lightning.nets.q import QNetwork

__all__ = [
    "ActionScaling",
    "ActorCritic",
    "Categorical",
    "CategoricalHead",
    "ContinuousQNetworks",
    "DeterministicActor",
    "DiagGaussian",
    "DiagGaussianHead",
    "FlattenEncoder",
    "MultiCategorical",
    "MultiCategoricalHead",
    "NatureCNN",
    "NetworkSpec",
    "OneHotEncoder",
    "QNetwork",
    "RunningMeanStd",
    "SquashedGaussianActor",
    "action_dim",
    "build_critic",
    "build_network",
    "check_output_shape",
    "default_actor",
    "default_critic",
    "example_observations",
    "is_image_space",
    "make_action_head",
    "make_encoder",
    "mlp",
    "orthogonal_init",
    "polyak_update",
    "sample_squashed_gaussian",
    "target_network",
]
