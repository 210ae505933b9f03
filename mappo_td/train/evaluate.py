"""Evaluation: the deterministic policy for a number of episodes, optionally rendered to a GIF. Writes nothing else."""

from __future__ import annotations

from pathlib import Path

import torch
from tensordict import TensorDictBase
from tensordict.nn import InteractionType, TensorDictSequential, set_interaction_type
from torchrl.envs import EnvBase

from mappo_td.atomic import atomic_write
from mappo_td.envs import make_env
from mappo_td.models.recurrent import with_recurrent_state
from mappo_td.train.checkpoint import CheckpointError, load_checkpoint, save_learner
from mappo_td.train.learner import Learner
from mappo_td.train.render import RenderError, render_frame
from mappo_td.train.stats import episode_returns


@torch.no_grad()
def evaluate(learner: Learner, episodes: int = 10, render: str | None = None, env: EnvBase | None = None,
             frames: list | None = None) -> dict[str, float]:
    """Mean episode return (mean over agents) of the deterministic policy over ``episodes`` episodes.

    The environment: ``env`` if given; else the one the learner was built with when
    the caller gave it (its collector is reset afterwards); else a fresh one from the
    config (seed + 1, up to ``episodes`` parallel copies). ``render``: a GIF path for
    the first episode of the first env; ``frames``: a list that receives that episode's frames (rendered
    without writing a GIF when ``render`` is not given).

    Example:
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner
        >>> lrn = build_learner(TrainConfig.from_dict({"device": "cpu", "env": {"num_envs": 4, "max_steps": 10}}))
        >>> evaluate(lrn, episodes=3)["episodes"]
        3.0
    """
    cfg = learner.cfg
    if render is not None and not Path(render).resolve().parent.is_dir():
        raise ValueError(f"--render {render}: the folder {Path(render).resolve().parent} does not exist; create it, or write the GIF elsewhere.")
    reuse = env is None and learner.user_env
    want = render is not None or frames is not None
    if env is None:
        n = min(episodes, cfg.env.num_envs)
        env = learner.env if reuse else make_env(cfg.env, learner.device, cfg.seed + 1, num_envs=n, render=want)
    policy = TensorDictSequential(*[g.policy for g in learner.groups])
    env = with_recurrent_state(env, policy)  # recurrent policies: InitTracker + their state (no-op otherwise)
    returns: list[torch.Tensor] = []
    frames = [] if frames is None else frames

    def grab(e: EnvBase, _: TensorDictBase) -> None:
        try:
            frames.append(render_frame(e, cfg.env.backend))
        except RenderError as err:
            raise RenderError(f"{cfg.env.scenario}: {err} Evaluate without --render (train without --eval-render).") from None

    with set_interaction_type(InteractionType.DETERMINISTIC):
        while sum(len(r) for r in returns) < episodes:
            grabbing = want and not frames
            td = env.rollout(cfg.env.max_steps, policy, break_when_any_done=False, callback=grab if grabbing else None)
            done = td.get(("next", "done")).squeeze(-1)
            if grabbing:
                _keep_first_episode(frames, done)
            first = done.long().cumsum(-1).eq(1) & done  # the first episode end of each env
            if not bool(first.any()):
                raise ValueError(f"no episode ended within env.max_steps={cfg.env.max_steps} steps; evaluation counts whole episodes.")
            returns.append(episode_returns(td, learner.group_map)[1][first])
    if reuse:
        learner.collector.reset()
    ret = torch.cat(returns)[:episodes]
    if render:
        write_animation(frames, render)
    return {"episodes": float(len(ret)), "return_mean": float(ret.mean()), "return_std": float(ret.std()) if len(ret) > 1 else 0.0}


def _keep_first_episode(frames: list, done: torch.Tensor) -> None:
    """Drop the frames after the first env's first episode (``frames[t]``: the frame after step ``t``, which shows the
    next episode's start when step ``t`` ended one)."""
    first = done.reshape(-1, done.shape[-1])[0]
    if bool(first.any()):
        del frames[max(int(first.float().argmax()), 1):]


