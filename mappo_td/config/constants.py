"""The choices, ranges and model defaults that the config fields and the builders share, each defined once here.

``BOUNDS`` gives the range of every per-agent value by its user-facing name; the fields take theirs from it.
"""

from __future__ import annotations

import math

from mappo_td.config.schema import Bounds

FAST_MODES = ("off", "compile", "cudagraphs")  # TrainConfig.fast
BODIES = ("mlp", "gru")  # ModelConfig.body
INITS = ("default", "orthogonal")  # ModelConfig.init
ACTIVATIONS = ("tanh", "relu", "elu", "silu")  # ModelConfig.activation
DISTRIBUTIONS = ("auto", "gaussian", "multivariate_gaussian")  # ModelConfig.distribution (Box actions)
BACKENDS = ("vmas", "pettingzoo")  # EnvConfig.backend
VALUE_LOSSES = ("mse", "huber")  # MAPPOConfig.value_loss
VALUE_CLIP_FORMS = ("prediction", "max")  # MAPPOConfig.value_clip_form

DEFAULT_HIDDEN_SIZES = (64, 64)  # ModelConfig.hidden_sizes, and the builders' default
DEFAULT_ACTIVATION = "tanh"  # ModelConfig.activation

POSITIVE: Bounds = (0.0, math.inf, False)  # > 0
NON_NEGATIVE: Bounds = (0.0, math.inf, True)  # >= 0
UNIT_INTERVAL: Bounds = (0.0, 1.0, True)  # [0, 1]

BOUNDS: dict[str, Bounds] = {  # per-agent field (user-facing name) -> allowed range
    "discount_factor": UNIT_INTERVAL, "lambda": UNIT_INTERVAL, "learning_rate": POSITIVE, "grad_norm_clip": NON_NEGATIVE, "ratio_clip": POSITIVE,
    "value_clip": POSITIVE, "entropy_loss_scale": NON_NEGATIVE, "value_loss_scale": NON_NEGATIVE, "kl_threshold": NON_NEGATIVE,
}
