"""The constants every layer shares: choice lists, value ranges, model defaults. Imports nothing of mappo_td (nor torch).

The configuration (:mod:`mappo_td.config`) and the core (:mod:`mappo_td.functional`, :mod:`mappo_td.objectives`,
:mod:`mappo_td.models`, :mod:`mappo_td.fast`) both read them from here, so the core stands without the configuration.

Example:
    >>> check_in_bounds("lambda", [0.95], BOUNDS["lambda"])
    >>> DEFAULT_HIDDEN_SIZES, VALUE_LOSSES
    ((64, 64), ('mse', 'huber'))
"""

from __future__ import annotations

import math

# The choices of the string options.
FAST_MODES = ("off", "compile", "cudagraphs")
BODIES = ("mlp", "gru")
VALUE_LOSSES = ("mse", "huber")
VALUE_CLIP_FORMS = ("prediction", "max")
INITS = ("default", "orthogonal")
ACTIVATIONS = ("tanh", "relu", "elu", "silu")  # ModelConfig.activation
DISTRIBUTIONS = ("auto", "gaussian", "multivariate_gaussian")  # ModelConfig.distribution (Box actions)
BACKENDS = ("vmas", "pettingzoo")  # EnvConfig.backend

# Model defaults (the builders' and the configuration's).
DEFAULT_HIDDEN_SIZES = (64, 64)
DEFAULT_ACTIVATION = "tanh"
DEFAULT_RNN_HIDDEN_SIZE = 64
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # a Gaussian policy's log-std is clamped to this range (skrl's)

Bounds = tuple[float, float, bool]  # (low, high, low included); high is always included

POSITIVE: Bounds = (0.0, math.inf, False)  # > 0
NON_NEGATIVE: Bounds = (0.0, math.inf, True)  # >= 0
UNIT: Bounds = (0.0, 1.0, True)  # [0, 1]

# The allowed range of every value that may be given per agent (the configuration's per-agent fields).
BOUNDS: dict[str, Bounds] = {
    "discount_factor": UNIT, "lambda": UNIT, "learning_rate": POSITIVE, "grad_norm_clip": NON_NEGATIVE, "ratio_clip": POSITIVE,
    "value_clip": POSITIVE, "entropy_loss_scale": NON_NEGATIVE, "value_loss_scale": NON_NEGATIVE, "kl_threshold": NON_NEGATIVE,
}


def check_in_bounds(name: str, values: list[float], b: Bounds) -> None:
    """Raise ``ValueError`` unless every value is a finite number within ``b``.

    Example:
        >>> check_in_bounds("lambda", [0.5, 1.5], (0.0, 1.0, True))
        Traceback (most recent call last):
        ...
        ValueError: lambda must be a finite number in [0, 1], got 1.5
    """
    lo, hi, closed = b
    for v in values:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (lo <= v if closed else lo < v) and v <= hi
        if not ok:
            raise ValueError(f"{name} must be a finite number in {'[' if closed else '('}{lo:g}, {hi:g}], got {v!r}")
