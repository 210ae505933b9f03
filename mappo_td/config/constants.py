"""The choices, ranges and model defaults the config fields use: defined once, in :mod:`mappo_td.defaults` (the core
reads them there without the configuration), and importable from here.

``BOUNDS`` gives the range of every per-agent value by its user-facing name; the fields take theirs from it.
"""

from __future__ import annotations

from mappo_td.defaults import (  # noqa: F401  (re-exported)
    ACTIVATIONS,
    BACKENDS,
    BODIES,
    BOUNDS,
    DEFAULT_ACTIVATION,
    DEFAULT_HIDDEN_SIZES,
    DEFAULT_RNN_HIDDEN_SIZE,
    DISTRIBUTIONS,
    FAST_MODES,
    INITS,
    NON_NEGATIVE,
    POSITIVE,
    VALUE_CLIP_FORMS,
    VALUE_LOSSES,
)
from mappo_td.defaults import UNIT as UNIT_INTERVAL  # noqa: F401
