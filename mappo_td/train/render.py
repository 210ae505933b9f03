"""Frames of an environment: the first env's RGB frame, and the check that a run's environment can render at all."""

from __future__ import annotations

from typing import Any

import torch
from torchrl.envs import EnvBase

from mappo_td.config import EnvConfig
from mappo_td.envs import make_env


class RenderError(RuntimeError):
    """The environment cannot render frames here."""


def render_frame(env: EnvBase, backend: str) -> Any:
    """The current frame of ``env``'s first environment, an ``H x W x 3`` uint8 array (PettingZoo: ``env`` made with
    ``make_env(..., render=True)``), or a :class:`RenderError` saying why there is none.

    Example:
        >>> env = make_env(EnvConfig(backend="pettingzoo", scenario="simple_spread_v3", num_envs=2, num_workers=1), render=True)
        >>> _ = env.reset(); render_frame(env, "pettingzoo").shape
        (700, 700, 3)
    """
    try:  # PettingZoo renders in its constructor's render_mode; batched, every copy answers
        frame = env.render(mode="rgb_array") if backend == "vmas" else env.render()
    except Exception as err:  # no display, no renderer for this scenario ...
        raise RenderError(f"the environment cannot render frames here ({type(err).__name__}: {err}).") from None
    if isinstance(frame, (list, tuple)) and frame:
        frame = frame[0]
    if getattr(frame, "ndim", 0) != 3 or frame.shape[-1] not in (3, 4):
        raise RenderError(f"the environment rendered {type(frame).__name__} {getattr(frame, 'shape', '')}, not an RGB frame.")
    return frame


def check_render(cfg: EnvConfig, device: torch.device | str = "cpu") -> None:
    """Build one environment of ``cfg`` for rendering and render its first frame: ``experiment.eval_render``'s check,
    before anything is trained or written; a :class:`RenderError` that says why not (Pillow, which writes the GIFs, too).

    Example:
        >>> check_render(EnvConfig(backend="pettingzoo", scenario="simple_spread_v3", num_envs=1, num_workers=1))
    """
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise RenderError("rendering to a GIF needs Pillow: pip install pillow") from None
    env = make_env(cfg, device, num_envs=1, render=True)  # PettingZoo: a task without render_mode is refused here
    try:
        env.reset()
        render_frame(env, cfg.backend)
    except RenderError as err:
        raise RenderError(f"{cfg.scenario}: {err} Train without --eval-render (experiment.eval_render=false).") from None
    finally:
        env.close()
