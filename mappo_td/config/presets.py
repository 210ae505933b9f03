"""Named configuration presets: ``mappo-td train --preset NAME``, or ``TrainConfig.from_dict(preset("NAME"))``.

``mappo-paper`` switches from skrl's defaults (skrl's MAPPO_DEFAULT_CONFIG, mappo_td's defaults) to
the MAPPO reference implementation's (Yu et al. 2022, on-policy ``config.py``):

=========================  ================  ==========================================
option                     skrl (default)    ``mappo-paper``
=========================  ================  ==========================================
``value_loss``             ``mse``           ``huber``, ``huber_delta`` 10
``value_preprocessor``     none              ``ValueNorm`` (β = 0.99999, debiased)
``clip_predicted_values``  false             true, ``value_clip_form`` ``max``
``*_active_masks``         true              true (alive masks where the env gives them)
``model``                  MLP 64-64, Tanh   the reference's recurrent layout: LayerNorm(input), MLP 64-64
                                             (LayerNorm after each), GRU(64), LayerNorm, Linear; orthogonal
                                             init (action layer gain 0.01); ReLU
``learning_rate``          1e-3              5e-4
``learning_epochs``        8                 15
``mini_batches``           2                 1
``entropy_loss_scale``     0                 0.01
``grad_norm_clip``         0.5               10
``rollouts``               16                200 (``episode_length``), ``data_chunk_length`` 10
=========================  ================  ==========================================

Precedence:
defaults < preset < config file < command-line flags (e.g. ``--preset mappo-paper --rollouts 25
--data-chunk-length 5`` for 25-step MPE episodes).
"""

from __future__ import annotations

import copy
from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "mappo-paper": {
        "mappo": {
            "value_loss": "huber", "huber_delta": 10.0, "value_preprocessor": "ValueNorm",
            "clip_predicted_values": True, "value_clip_form": "max", "policy_active_masks": True, "value_active_masks": True,
            "learning_rate": 5e-4, "learning_epochs": 15, "mini_batches": 1, "entropy_loss_scale": 0.01, "grad_norm_clip": 10.0,
            "rollouts": 200, "data_chunk_length": 10,
        },
        "model": {"body": "gru", "rnn_hidden_size": 64, "rnn_encoder": [64, 64], "hidden_sizes": [], "layer_norm": True,
                  "init": "orthogonal", "activation": "relu"},
    },
}


def preset(name: str) -> dict[str, Any]:
    """A copy of preset ``name``'s config (the typed layout), or a ``ValueError`` listing the presets.

    Example:
        >>> from mappo_td import TrainConfig
        >>> cfg = TrainConfig.from_dict(preset("mappo-paper"))
        >>> cfg.mappo.value_loss, cfg.mappo.value_preprocessor, cfg.model.body
        ('huber', 'ValueNorm', 'gru')
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}.")
    return copy.deepcopy(PRESETS[name])
