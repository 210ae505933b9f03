"""Reading the README and the docs pages as the tests check them: sections, fenced blocks, ``mappo-td`` commands, links."""

import itertools
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md")) + sorted((DOCS / "api").glob("*.md"))
FENCE = re.compile(r"^```([\w{}-]*)\n(.*?)^```", re.M | re.S)
REPO_URL = re.compile(r"https://(?:github\.com/mappo-td/mappo_td/blob/main|raw\.githubusercontent\.com/mappo-td/mappo_td/main)/([^)#\s]+)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def read(path: Path) -> str:
    return path.read_text()


def section(text: str, heading: str) -> str:
    """``text`` from ``heading`` (a whole line) to the next heading of the same or a higher level."""
    start = text.index(f"\n{heading}\n") + 1
    level = len(heading.split()[0])
    end = re.compile(rf"^#{{1,{level}}} ", re.M).search(text, start + len(heading))
    return text[start:end.start() if end else len(text)]


def blocks(text: str, lang: str) -> list[str]:
    return [body.strip() for kind, body in FENCE.findall(text) if kind == lang]


def mappo_td_args(line: str) -> list[list[str]]:
    """The arguments of each ``mappo-td`` command in one shell line (also after ``&&`` and in ``$(which mappo-td)``)."""
    tokens = shlex.split(line, comments=True)
    return [list(itertools.takewhile(lambda t: t not in ("&&", "||", "|", ";"), tokens[i + 1:]))
            for i, t in enumerate(tokens) if t in ("mappo-td", "mappo-td)")]


def commands(text: str) -> list[list[str]]:
    """Every ``mappo-td`` command of ``text``: each line of its bash blocks, and its inline code that runs one (not
    the bare names ``mappo-td plot`` and the like)."""
    lines = [line for body in blocks(text, "bash") for line in body.splitlines()]
    inline = [code.replace("\n", " ") for code in re.findall(r"`([^`]+)`", FENCE.sub("", text))]
    return [args for line in lines for args in mappo_td_args(line)] + [
        args for code in inline if "mappo-td" in code for args in mappo_td_args(code) if len(args) > 1]


def links(text: str) -> list[str]:
    """The targets of the Markdown links and images of ``text`` (outside code blocks)."""
    return LINK.findall(FENCE.sub("", text))
