"""The run folder and its writers: config, TensorBoard, CSV, optional W&B, and the progress bar.

Nothing here runs on the hot path: rows are written once per ``write_interval``.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mappo_td.config import TrainConfig, default_experiment_name
from mappo_td.train.checkpoint import CheckpointError
from mappo_td.train.checkpoint_files import checkpoint_timestep, checkpoints_in, prune_checkpoints
from mappo_td.train.progress_csv import append_csv_row, copy_csv_rows
from mappo_td.train.run_folder import RunLock, claim_run_dir, lock_run_dir


def new_run_dir(cfg: TrainConfig) -> Path:
    """``experiment.directory / experiment_name`` (defaults: ``./runs`` and a timestamp).

    Example:
        >>> new_run_dir(TrainConfig.from_dict({"experiment": {"directory": "out", "experiment_name": "x"}}))
        PosixPath('out/x')
    """
    x = cfg.mappo.experiment
    return Path(x.directory or "runs") / (x.experiment_name or default_experiment_name())


class RunLogger:
    """Writes one run's outputs under ``run_dir``: ``config.json``/``config.yaml``, ``tensorboard/``,
    ``progress.csv``, W&B when ``experiment.wandb``; ``checkpoints/`` is made for the checkpoints. With
    ``experiment.write_interval`` 0 (writing off, as skrl's 0) no row writer is made and :meth:`write` writes nothing.
    ``purge_step`` (a resumed run: the checkpoint's timestep + 1) hides the TensorBoard events an earlier
    session wrote from that step on, so no step shows twice (the CSV is cut by :func:`prepare_resume`).

    Example:
        >>> import tempfile
        >>> log = RunLogger(Path(tempfile.mkdtemp()) / "run", TrainConfig())
        >>> log.write({"timestep": 5, "reward/episode_mean": 1.5})
        >>> (log.run_dir / "progress.csv").read_text().splitlines()
        ['timestep,reward/episode_mean', '5,1.5']
    """

    def __init__(self, run_dir: Path, cfg: TrainConfig, *, purge_step: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        (self.run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        text = json.dumps(cfg.to_dict(), indent=2, default=str)
        (self.run_dir / "config.json").write_text(text)
        try:
            import yaml

            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(json.loads(text), sort_keys=False))
        except ImportError:
            pass
        x = cfg.mappo.experiment
        self.writing = x.write_interval > 0
        self._tb = _tensorboard(self.run_dir, purge_step) if self.writing else None
        self._wandb = None
        if x.wandb and self.writing:
            try:
                import wandb  # noqa: F401
            except ImportError:
                raise ImportError("experiment.wandb=True needs the wandb package: pip install wandb") from None
            from torchrl.record.loggers import WandbLogger

            self._wandb = WandbLogger(exp_name=self.run_dir.name, save_dir=str(self.run_dir), **x.wandb_kwargs)
        self.csv_path = self.run_dir / "progress.csv"

    def write(self, row: dict[str, Any]) -> None:
        """Log every finite number of ``row`` at step ``row["timestep"]``, and append it to the CSV (nothing when writing is off)."""
        if not self.writing:
            return
        for k, v in row.items():
            if k != "timestep" and isinstance(v, float) and math.isfinite(v):
                self._tb.log_scalar(k, v, step=row["timestep"])
                if self._wandb is not None:
                    self._wandb.log_scalar(k, v, step=row["timestep"])
        append_csv_row(self.csv_path, row)

    def log_frames(self, name: str, frames: list, step: int) -> None:
        """An episode's RGB frames (``H×W×3`` uint8): a filmstrip of up to 8 of them as a TensorBoard image (no video
        codec needed), and the whole episode as a W&B video when W&B is on."""
        import numpy as np

        if not frames or not self.writing:
            return
        picks = [frames[i] for i in np.linspace(0, len(frames) - 1, min(8, len(frames))).astype(int)]
        stride = max(1, picks[0].shape[0] // 256)
        self._tb.experiment.add_image(name, np.concatenate([f[::stride, ::stride, :3] for f in picks], axis=1), step, dataformats="HWC")
        if self._wandb is not None:
            import torch

            video = torch.as_tensor(np.stack([f[..., :3] for f in frames])).permute(0, 3, 1, 2)
            self._wandb.log_video(name, video, step=step, fps=20)

    def close(self) -> None:
        """Flush TensorBoard."""
        if self._tb is not None:
            self._tb.experiment.flush()


def _tensorboard(run_dir: Path, purge_step: int | None) -> Any:
    """TorchRL's ``TensorboardLogger`` whose writer gets ``purge_step`` (TensorBoard's own resume mechanism)."""
    from torch.utils.tensorboard import SummaryWriter
    from torchrl.record.loggers import TensorboardLogger

    class Resumable(TensorboardLogger):
        def _create_experiment(self) -> SummaryWriter:
            return SummaryWriter(log_dir=os.path.join(self.log_dir, self.exp_name), purge_step=purge_step)

    return Resumable(exp_name="tensorboard", log_dir=str(run_dir))


class NullLogger:
    """What ranks other than 0 log through under torchrun: :class:`RunLogger`'s interface, writing nothing.

    Example:
        >>> log = NullLogger(Path("runs/x")); log.write({"timestep": 1}); log.close()
        >>> log.run_dir
        PosixPath('runs/x')
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)

    def write(self, row: dict[str, Any]) -> None:
        """Nothing: rank 0 writes."""

    def log_frames(self, name: str, frames: list, step: int) -> None:
        """Nothing: rank 0 writes."""

    def close(self) -> None:
        """Nothing to flush."""


