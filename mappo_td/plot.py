"""``mappo-td plot``: learning curves from run folders' ``progress.csv`` (needs the ``plot`` extra: matplotlib).

One PNG, two panels: mean episode reward against frames and against wall-clock time. Training reward is a solid
line, evaluation (``eval/return_mean``, with ``experiment.eval_interval``) dashed. Runs whose names differ only by a
``_seed<N>`` suffix (``mappo-td train --seeds ...``) are one curve: their mean, with a band from their minimum to
their maximum (on a common grid of frames / seconds).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from pathlib import Path

SEED_SUFFIX = re.compile(r"_seed\d+$")


def read_progress(run_dir: str | Path) -> dict[str, list[float]]:
    """The columns of ``run_dir/progress.csv`` as floats (``ValueError`` naming the folder when it has none).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = (d / "progress.csv").write_text("frames,reward/episode_mean\\n10,1.5\\n20,nan\\n")
        >>> read_progress(d)["reward/episode_mean"]
        [1.5, nan]
    """
    path = Path(run_dir) / "progress.csv"
    if not path.exists():
        raise ValueError(f"{run_dir} has no progress.csv: pass run folders written by mappo-td train (runs/<name>).")
    rows = list(csv.DictReader(path.open(newline="")))
    if not rows:
        raise ValueError(f"{path} has no rows yet: the run has not logged (write_interval) so far.")
    cols: dict[str, list[float]] = {}
    for key in rows[0]:
        try:
            cols[key] = [float(r[key]) if r[key] not in ("", None) else math.nan for r in rows]
        except ValueError:
            continue  # a text column
    return cols


def group_runs(run_dirs: Sequence[str | Path]) -> dict[str, list[Path]]:
    """Runs grouped by name without its ``_seed<N>`` suffix (in the order given).

    Example:
        >>> group_runs(["runs/nav_seed0", "runs/nav_seed1", "runs/other"])
        {'nav': [PosixPath('runs/nav_seed0'), PosixPath('runs/nav_seed1')], 'other': [PosixPath('runs/other')]}
    """
    groups: dict[str, list[Path]] = {}
    for d in map(Path, run_dirs):
        groups.setdefault(SEED_SUFFIX.sub("", d.name), []).append(d)
    return groups


def _band(curves: list[tuple[list[float], list[float]]]) -> tuple[list[float], list[float], list[float], list[float]]:
    """Mean, min and max of several ``(x, y)`` curves on a common grid (where every curve has data)."""
    import numpy as np

    curves = [(np.asarray(x), np.asarray(y)) for x, y in curves]
    curves = [(x[np.isfinite(y)], y[np.isfinite(y)]) for x, y in curves]
    curves = [(x, y) for x, y in curves if len(x)]
    if not curves:
        return [], [], [], []
    lo, hi = max(x[0] for x, _ in curves), min(x[-1] for x, _ in curves)
    grid = np.linspace(lo, hi, 200) if hi > lo else np.asarray([lo])
    ys = np.stack([np.interp(grid, x, y) for x, y in curves])
    return grid.tolist(), ys.mean(0).tolist(), ys.min(0).tolist(), ys.max(0).tolist()


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Write the learning-curve PNG of ``run_dirs`` to ``out``; returns its path.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "progress.csv").write_text("frames,time_s,reward/episode_mean\\n10,1.0,0.5\\n20,2.0,1.5\\n")
        >>> plot_runs([d], d / "r.png").stat().st_size > 1000
        True
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError('mappo-td plot needs matplotlib: pip install -e ".[plot]" (or pip install matplotlib)') from None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for (name, runs), color in zip(group_runs(run_dirs).items(), plt.rcParams["axes.prop_cycle"].by_key()["color"] * 10):
        data = [read_progress(r) for r in runs]
        label = f"{name} ({len(runs)} seeds)" if len(runs) > 1 else name
        for ax, xkey in zip(axes, ("frames", "time_s")):
            for ykey, style, suffix in (("reward/episode_mean", "-", ""), ("eval/return_mean", "--", " eval")):
                curves = [(d[xkey], d[ykey]) for d in data if xkey in d and ykey in d]
                grid, mean, low, high = _band(curves)
                if not grid:
                    continue
                ax.plot(grid, mean, style, color=color, label=label + suffix)
                if len(curves) > 1:
                    ax.fill_between(grid, low, high, color=color, alpha=0.2)
    for ax, xlabel in zip(axes, ("frames (all environments)", "wall-clock seconds")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mean episode reward")
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
