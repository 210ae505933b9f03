"""Sphinx configuration of mappo_td's documentation.

Sphinx, not mkdocs: the docstrings are reStructuredText with Sphinx roles (``:class:``, ``:func:``) and run as
doctests; autodoc renders them as written, the guides are Markdown (MyST), and the field's libraries (TorchRL,
BenchMARL, skrl) document themselves the same way. Build: ``sphinx-build -W --keep-going -n docs docs/_build/html`` (CI adds ``-q``).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "docs" / "_ext")]  # this checkout's mappo_td, whatever else is installed

import mappo_td  # noqa: E402

project = "mappo_td"
author = "the mappo_td developers"
copyright = "2026, the mappo_td developers"
release = version = mappo_td.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode", "myst_parser", "mappo_td_docs"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
root_doc = "index"

myst_heading_anchors = 4  # [text](page.md#a-heading) links to headings, checked
myst_enable_extensions = ["colon_fence"]
smartquotes = False  # {"kl_threshold": 0.008} stays copyable

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": False}  # every public name
napoleon_google_docstring = True  # Args: sections; a property's or attribute's docstring must not start "words: ..."
napoleon_numpy_docstring = False   # (napoleon reads "words" as its type)
napoleon_custom_sections = [("Example", "example"), ("Examples", "example")]
autodoc_inherit_docstrings = False  # torch.nn.Module.forward's docstring is torch's, not ours

# Broken cross-references are errors (-n -W): every reference into mappo_td must resolve. References into other
# libraries (torch, TorchRL, tensordict, the standard library) stay plain text: the docs build offline, with no
# inventory of theirs to resolve them against.
nitpicky = True
EXTERNAL = ("torch", "tensordict", "torchrl", "numpy", "np", "gymnasium", "gym", "pettingzoo", "vmas", "skrl", "mpe2", "tqdm",
            "yaml", "matplotlib", "wandb", "argparse", "pathlib", "collections", "typing", "dataclasses", "enum", "os", "json",
            "datetime", "types", "io", "abc", "multiprocessing", "concurrent", "contextlib", "threading", "signal", "numbers")
nitpick_ignore_regex = [
    (r"py:.*", rf"({'|'.join(EXTERNAL)})(\..*)?"),
    (r"py:class", r"str \| tuple\[str|dict\[str"),  # Sphinx splits `tuple[str, ...]` of an evaluated alias at the comma
    (r"py:class", r"mappo_td\.train\.logging\.(RunLogger|NullLogger|Progress)"),  # internal types in Session's field hints
]

html_theme = "furo"
html_title = f"mappo_td {release}"
html_static_path: list[str] = []