class Progress:
    """The progress bar (tqdm, over the frames of every process): one speed, frames/s over the last update, and the
    mean episode reward of the episodes finished since the last log row, refreshed at every update (per group too
    when there are several). The reward is read from the device-side sums one update late on CUDA (a non-blocking
    copy), so the bar never waits for the device.

    Example:
        >>> Progress.of(TrainConfig.from_dict({"progress": False}), 0, "cpu") is None
        True
    """

    def __init__(self, cfg: TrainConfig, timestep: int, device: Any, world_size: int = 1, frames: int | None = None) -> None:
        from tqdm import tqdm

        per_step = cfg.env.num_envs * world_size  # frames are counted at this run's width; ``frames``: the count so far
        start = timestep * per_step if frames is None else frames
        where = f"{device} x {world_size} processes" if world_size > 1 else str(device)
        self.bar = tqdm(total=start + (cfg.end_timestep(timestep) - timestep) * per_step, initial=start, unit="frames",
                        unit_scale=True, desc=f"MAPPO {cfg.env.scenario} [{where}]", dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
        self.t = time.perf_counter()
        self.pending: tuple[list[str], Any, Any] | None = None
        self.shown: dict[str, str] = {}

    @classmethod
    def of(cls, cfg: TrainConfig, timestep: int, device: Any, world_size: int = 1, frames: int | None = None) -> Progress | None:
        """The bar, or ``None`` when ``cfg.progress`` is off."""
        return cls(cfg, timestep, device, world_size, frames) if cfg.progress else None

    def update(self, frames: int, rewards: dict[str, Any]) -> None:
        """Advance by ``frames``; ``rewards``: name -> ``[return sum, episodes]`` device tensor (since the last log)."""
        import torch

        now = time.perf_counter()
        fps, self.t = frames / max(now - self.t, 1e-9), now
        self._show_ready()  # last update's copy, if it has landed
        if rewards:
            stacked = torch.stack(list(rewards.values()))
            event = torch.cuda.Event() if stacked.is_cuda else None
            host = stacked.to("cpu", non_blocking=event is not None)
            if event is not None:
                event.record()
            self.pending = (list(rewards), host, event)
            if event is None:
                self._show_ready()
        self.bar.set_postfix({"fps": f"{fps:,.0f}", **self.shown}, refresh=False)
        self.bar.update(frames)

    def _show_ready(self) -> None:
        if self.pending is None or (self.pending[2] is not None and not self.pending[2].query()):
            return
        names, host, _ = self.pending
        for name, (total, n) in zip(names, host.tolist()):
            if n > 0:
                self.shown[name] = f"{total / n:.3f}"
        self.pending = None

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()


@dataclass
class Resume:
    """Where a resumed run continues: its checkpoint (file) and timestep; ``fork`` names a new run folder beside
    the original; ``overwrite_later`` lets it continue in place past later checkpoints (which are deleted);
    ``changes``: the settings that differ from the checkpoint's (``"name: old -> new"``)."""

    checkpoint: Path
    timestep: int
    fork: str | None = None
    overwrite_later: bool = False
    world_size: int = 1  # processes of the run that wrote the checkpoint (torchrun)
    changes: tuple[str, ...] = ()
    fork_parent: Path | None = None  # where a fork's folder goes (default: beside the run folder)

    @property
    def run_dir(self) -> Path | None:
        """The run folder the checkpoint belongs to (``<run>/checkpoints/agent_<t>.pt``), or ``None`` for a checkpoint
        kept anywhere else (copied, downloaded), which has no run folder to continue in."""
        return self.checkpoint.parent.parent if self.checkpoint.parent.name == "checkpoints" else None


def prepare_resume(r: Resume) -> RunLock:
    """Check, lock (see :class:`RunLock`) and prepare the run folder a resumed run writes to; returns the lock (``.run_dir``).

    Never destroys silently: a checkpoint older than the newest in its folder is refused unless ``fork`` (a new
    folder, claimed like a new run's, holding the log rows up to the checkpoint) or ``overwrite_later`` (later
    checkpoints deleted). Log rows after the checkpoint's timestep are dropped, so none is written twice. A run
    another process trains now is refused.
    """
    run = r.run_dir
    if r.fork is not None:
        lock = claim_run_dir(fork_dir(r), instead="pass another --fork NEW_NAME")
        if run is not None:
            copy_csv_rows(run / "progress.csv", lock.run_dir / "progress.csv", r.timestep)
        return lock
    if run is None:
        raise CheckpointError(f"{r.checkpoint} is not in a run's checkpoints/ folder, so it has no run folder to continue in (its "
                              f"folder's parent, {r.checkpoint.parent.parent}, may hold anything). Pass --fork NEW_NAME to continue "
                              f"in a new run folder, {fork_dir(r, 'NEW_NAME')}.")
    lock = lock_run_dir(run)
    try:
        later = [p.name for p in checkpoints_in(r.checkpoint.parent) if checkpoint_timestep(p) > r.timestep]
        if later and not r.overwrite_later:
            raise CheckpointError(f"{r.checkpoint} (timestep {r.timestep}) is older than {later[-1]} in the same folder: continuing "
                                  "there would overwrite later checkpoints and logs. Pass --fork NEW_NAME to continue in a new run "
                                  "folder, or --overwrite-later to delete the later checkpoints and continue in place.")
        prune_checkpoints(r.checkpoint.parent, 0, after=r.timestep)
        copy_csv_rows(run / "progress.csv", run / "progress.csv", r.timestep)
    except BaseException:
        lock.release()
        raise
    return lock


def fork_dir(r: Resume, name: str | None = None) -> Path:
    """The folder a fork of ``r`` continues in: ``name`` (default ``r.fork``, a plain folder name) beside the run folder,
    or in ``r.fork_parent``.

    Example:
        >>> fork_dir(Resume(Path("runs/a/checkpoints/agent_8.pt"), 8, fork="b"))
        PosixPath('runs/b')
    """
    name = r.fork if name is None else name
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"--fork {name!r}: give a plain folder name (no '/'), the new run folder beside the original.")
    parent = r.fork_parent if r.fork_parent is not None else (r.run_dir.parent if r.run_dir is not None else Path("runs"))
    return parent / name
