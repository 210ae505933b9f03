"""The run folder and its writers: config, TensorBoard, CSV, optional W&B, and the progress bar.

Nothing here runs on the hot path: rows are written once per ``write_interval``.
"""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from mappo_td.config import TrainConfig


def new_run_dir(cfg: TrainConfig) -> Path:
    """``experiment.directory / experiment_name`` (defaults: ``./runs`` and a timestamp).

    Example:
        >>> new_run_dir(TrainConfig.from_dict({"experiment": {"directory": "out", "experiment_name": "x"}}))
        PosixPath('out/x')
    """
    x = cfg.mappo.experiment
    return Path(x.directory or "runs") / (x.experiment_name or datetime.now().strftime("%y-%m-%d_%H-%M-%S-%f_MAPPO"))


class RunLogger:
    """Writes one run's outputs under ``run_dir``: ``config.json``/``config.yaml``, ``tensorboard/``,
    ``progress.csv``, W&B when ``experiment.wandb``; ``checkpoints/`` is made for the checkpoints.

    Example:
        >>> import tempfile
        >>> log = RunLogger(Path(tempfile.mkdtemp()) / "run", TrainConfig())
        >>> log.write({"timestep": 5, "reward/episode_mean": 1.5})
        >>> (log.run_dir / "progress.csv").read_text().splitlines()
        ['timestep,reward/episode_mean', '5,1.5']
    """

    def __init__(self, run_dir: Path, cfg: TrainConfig) -> None:
        self.run_dir = Path(run_dir)
        (self.run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        text = json.dumps(cfg.to_dict(), indent=2, default=str)
        (self.run_dir / "config.json").write_text(text)
        try:
            import yaml

            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(json.loads(text), sort_keys=False))
        except ImportError:
            pass
        from torchrl.record.loggers import TensorboardLogger

        self._tb = TensorboardLogger(exp_name="tensorboard", log_dir=str(self.run_dir))
        self._wandb = None
        x = cfg.mappo.experiment
        if x.wandb:
            try:
                import wandb  # noqa: F401
            except ImportError:
                raise ImportError("experiment.wandb=True needs the wandb package: pip install wandb") from None
            from torchrl.record.loggers import WandbLogger

            self._wandb = WandbLogger(exp_name=self.run_dir.name, save_dir=str(self.run_dir), **x.wandb_kwargs)
        self.csv_path = self.run_dir / "progress.csv"

    def write(self, row: dict[str, Any]) -> None:
        """Log every finite number of ``row`` at step ``row["timestep"]``, and append it to the CSV."""
        for k, v in row.items():
            if k != "timestep" and isinstance(v, float) and math.isfinite(v):
                self._tb.log_scalar(k, v, step=row["timestep"])
                if self._wandb is not None:
                    self._wandb.log_scalar(k, v, step=row["timestep"])
        new = not self.csv_path.exists()
        with self.csv_path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)

    def close(self) -> None:
        """Flush TensorBoard."""
        self._tb.experiment.flush()


def progress_bar(cfg: TrainConfig, timestep: int, device: Any) -> Any:
    """A tqdm bar over frames (``None`` when ``cfg.progress`` is off).

    Example:
        >>> progress_bar(TrainConfig.from_dict({"progress": False}), 0, "cpu") is None
        True
    """
    if not cfg.progress:
        return None
    from tqdm import tqdm

    frames = cfg.timesteps * cfg.env.num_envs
    return tqdm(total=frames, initial=min(timestep * cfg.env.num_envs, frames), unit="frames", unit_scale=True,
                desc=f"MAPPO {cfg.env.scenario} [{device}]", dynamic_ncols=True)
