"""One iteration with the data in hand: rewards shaped → statistics → advantages → epochs × minibatches → log / checkpoint.

:func:`learn` is that iteration, whoever collected the data: the trainer's loop (``train``)
and the skrl-style agent (:meth:`mappo_td.agent.MAPPO.post_interaction`) both call it. :func:`update` is its
learning step (advantages, then the epochs). Between log intervals nothing is read back to the host.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.modules import set_recurrent_mode

from mappo_td.train.checkpoint import restart_episodes, save_run_checkpoint
from mappo_td.train.data import chunks, minibatches
from mappo_td.train.evaluate import PeriodicEval
from mappo_td.train.interrupt import Interrupted
from mappo_td.train.learner import Learner
from mappo_td.train.logging import NullLogger, Progress, RunLogger
from mappo_td.train.step import compute_advantages


def shape_rewards(learner: Learner, data: TensorDictBase, timesteps: int | None = None) -> None:
    """Apply ``rewards_shaper(reward, timestep, timesteps)`` to every reward entry of ``data``, step by step; the rollout
    starts at ``learner.timestep``, ``timesteps`` is the run's length (default: ``cfg.timesteps``).

    Example:
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner, collect
        >>> lrn = build_learner(TrainConfig.from_dict({"device": "cpu", "rollouts": 3, "env": {"num_envs": 2},
        ...                                            "rewards_shaper": lambda r, t, n: r * 0 + t}))
        >>> data = collect(lrn); shape_rewards(lrn, data)
        >>> data["next", "agents", "reward"][0, :, 0, 0]
        tensor([0., 1., 2.])
    """
    shaper = learner.cfg.mappo.rewards_shaper
    if shaper is None:
        return
    timesteps = learner.cfg.timesteps if timesteps is None else timesteps
    for k in learner.reward_keys:
        reward = data.get(k)
        shaped = [torch.as_tensor(shaper(reward[:, t], learner.timestep + t, timesteps), dtype=reward.dtype, device=reward.device)
                  for t in range(reward.shape[1])]
        if shaped[0].shape != reward[:, 0].shape:
            raise ValueError(f"rewards_shaper returned shape {tuple(shaped[0].shape)} for {k} of shape {tuple(reward[:, 0].shape)}; "
                             "it must return a tensor shaped like the reward it is given.")
        data.set(k, torch.stack(shaped, 1))


def flat_batch(learner: Learner, data: TensorDictBase) -> TensorDictBase:
    """What the epochs draw minibatches from: ``data``'s update entries (advantages computed) as one flat batch of frames
    (env-major), or, with ``model.body="gru"``, of whole chunks of ``data_chunk_length`` steps (:func:`~mappo_td.train.data.chunks`).

    Example:
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner, collect
        >>> lrn = build_learner(TrainConfig.from_dict({"device": "cpu", "rollouts": 4, "env": {"num_envs": 2}}))
        >>> data = collect(lrn); update(lrn, data)
        >>> flat_batch(lrn, data).batch_size
        torch.Size([8])
    """
    selected = data.select(*learner.update_keys)
    return chunks(selected, learner.cfg.mappo.data_chunk_length) if learner.cfg.model.body == "gru" else selected.reshape(-1)


def update(learner: Learner, data: TensorDictBase) -> None:
    """Advantages for ``data``, then ``learning_epochs`` × ``mini_batches`` gradient steps of every group, over
    :func:`flat_batch` (recurrent models in TorchRL's sequence mode).

    Example:
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner, collect
        >>> lrn = build_learner(TrainConfig.from_dict({"device": "cpu", "rollouts": 4, "learning_epochs": 3, "env": {"num_envs": 2}}))
        >>> update(lrn, collect(lrn)); lrn.updates
        6
    """
    m = learner.cfg.mappo
    for g in learner.groups:
        compute_advantages(g, data)
    flat = flat_batch(learner, data)
    with set_recurrent_mode(learner.cfg.model.body == "gru"):
        for _ in range(m.learning_epochs):
            for keep in learner.keep_updating.values():
                keep.fill_(True)  # a new epoch: every group (or agent) updates again
            for batch in minibatches(flat, m.mini_batches):
                for g in learner.groups:
                    keep = learner.keep_updating.get(g.name)
                    step = learner.step_fns[g.name]
                    if keep is None:
                        learner.stats.add_terms(g.name, step(batch))
                    else:  # the step returns keep_updating: a wrapped (captured) step works on its own copy
                        terms, kept = step(batch, keep)
                        keep.copy_(kept)
                        learner.stats.add_terms(g.name, terms)
                learner.updates += 1
                learner.stats.count_update()
    learner.stats.check_params(learner.groups, learner.timestep)


def log_row(learner: Learner, fps: float) -> dict[str, Any]:
    """The row logged now: counters, wall time, speed, episode statistics, per-group loss terms and learning rates (host reads).

    Example:
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner
        >>> row = log_row(build_learner(TrainConfig.from_dict({"device": "cpu", "env": {"num_envs": 2}})), fps=100.0)
        >>> row["frames_per_s"], round(row["agents/learning_rate"], 6)
        (100.0, 0.001)
    """
    head = {"timestep": learner.timestep, "frames": learner.frames,
            "iteration": learner.iteration, "time_s": learner.wall_s, "frames_per_s": fps}
    row = learner.stats.row(head)
    for g in learner.groups:
        row[f"{g.name}/learning_rate"] = float(g.optimizer.effective_lr().float().mean())
    return row


def crossed(before: int, after: int, interval: int) -> bool:
    """Whether going from timestep ``before`` to ``after`` passes a multiple of ``interval`` (0: never), i.e. a write,
    an evaluation or a checkpoint is due.

    Example:
        >>> crossed(992, 1008, 1000), crossed(1008, 1024, 1000), crossed(0, 16, 0)
        (True, False, False)
    """
    return interval > 0 and after // interval > before // interval


@dataclass
class Session:
    """Where one training session's iterations write, and what :func:`learn` keeps between them: the run's logger
    (rank 0's; a ``NullLogger`` on the others), an optional evaluator and progress bar, the stop request (the
    trainer's Ctrl-C), whether the envs restart after each checkpoint (the trainer's do, so that a resumed run is
    exact; the agent's belong to the user), the clocks, and the last row and checkpoint written."""

    logger: RunLogger | NullLogger
    evaluator: PeriodicEval | None = None
    progress: Progress | None = None
    stop: Callable[[], bool] = field(default=lambda: False)
    restart_at_checkpoints: bool = True
    wall_before: float = 0.0  # the learner's wall time when the session began (a resumed run continues the count)
    started: float = field(default_factory=time.perf_counter)
    logged_at: float = field(default_factory=time.perf_counter)
    frames_since_log: int = 0
    last_row: dict[str, Any] = field(default_factory=dict)
    last_checkpoint: Path | None = None

    def close(self) -> None:
        """Close the progress bar and flush the logger."""
        if self.progress is not None:
            self.progress.close()
        self.logger.close()


def learn(learner: Learner, data: TensorDictBase, session: Session, *, timestep: int, timesteps: int) -> None:
    """One iteration once ``data`` (``[num_envs, rollouts]``) is collected, by whatever means: shape its rewards, track its
    statistics, set the counters (``learner.timestep = timestep``, the steps taken after it), update from
    ``learning_starts`` on, then write a log row (with an evaluation when one is due), and a checkpoint, when an
    interval is crossed and at ``timesteps`` (the run's end).

    A stop request (``session.stop()``) or an evaluation that raises writes the row and a checkpoint, then raises
    (:class:`~mappo_td.train.interrupt.Interrupted`, or the evaluation's error).

    Example:
        >>> import tempfile
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner, collect
        >>> cfg = TrainConfig.from_dict({"device": "cpu", "rollouts": 4, "env": {"num_envs": 2}, "experiment": {"write_interval": 4}})
        >>> lrn = build_learner(cfg); session = Session(RunLogger(Path(tempfile.mkdtemp()) / "run", cfg))
        >>> learn(lrn, collect(lrn), session, timestep=4, timesteps=8)
        >>> lrn.timestep, lrn.updates, session.last_row["timestep"], session.last_checkpoint
        (4, 16, 4, None)
    """
    m, x = learner.cfg.mappo, learner.cfg.mappo.experiment
    before = learner.timestep
    shape_rewards(learner, data, timesteps)
    learner.stats.track(data)
    learner.timestep, learner.iteration = timestep, learner.iteration + 1
    session.frames_since_log += data.numel()
    learner.wall_s = session.wall_before + time.perf_counter() - session.started
    if timestep - 1 >= m.learning_starts:  # the index of the rollout's last step
        update(learner, data)
    if session.progress is not None:
        session.progress.update(data.numel() * learner.world_size, learner.stats.recent_rewards())
    stopping = session.stop()  # Ctrl-C / SIGTERM: the update is done; log, checkpoint, stop
    evaluating = session.evaluator is not None and crossed(before, timestep, x.eval_interval)
    failed = None
    if crossed(before, timestep, x.write_interval) or timestep >= timesteps or evaluating or stopping:
        failed = _write_row(learner, session, evaluating)
    ending = timestep >= timesteps
    if stopping or failed is not None or ending or crossed(before, timestep, x.checkpoint_interval):
        session.last_checkpoint = save_run_checkpoint(learner, session.logger.run_dir)
        if stopping or failed is not None:  # an evaluation that failed loses neither the row nor the training
            raise failed or Interrupted(timestep, session.last_checkpoint)
        if not ending and session.restart_at_checkpoints:
            restart_episodes(learner)  # a resumed run restarts episodes here too: resume is exact


def _write_row(learner: Learner, session: Session, evaluating: bool) -> Exception | None:
    """Log a row (the only host reads), evaluating into it first when ``evaluating``; the evaluation's error instead of
    raising it, for :func:`learn` to raise once the row and a checkpoint are written."""
    learner.stats.raise_if_nonfinite(learner.timestep)
    fps = session.frames_since_log * learner.world_size / (time.perf_counter() - session.logged_at)  # every rank collects as many
    row = log_row(learner, fps)
    failed = None
    if session.evaluator is not None:
        row.update(dict.fromkeys(PeriodicEval.COLUMNS, math.nan))
        try:
            if evaluating:
                row.update(session.evaluator.run())
                if session.evaluator.frames:
                    session.logger.log_frames("eval/episode", session.evaluator.frames, row["timestep"])
        except Exception as err:
            failed = err
    session.logger.write(row)
    session.last_row, session.logged_at, session.frames_since_log = row, time.perf_counter(), 0
    return failed
