"""Adding TorchRL transforms to an environment without changing it: one place for the envs and the models.

:func:`with_transforms` is what :func:`mappo_td.envs.with_episode_stats` (training statistics) and
:func:`mappo_td.models.with_recurrent_state` (recurrent states) use; it imports nothing of mappo_td.
"""

from __future__ import annotations

from torchrl.envs import Compose, EnvBase, TransformedEnv


def with_transforms(env: EnvBase, transforms: list) -> EnvBase:
    """A new ``TransformedEnv`` running ``env``'s own transforms (cloned: ``env`` is not changed), then ``transforms``;
    ``env`` itself when there are none.

    Example:
        >>> from torchrl.envs import StepCounter
        >>> from torchrl.envs.libs.vmas import VmasEnv
        >>> env = TransformedEnv(VmasEnv("navigation", num_envs=2, n_agents=2), StepCounter())
        >>> with_transforms(env, []) is env, len(with_transforms(env, [StepCounter(step_count_key="n")]).transform) == 2
        (True, True)
    """
    return TransformedEnv(env, Compose(*transforms), auto_unwrap=True) if transforms else env
