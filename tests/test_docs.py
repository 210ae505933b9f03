"""The docs site holds to the code: the configuration reference is generated (every field, its default and help, and a
field added to the dataclasses appears with no edit), the pages' Python and YAML examples run, the preset table matches
the preset, every link into the repository names a file that exists, and every page is in the site's table of
contents. (CI builds the site itself with warnings as errors: broken references, links and anchors fail there.)"""

import dataclasses
import re
import sys

import pytest
import yaml

from mappo_td.config import PRESETS, EnvConfig, ExperimentConfig, MAPPOConfig, ModelConfig, TrainConfig, preset
from mappo_td.config import reference as ref
from tests.markdown import DOCS, PAGES, REPO_URL, ROOT, blocks, links, read


def every_field():
    """(dotted key, field) of every configuration field, walked from the dataclasses themselves."""
    out = []

    def walk(cls, path):
        for f in dataclasses.fields(cls):
            key = f.metadata.get("key", f.name)
            if dataclasses.is_dataclass(f.default_factory) if f.default_factory is not dataclasses.MISSING else False:
                walk(f.default_factory, (*path, key))
            else:
                out.append((".".join((*path, key)), f))

    walk(TrainConfig, ())
    return out


def test_the_configuration_page_is_generated_and_lists_every_field_with_its_default_and_help():
    source = read(DOCS / "configuration.md")
    assert ref.CONFIG_REFERENCE_MARKER in source
    assert ref.config_reference_markdown() not in source and not re.search(r"^\| `(mappo|env|model)\.", source, re.M)
    page = ref.expand_config_reference(source)
    rows = {m.group(1): line for line in page.splitlines() if (m := re.match(r"\| `([\w.]+)` \|", line))}
    fields = every_field()
    assert len(fields) > 60 and sorted(rows) == sorted(key for key, _ in fields)
    for key, f in fields:
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", rows[key])[1:-1]]
        assert cells[3] == f"`{ref.default_text(default)}`", key
        assert cells[4].replace("\\|", "|").startswith(f.metadata["help"]), key
    assert "| `mappo.lambda` | `--lambda` | float or dict by agent | `0.95` |" in page
    assert "| `mappo.rewards_shaper` | (Python only) |" in page


def test_a_field_added_to_a_section_appears_in_the_reference_with_no_other_edit(monkeypatch):
    @dataclasses.dataclass
    class Extra:
        brand_new: int = dataclasses.field(default=7, metadata={"help": "a field no page mentions", "min": 1})

    monkeypatch.setattr(ref, "CONFIG_SECTIONS", (*ref.CONFIG_SECTIONS, ("extra", Extra, ("extra",))))
    text = ref.config_reference_markdown()
    assert "| `extra.brand_new` | `--brand-new` | int | `7` | a field no page mentions Allowed: ≥ 1. |" in text


def test_the_reference_sections_are_the_config_tree():
    assert [cls for _, cls, _ in ref.CONFIG_SECTIONS] == [MAPPOConfig, ExperimentConfig, EnvConfig, ModelConfig, TrainConfig]


def test_the_configuration_page_yaml_example_is_a_valid_config():
    (example,) = blocks(read(DOCS / "configuration.md"), "yaml")
    cfg = TrainConfig.from_dict(yaml.safe_load(example))
    assert (cfg.mappo.lambda_, cfg.mappo.rollouts, cfg.env.num_envs, cfg.model.hidden_sizes) == (0.9, 32, 256, [128, 128])


RUNNABLE = [(page.name, i) for page in PAGES for i, body in enumerate(blocks(read(page), "python"))
            if not re.search(r"^\s*\.\.\.", body, re.M)]


@pytest.mark.parametrize(("page", "index"), RUNNABLE, ids=[f"{p}[{i}]" for p, i in RUNNABLE])
def test_the_docs_python_examples_run(page, index, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(blocks(read(DOCS / page), "python")[index], page, "exec"), scope)
    assert "out" in scope and scope["out"]["loss_objective"].isfinite().all()


def test_the_examples_that_run_are_the_ones_meant_to():
    assert {p for p, _ in RUNNABLE} == {"modules.md", "functional.md"}


def test_the_functional_page_example_needs_no_torchrl():
    (snippet,) = blocks(read(DOCS / "functional.md"), "python")
    assert "tensordict" not in snippet and "torchrl" not in snippet
    before = set(sys.modules)
    exec(compile(snippet, "functional.md", "exec"), {})
    assert not [m for m in set(sys.modules) - before if m.startswith(("torchrl", "tensordict"))]


def test_the_preset_table_is_the_preset():
    table = read(DOCS / "differences.md").split("## The MAPPO reference implementation", 1)[1]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|", table, re.M)}
    cfg = TrainConfig.from_dict(preset("mappo-paper"))
    for key in ("value_loss", "learning_rate", "learning_epochs", "mini_batches", "entropy_loss_scale", "grad_norm_clip", "rollouts"):
        value, shown = getattr(cfg.mappo, key), rows[key].split()[0].strip("`,")
        assert (float(shown) == value) if isinstance(value, (int, float)) else shown == value, (key, rows[key])
    assert list(PRESETS) == ["mappo-paper"]


def test_every_link_into_the_repository_names_a_file_that_exists():
    for page in [*PAGES, ROOT / "README.md"]:
        for target in links(read(page)):
            if m := REPO_URL.match(target):
                assert (ROOT / m.group(1)).exists(), f"{page.name}: {target}"
            elif not target.startswith(("https://", "http://", "#")):
                path = (page.parent / target.split("#")[0])
                assert path.exists(), f"{page.name}: {target}"


def test_every_page_is_in_a_table_of_contents():
    listed = set()
    for page in PAGES:
        for body in blocks(read(page), "{toctree}"):
            listed |= {(page.parent / line.strip()).resolve() for line in body.splitlines() if line.strip() and not line.startswith(":")}
    pages = {p.with_suffix("").resolve() for p in PAGES} - {(DOCS / "index").resolve()}
    assert pages <= listed, sorted(str(p) for p in pages - listed)
