"""``mappo-td plot``: learning curves from run folders' ``progress.csv`` (needs the ``plot`` extra: matplotlib).

One image, two panels: mean episode reward against frames and against wall-clock time. Training reward is a solid
line, evaluation (``eval/return_mean``, with ``experiment.eval_interval``) dashed; curves of few points also get a
marker at each point, so a run with one log row still shows. Runs whose names differ only by a ``_seed<N>`` suffix
(``mappo-td train --seeds ...``) are one curve: their mean, with a band from their minimum to their maximum (on the
frames / seconds they have in common). Rows that cannot be read (a cut or garbled line) are skipped with a
:class:`PlotWarning` naming the file and line; a run with nothing to draw is left out with a warning, and when no run
has anything to draw, nothing is written (``ValueError`` naming the runs).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from mappo_td.atomic import atomic_write

SEED_SUFFIX = re.compile(r"_seed\d+$")
PANELS = (("frames", "frames (all environments)"), ("time_s", "wall-clock seconds"))
SERIES = (("reward/episode_mean", ""), ("eval/return_mean", " eval"))
PLOTTED = ("frames", "time_s", "reward/episode_mean", "eval/return_mean")
MARKER_POINTS = 30  # a curve of at most this many points gets a marker at each


class PlotWarning(UserWarning):
    """A row or a run that the plot leaves out (the default ``warn`` of the functions below; ``mappo-td plot`` prints
    these as ``mappo-td: warning: ...``)."""


def _warner(warn: Callable[[str], None] | None) -> Callable[[str], None]:
    return warn or (lambda message: warnings.warn(message, PlotWarning, stacklevel=3))


@dataclasses.dataclass
class Curve:
    """One line of the plot: ``ykey`` against ``xkey`` for the runs of group ``name`` (mean, min and max over seeds)."""

    name: str
    label: str
    xkey: str
    ykey: str
    x: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]
    seeds: int

    @property
    def markers(self) -> bool:
        """Whether the curve is drawn with a marker at each point (with few points a line alone could be invisible)."""
        return len(self.x) <= MARKER_POINTS


def _parses(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _row_values(row: list[str], header: list[str], numeric: list[int]) -> list[float]:
    """The numeric cells of one CSV row (empty: NaN); ``ValueError`` saying what is wrong with it."""
    if len(row) != len(header):
        raise ValueError(f"{len(row)} fields where the header has {len(header)}")
    bad = [i for i in numeric if row[i] != "" and not _parses(row[i])]
    if bad:
        raise ValueError(f"{header[bad[0]]} is {row[bad[0]][:40]!r}, not a number")
    return [float(row[i]) if row[i] != "" else math.nan for i in numeric]


def read_progress(run_dir: str | Path, warn: Callable[[str], None] | None = None) -> dict[str, list[float]]:
    """The numeric columns of ``run_dir/progress.csv`` as floats (empty lists when it has no rows yet).

    Rows that cannot be read (wrong number of fields, a number column holding text) are skipped with one warning
    per file naming its lines (``warn(message)``; default: a :class:`PlotWarning`); ``ValueError`` when the folder has no ``progress.csv``.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = (d / "progress.csv").write_text("frames,reward/episode_mean\\n10,1.5\\n20,nan\\n")
        >>> read_progress(d)["reward/episode_mean"]
        [1.5, nan]
    """
    path = Path(run_dir) / "progress.csv"
    if not path.exists():
        raise ValueError(f"{run_dir} has no progress.csv: pass run folders written by mappo-td train (runs/<name>).")
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        rows = [(reader.line_num, r) for r in reader if r]
    numeric = [i for i, k in enumerate(header) if k in PLOTTED or any(i < len(r) and _parses(r[i]) for _, r in rows)]
    cols: dict[str, list[float]] = {header[i]: [] for i in numeric}
    skipped = []
    for line, row in rows:
        try:
            values = _row_values(row, header, numeric)
        except ValueError as err:
            skipped.append(f"line {line} ({err})")
            continue
        for i, v in zip(numeric, values):
            cols[header[i]].append(v)
    if skipped:
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        _warner(warn)(f"{path}: skipped {len(skipped)} unreadable row(s): {'; '.join(skipped[:5])}{more}")
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


def _points(cols: dict[str, list[float]], xkey: str, ykey: str):
    """The finite ``(x, y)`` points of one run, sorted by ``x`` (numpy arrays)."""
    import numpy as np

    x, y = np.asarray(cols.get(xkey, []), dtype=float), np.asarray(cols.get(ykey, []), dtype=float)
    if len(x) != len(y):
        return np.zeros(0), np.zeros(0)
    keep = np.isfinite(x) & np.isfinite(y)
    order = np.argsort(x[keep], kind="stable")
    return x[keep][order], y[keep][order]


def _band(curves: list) -> tuple[list[float], list[float], list[float], list[float]]:
    """Mean, min and max of several non-empty ``(x, y)`` curves on their common x range: at their own x values (at
    most 200 of them, else 200 evenly spaced)."""
    import numpy as np

    lo, hi = max(x[0] for x, _ in curves), min(x[-1] for x, _ in curves)
    xs = np.unique(np.concatenate([x for x, _ in curves]))
    grid = xs[(xs >= lo) & (xs <= hi)]
    grid = np.linspace(lo, hi, 200) if len(grid) > 200 else grid if len(grid) else np.asarray([lo])
    ys = np.stack([np.interp(grid, x, y) for x, y in curves])
    return grid.tolist(), ys.mean(0).tolist(), ys.min(0).tolist(), ys.max(0).tolist()


def _why_empty(run: Path, cols: dict[str, list[float]]) -> str:
    rows = max(map(len, cols.values()), default=0)
    if not rows:
        return f"{run}: no readable log row yet (the run has not reached its first write_interval, or it writes none: write_interval 0)"
    return f"{run}: none of its {rows} row(s) has a finite reward/episode_mean or eval/return_mean next to its frames or time_s"


def learning_curves(run_dirs: Sequence[str | Path], warn: Callable[[str], None] | None = None) -> list[Curve]:
    """The curves :func:`plot_runs` draws; a run with nothing to draw is left out with a warning (``warn(message)``;
    default: a :class:`PlotWarning`), and when no run has anything, ``ValueError`` names every run and why.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = (d / "progress.csv").write_text("frames,time_s,reward/episode_mean\\n10,1.0,0.5\\n")
        >>> [(c.xkey, c.x, c.mean, c.markers) for c in learning_curves([d])]
        [('frames', [10.0], [0.5], True), ('time_s', [1.0], [0.5], True)]
    """
    curves, empty = [], []
    for name, runs in group_runs(run_dirs).items():
        data = {r: read_progress(r, warn) for r in runs}
        empty += [_why_empty(r, d) for r, d in data.items() if not any(len(_points(d, x, y)[0]) for x, _ in PANELS for y, _ in SERIES)]
        label = f"{name} ({len(runs)} seeds)" if len(runs) > 1 else name
        for xkey, _ in PANELS:
            for ykey, suffix in SERIES:
                pts = [p for p in (_points(d, xkey, ykey) for d in data.values()) if len(p[0])]
                if pts:
                    curves.append(Curve(name, label + suffix, xkey, ykey, *_band(pts), seeds=len(pts)))
    if not curves:
        raise ValueError("nothing to draw, no image written: " + "; ".join(empty))
    for why in empty:
        _warner(warn)(f"left out, nothing to draw: {why}")
    return curves


def output_path(out: str | Path | None, run_dirs: Sequence[str | Path]) -> Path:
    """Where :func:`plot_runs` writes: ``out``; ``out/reward.png`` when ``out`` is a folder (one that exists, or a
    path ending in ``/``); ``out.png`` when it has no suffix; by default ``RUN_DIR/reward.png`` for one run, else
    ``reward.png`` here.

    Example:
        >>> [str(output_path(o, ["runs/a"])) for o in (None, "/tmp", "plots/", "nav", "nav.pdf")]
        ['runs/a/reward.png', '/tmp/reward.png', 'plots/reward.png', 'nav.png', 'nav.pdf']
    """
    if out is None:
        return Path(run_dirs[0]) / "reward.png" if len(run_dirs) == 1 else Path("reward.png")
    if Path(out).is_dir() or str(out).endswith(("/", os.sep)):
        return Path(out) / "reward.png"
    return Path(out) if Path(out).suffix else Path(out).with_name(Path(out).name + ".png")


def _save(fig, path: Path) -> None:
    """Write ``fig`` to ``path`` atomically (a temporary file beside it, then renamed): an earlier image stays whole."""
    fmt = path.suffix[1:].lower()
    if fmt not in fig.canvas.get_supported_filetypes():
        raise ValueError(f"cannot write {path}: matplotlib writes .{', .'.join(fig.canvas.get_supported_filetypes())} files, not .{fmt}")
    atomic_write(path, lambda f: fig.savefig(f, dpi=110, format=fmt))


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path | None = None, warn: Callable[[str], None] | None = None) -> Path:
    """Write the learning-curve image of ``run_dirs`` (see :func:`output_path` for where); returns its path. Rows and
    runs left out are reported through ``warn`` (see :func:`learning_curves`).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "progress.csv").write_text("frames,time_s,reward/episode_mean\\n10,1.0,0.5\\n20,2.0,1.5\\n")
        >>> plot_runs([d], d).relative_to(d), (d / "reward.png").stat().st_size > 1000
        (PosixPath('reward.png'), True)
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError('mappo-td plot needs matplotlib: pip install matplotlib (the plot extra: pip install "mappo-td[plot]", '
                         'or pip install -e ".[plot]" in a clone)') from None
    curves = learning_curves(run_dirs, warn)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    palette, colors = plt.rcParams["axes.prop_cycle"].by_key()["color"], {}
    for c in curves:
        ax = axes[[k for k, _ in PANELS].index(c.xkey)]
        color = colors.setdefault(c.name, palette[len(colors) % len(palette)])
        ax.plot(c.x, c.mean, "--" if c.ykey == "eval/return_mean" else "-", color=color, label=c.label, marker="o" if c.markers else None)
        if c.seeds > 1:
            ax.fill_between(c.x, c.low, c.high, color=color, alpha=0.2)
    for ax, (_, xlabel) in zip(axes, PANELS):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mean episode reward")
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        path = output_path(out, run_dirs)
        _save(fig, path)
    finally:
        plt.close(fig)
    return path