def write_animation(frames: list, path: str | Path) -> None:
    """Write RGB ``frames`` to a GIF at ``path``, atomically (needs Pillow).

    Example:
        >>> write_animation([], "x.gif")
        Traceback (most recent call last):
        ...
        mappo_td.train.render.RenderError: the environment rendered no frames; this scenario cannot render headless here.
    """
    if not frames or not hasattr(frames[0], "shape"):
        raise RenderError("the environment rendered no frames; this scenario cannot render headless here.")
    try:
        from PIL import Image
    except ImportError:
        raise RenderError("rendering to a GIF needs Pillow: pip install pillow") from None
    images = [Image.fromarray(f) for f in frames]
    atomic_write(path, lambda f: images[0].save(f, format="GIF", save_all=True, append_images=images[1:], duration=50, loop=0))


class PeriodicEval:
    """Evaluation during training (``experiment.eval_interval``): the deterministic policy on its own environments
    (built once, seeded ``seed + 1``), ``eval/return_mean`` / ``eval/return_std`` for the log row, and
    ``checkpoints/best_agent.pt`` (a full checkpoint plus ``eval_return``) whenever the return is the best so far
    (a resumed run starts from the best already there); with ``eval_render`` the first episode goes to
    ``eval/eval_<timestep>.gif`` and stays in :attr:`frames` for the loggers. Every rank evaluates under torchrun;
    rank 0 writes.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner
        >>> lrn = build_learner(TrainConfig.from_dict({"device": "cpu", "env": {"num_envs": 2, "max_steps": 5},
        ...                                            "experiment": {"eval_interval": 4, "eval_episodes": 2}}))
        >>> ev = PeriodicEval(lrn, Path(tempfile.mkdtemp()))
        >>> row = ev.run(); sorted(row), (ev.run_dir / "checkpoints" / "best_agent.pt").exists()
        (['eval/return_mean', 'eval/return_std'], True)
    """

    COLUMNS = ("eval/return_mean", "eval/return_std")

    def __init__(self, learner: Learner, run_dir: Path | str) -> None:
        if learner.user_env:
            raise ValueError("experiment.eval_interval needs environments built from the config; with your own env, "
                             "call trainer.evaluate(env=...) between train() calls instead.")
        self.learner, self.run_dir = learner, Path(run_dir)
        x = learner.cfg.mappo.experiment
        self.episodes, self.render = x.eval_episodes, x.eval_render
        self.frames: list | None = None  # the last evaluation's first episode, with eval_render
        cfg = learner.cfg
        self.env = make_env(cfg.env, learner.device, cfg.seed + 1, num_envs=min(self.episodes, cfg.env.num_envs), render=self.render)
        self.best_path = self.run_dir / "checkpoints" / "best_agent.pt"
        self.best = -float("inf")
        if self.best_path.exists():
            try:
                self.best = float(load_checkpoint(self.best_path).get("eval_return", self.best))
            except CheckpointError:
                pass  # unreadable: the next evaluation replaces it

    def run(self) -> dict[str, float]:
        """Evaluate now; returns the log columns (and keeps ``best_agent.pt``)."""
        lrn = self.learner
        self.frames = [] if self.render else None
        res = evaluate(lrn, self.episodes, env=self.env, frames=self.frames)
        if self.render and lrn.rank == 0:  # the folder only with a GIF to put in it
            gif = self.run_dir / "eval" / f"eval_{lrn.timestep}.gif"
            gif.parent.mkdir(parents=True, exist_ok=True)
            write_animation(self.frames, str(gif))
        if res["return_mean"] > self.best:
            self.best = res["return_mean"]
            save_learner(lrn, self.best_path, extra={"eval_return": self.best})  # every rank calls it; rank 0 writes
        return {"eval/return_mean": res["return_mean"], "eval/return_std": res["return_std"]}
