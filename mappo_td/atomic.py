"""Atomic file writes: a file is either its old self or wholly the new one, never half written.

Checkpoints, ``progress.csv``, evaluation GIFs and plots are all written through :func:`atomic_write`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on a temporary binary file beside ``path``, flush it to disk (fsync), then rename it over
    ``path``; if ``write`` raises, ``path`` keeps its old contents and the temporary file is removed. Makes the folder.

    Example:
        >>> import tempfile
        >>> p = atomic_write(Path(tempfile.mkdtemp()) / "a.txt", lambda f: f.write(b"new"))
        >>> p.read_bytes()
        b'new'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # like any other new file (mkstemp makes 0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
