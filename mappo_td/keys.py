"""The TensorDict contract shared by :class:`~mappo_td.MAPPOLoss` and :class:`~mappo_td.MAPPOGAE`.

=================  ======================================  ====================================
``set_keys`` name  default (for group ``g``)               meaning
=================  ======================================  ====================================
action             ``(g, "action")``                       taken actions ``[*B, n, *A]``
sample_log_prob    ``(g, "action_log_prob")``              log p at collection ``[*B, n]``
advantage          ``(g, "advantage")``                    A ``[*B, n, 1]`` (written by GAE)
value_target       ``(g, "value_target")``                 returns R ``[*B, n, 1]`` (GAE)
value              ``(g, "state_value")``                  critic output V ``[*B, n, 1]``
reward             ``(g, "reward")``                       under ``"next"``: per agent, else the root
                                                           entry of the same name (team ``[*B, 1]``)
done               ``(g, "done")``                         as ``reward``
terminated         ``(g, "terminated")``                   as ``reward``
truncated          ``(g, "truncated")``                    as ``reward``
alive              ``(g, "mask")``                         the agent acts at this step ``[*B, n]``
                                                           (bool; absent: every agent, always)
steps_to_next_obs  ``"steps_to_next_obs"``                 TorchRL's estimator base class reads it; unused
=================  ======================================  ====================================

``alive`` is the reference's ``active_masks``: TorchRL's PettingZoo wrapper (``use_mask=True``)
writes ``(g, "mask")``, false for an agent that is dead, absent, or waiting for its turn.
Where it is false, the loss and the advantage standardization leave the entry out; an
agent's death must also be reported as its own ``done`` (the wrapper does) so that GAE does
not bootstrap through it. A legal-action mask, ``(g, "action_mask")``, is the policy's
input, not the loss's (:mod:`mappo_td.models.distributions`).

One dataclass, one name check: renaming a key on the loss reaches the estimator it
owns (``make_value_estimator``), as TorchRL's losses do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NestedKey = str | tuple[str, ...]

_LEAVES = {"action": "action", "sample_log_prob": "action_log_prob", "advantage": "advantage", "value_target": "value_target",
           "value": "state_value", "reward": "reward", "done": "done", "terminated": "terminated", "truncated": "truncated",
           "alive": "mask"}


@dataclass
class MAPPOKeys:
    """Keys of the loss and the estimator: action, sample_log_prob, advantage, value_target, value, reward, done, terminated,
    truncated, alive."""

    action: NestedKey = ("agents", "action")
    sample_log_prob: NestedKey = ("agents", "action_log_prob")
    advantage: NestedKey = ("agents", "advantage")
    value_target: NestedKey = ("agents", "value_target")
    value: NestedKey = ("agents", "state_value")
    reward: NestedKey = ("agents", "reward")
    done: NestedKey = ("agents", "done")
    terminated: NestedKey = ("agents", "terminated")
    truncated: NestedKey = ("agents", "truncated")
    alive: NestedKey = ("agents", "mask")
    steps_to_next_obs: NestedKey = "steps_to_next_obs"  # read by TorchRL's estimator base class only


def group_keys(group: str) -> dict[str, NestedKey]:
    """The default keys of ``group`` (every name of :class:`MAPPOKeys` but TorchRL's own).

    Example:
        >>> group_keys("red")["value"]
        ('red', 'state_value')
    """
    return {name: (group, leaf) for name, leaf in _LEAVES.items()}


def check_key_names(owner: str, names: Mapping[str, Any] | list[str]) -> None:
    """Raise ``ValueError`` naming the valid ones if any of ``names`` is not a :class:`MAPPOKeys` field.

    Example:
        >>> check_key_names("MAPPOLoss", ["advantages"])
        Traceback (most recent call last):
        ...
        ValueError: unknown key name(s) ['advantages'] for MAPPOLoss.set_keys; valid names: ['action', 'sample_log_prob', 'advantage', 'value_target', 'value', 'reward', 'done', 'terminated', 'truncated', 'alive', 'steps_to_next_obs'].
    """
    valid = [f.name for f in dataclasses.fields(MAPPOKeys)]
    unknown = [k for k in names if k not in valid]
    if unknown:
        raise ValueError(f"unknown key name(s) {unknown} for {owner}.set_keys; valid names: {valid}.")


class KeyContract:
    """Mixin for TorchRL ``LossModule`` / ``ValueEstimatorBase`` subclasses: the shared keys, checked ``set_keys``.

    Example:
        >>> from mappo_td import MAPPOGAE
        >>> MAPPOGAE("red").tensor_keys.reward
        ('red', 'reward')
    """

    _AcceptedKeys = MAPPOKeys
    default_keys = MAPPOKeys

    def set_keys(self, **kwargs: NestedKey) -> None:
        """Rename the keys read and written (names as in :mod:`mappo_td.keys`); unknown names raise ``ValueError``."""
        check_key_names(type(self).__name__, kwargs)
        super().set_keys(**kwargs)
