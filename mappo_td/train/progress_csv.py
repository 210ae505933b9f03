"""``progress.csv``: rows appended once per log interval, never lost: a row with new columns rewrites the file with
every column (atomically), a torn last line (a run killed while writing it) is left out when the file is read.
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path
from typing import Any

from mappo_td.atomic import atomic_write


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a progress CSV. A torn last line (a run killed while writing it) is left out; values
    past the header's columns (files written before columns could be added) get the names ``column_<n>``.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = (d / "p.csv").write_text("timestep,r\\n10,1\\n20,2\\n30,")
        >>> read_csv(d / "p.csv")
        (['timestep', 'r'], [{'timestep': '10', 'r': '1'}, {'timestep': '20', 'r': '2'}])
    """
    text = path.read_text()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # torn last line
    records = [r for r in csv.reader(io.StringIO(text)) if r]
    if not records:
        return [], []
    header, body = records[0], records[1:]
    header += [f"column_{i + 1}" for i in range(len(header), max(map(len, records)))]
    return header, [dict(zip(header, r)) for r in body]


def write_csv(path: Path, header: list[str], rows: list[dict[str, Any]]) -> None:
    """Write ``header`` and ``rows`` (missing values empty) to ``path`` atomically (a temporary file renamed over it).

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "p.csv"; write_csv(p, ["timestep", "r"], [{"timestep": 1}])
        >>> p.read_text().split()
        ['timestep,r', '1,']
    """
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=header, restval="")
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, lambda f: f.write(out.getvalue().encode()))


def _csv_header(path: Path) -> list[str]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return next(csv.reader([f.readline()]), [])


def append_csv_row(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` under the CSV's header; a row with columns the header lacks (e.g. a resume that adds
    ``--eval-interval``) rewrites the file atomically with the union header, earlier rows empty there.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "p.csv"; append_csv_row(p, {"timestep": 1, "r": 2}); append_csv_row(p, {"timestep": 2, "e": 5})
        >>> p.read_text().split()
        ['timestep,r,e', '1,2,', '2,,5']
    """
    header = _csv_header(path)
    added = [k for k in row if k not in header]
    if header and added:
        write_csv(path, header + added, [*read_csv(path)[1], row])
        return
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header or list(row), restval="")
        if not header:
            w.writeheader()
        w.writerow(row)


def copy_csv_rows(src: Path, dst: Path, until: int) -> None:
    """Write ``src``'s rows with ``timestep <= until`` to ``dst`` atomically (``dst`` may be ``src``); nothing if ``src`` is missing.
    A torn last row (a run killed while writing it) is dropped, the others are kept; a row whose timestep is not a
    number (edited by hand) is left out with a warning.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = (d / "p.csv").write_text("timestep,r\\n10,1\\n20,2\\n30,3\\n")
        >>> copy_csv_rows(d / "p.csv", d / "p.csv", 20); (d / "p.csv").read_text().split()
        ['timestep,r', '10,1', '20,2']
    """
    if not src.exists():
        return
    header, rows = read_csv(src)
    if not header:
        return
    if "timestep" not in header:
        raise ValueError(f"{src} has no timestep column ({header[:4]} ...): it is not a mappo_td progress.csv; move it away "
                         "or resume with --fork NEW_NAME.")
    kept, bad = [], []
    for n, r in enumerate(rows, start=2):
        step = (r.get("timestep") or "").strip()
        if not step.isdigit():
            bad.append(f"line {n} ({step!r})")
        elif int(step) <= until:
            kept.append(r)
    if bad:
        warnings.warn(f"{src}: rows whose timestep is not a number are left out: {', '.join(bad[:5])}"
                      f"{f' and {len(bad) - 5} more' if len(bad) > 5 else ''}.", stacklevel=2)
    write_csv(dst, header, kept)
