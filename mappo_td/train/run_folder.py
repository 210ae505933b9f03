"""One run per folder: a new run claims its folder atomically, and the process training a run holds its lock.

A new run never writes into a folder that already holds something (:func:`claim_run_dir`); a resumed run locks its
folder (:func:`lock_run_dir`), so two processes never train one run at once. The lock is ``fcntl.flock`` on the
folder's ``.lock`` file, dropped when the process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from mappo_td.train.checkpoint_files import checkpoints_in

LOCK_FILE = ".lock"  # in a run folder: locked (fcntl.flock) by the process training the run, for as long as it does


class RunLock:
    """The exclusive lock on a run folder (``fcntl.flock`` on its ``.lock`` file), held by the one process training the
    run; :func:`claim_run_dir` takes it for a new run, :func:`lock_run_dir` for a resumed one. ``release()`` drops it.

    Example:
        >>> import tempfile
        >>> lock = claim_run_dir(Path(tempfile.mkdtemp()) / "run")
        >>> lock_run_dir(lock.run_dir)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: .../run is being trained now by process ...
        >>> lock.release(); lock_run_dir(lock.run_dir).release()
    """

    def __init__(self, run_dir: Path, fd: int | None) -> None:
        self.run_dir, self._fd = Path(run_dir), fd

    def release(self) -> None:
        """Drop the lock (closing the file drops it; the file stays, marking the folder as a run's)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _holder(run_dir: Path) -> str:
    try:
        words = (run_dir / LOCK_FILE).read_text().split()
    except OSError:
        words = []
    if not words:
        return "another process"
    return f"process {words[0]}" + (f" on {words[1]}" if len(words) > 1 and words[1] != socket.gethostname() else "")


def _busy(run_dir: Path) -> bool:
    """Whether another process holds ``run_dir``'s lock now (a probe that writes nothing)."""
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def lock_run_dir(run_dir: Path) -> RunLock:
    """Lock ``run_dir`` for this process (a resumed run), or a ``ValueError`` when another process trains it now."""
    fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ValueError(f"{run_dir} is being trained now by {_holder(Path(run_dir))}: one process trains a run at a time; "
                         "wait for it to end (or stop it with Ctrl-C), or train elsewhere (--fork NEW_NAME).") from None
    except OSError:  # a file system without locks (some network mounts): go on unlocked
        pass
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    return RunLock(Path(run_dir), fd)


def _held(run_dir: Path) -> list[str]:
    """What ``run_dir`` holds besides its lock file (folders with a trailing ``/``)."""
    if run_dir.exists() and not run_dir.is_dir():
        return ["a file by that name"]
    return sorted(p.name + ("/" if p.is_dir() else "") for p in run_dir.iterdir() if p.name != LOCK_FILE) if run_dir.is_dir() else []


def _refuse(run_dir: Path, held: list[str], busy: bool, instead: str) -> None:
    ckpts = checkpoints_in(run_dir / "checkpoints")
    what = ", ".join(held[:6]) + (f" and {len(held) - 6} more" if len(held) > 6 else "") if held else "nothing yet"
    if ckpts:
        what += f" (checkpoints {ckpts[0].name}{f' … {ckpts[-1].name}' if len(ckpts) > 1 else ''})"
    instead = instead or ("pass another --experiment-name (or --directory)"
                          + (f", or continue that run with --resume {run_dir / 'checkpoints'}" if ckpts else ""))
    raise ValueError(f"{run_dir} already holds {what}{f' and is being trained now by {_holder(run_dir)}' if busy else ''}; "
                     f"a new run never writes into a folder that holds one: {instead}.")


def check_new_run_dir(run_dir: Path, instead: str = "") -> None:
    """A ``ValueError`` when ``run_dir`` already holds something (another run): a new run never writes into such a folder.

    ``instead``: what to do (default: another ``--experiment-name``, or ``--resume`` when the folder has checkpoints).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); (d / "config.json").touch(); check_new_run_dir(d)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: ... already holds config.json; a new run never writes into a folder that holds one: pass another ...
    """
    run_dir = Path(run_dir)
    held, busy = _held(run_dir), _busy(run_dir)
    if held or busy:
        _refuse(run_dir, held, busy, instead)


def claim_run_dir(run_dir: Path, instead: str = "") -> RunLock:
    """Make ``run_dir`` a new run's folder and lock it (see :class:`RunLock`), atomically: of runs started at once with one
    folder, exactly one gets it; the others get :func:`check_new_run_dir`'s ``ValueError`` and write nothing there."""
    run_dir = Path(run_dir)
    check_new_run_dir(run_dir, instead)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock = lock_run_dir(run_dir)  # runs claiming together take turns here; the first one's files are there for the next
    except ValueError:
        _refuse(run_dir, _held(run_dir), True, instead)
    held = _held(run_dir)
    if held:
        lock.release()
        _refuse(run_dir, held, False, instead)
    return lock
