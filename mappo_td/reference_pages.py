"""The docs pages' generated parts: a page holds a start and an end marker per part, and everything between them is
written from the code (the configuration's fields, the command's other flags), never by hand.

The docs build fills them afresh (``docs/_ext/mappo_td_docs.py``); ``python -m mappo_td.reference_pages PAGE ...``
rewrites the committed copy (a test holds it to the code, so the page reads right on GitHub too).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from mappo_td.atomic import atomic_write
from mappo_td.cli_parser import command_flags_markdown
from mappo_td.config.reference import config_reference_markdown

#: What each generated part is made from, by the name its markers carry.
GENERATORS: dict[str, Callable[[], str]] = {"config-fields": config_reference_markdown, "command-flags": command_flags_markdown}


def start_marker(name: str) -> str:
    """The line that opens generated part ``name``.

    Example:
        >>> start_marker("config-fields")
        '<!-- generated: config-fields (python -m mappo_td.reference_pages PAGE rewrites it; do not edit by hand) -->'
    """
    return f"<!-- generated: {name} (python -m mappo_td.reference_pages PAGE rewrites it; do not edit by hand) -->"


def end_marker(name: str) -> str:
    """The line that closes generated part ``name``."""
    return f"<!-- end generated: {name} -->"


def expand_generated(text: str) -> str:
    """``text`` with every generated part it marks written afresh, whatever stood between its markers.

    Example:
        >>> page = expand_generated(f"# Config\\n{start_marker('config-fields')}\\nstale\\n{end_marker('config-fields')}\\n")
        >>> "stale" in page, "| `env.num_envs` | `--num-envs` | int | `128` |" in page
        (False, True)
    """
    for name, generate in GENERATORS.items():
        start, end = start_marker(name), end_marker(name)
        if start in text and end in text:
            head, rest = text.split(start, 1)
            text = f"{head}{start}\n\n{generate().strip()}\n\n{end}{rest.split(end, 1)[1]}"
    return text


def main(argv: list[str] | None = None) -> int:
    """Rewrite each page's generated parts (atomically, only when they changed); 2 when a page marks none."""
    status = 0
    for page in sys.argv[1:] if argv is None else argv:
        text = Path(page).read_text()
        if not any(start_marker(n) in text for n in GENERATORS):
            print(f"{page}: no generated part; mark one with the lines {start_marker('config-fields')!r} and "
                  f"{end_marker('config-fields')!r}", file=sys.stderr)
            status = 2
            continue
        new = expand_generated(text)
        if new != text:
            atomic_write(Path(page), lambda f, new=new: f.write(new.encode()))
        print(f"{page}: {'updated' if new != text else 'up to date'}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
