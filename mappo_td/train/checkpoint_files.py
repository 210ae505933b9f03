"""A run's checkpoint files: ``<run>/checkpoints/agent_<timestep>.pt``, named by :func:`checkpoint_path` alone, listed
and pruned by the timestep in their names. Reading and writing them: :mod:`mappo_td.train.checkpoint`.
"""

from __future__ import annotations

from pathlib import Path

PREFIX = "agent_"  # agent_<timestep>.pt, skrl's name for an agent's checkpoints


def checkpoint_path(run_dir: str | Path, timestep: int) -> Path:
    """Where the run in ``run_dir`` keeps its checkpoint of ``timestep``.

    Example:
        >>> checkpoint_path("runs/nav", 1008)
        PosixPath('runs/nav/checkpoints/agent_1008.pt')
    """
    return Path(run_dir) / "checkpoints" / f"{PREFIX}{int(timestep)}.pt"


def checkpoints_in(folder: str | Path) -> list[Path]:
    """The ``agent_<timestep>.pt`` files of ``folder``, oldest first.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = [(d / f"agent_{t}.pt").touch() for t in (100, 20, 3)]
        >>> [p.name for p in checkpoints_in(d)]
        ['agent_3.pt', 'agent_20.pt', 'agent_100.pt']
    """
    found = [p for p in Path(folder).glob(f"{PREFIX}*.pt") if p.stem.split("_")[-1].isdigit()]
    return sorted(found, key=checkpoint_timestep)


def checkpoint_timestep(path: Path) -> int:
    """The timestep in a checkpoint's file name."""
    return int(path.stem.split("_")[-1])


def prune_checkpoints(folder: str | Path, keep: int, *, after: int | None = None) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints (``keep`` 0: none), or those after timestep ``after``; returns what went.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = [(d / f"agent_{t}.pt").touch() for t in (1, 2, 3)]
        >>> [p.name for p in prune_checkpoints(d, 2)], [p.name for p in checkpoints_in(d)]
        (['agent_1.pt'], ['agent_2.pt', 'agent_3.pt'])
    """
    found = checkpoints_in(folder)
    gone = [p for p in found if checkpoint_timestep(p) > after] if after is not None else (found[:-keep] if keep else [])
    for p in gone:
        for part in [p, *p.parent.glob(f"{p.stem}.*.pt")]:  # store_separately's per-model files too
            part.unlink(missing_ok=True)
    return gone
