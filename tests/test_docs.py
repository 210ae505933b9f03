"""The docs site holds to the code: the configuration reference is generated (every field, its default and help, and a
field added to the dataclasses appears with no edit), the pages' Python and YAML examples run, the preset table matches
the preset, every link into the repository names a file that exists, and every page is in the site's table of
contents. (CI builds the site itself with warnings as errors: broken references, links and anchors fail there.)"""

import dataclasses
import importlib
import re
import sys

import pytest
import yaml

from mappo_td import reference_pages as pages
from mappo_td.cli_parser import build_parser
from mappo_td.config import PRESETS, EnvConfig, ExperimentConfig, MAPPOConfig, ModelConfig, TrainConfig, preset
from mappo_td.config import reference as ref
from tests.markdown import DOCS, FENCE, PAGES, REPO_URL, ROOT, blocks, links, read


def every_field():
    """(dotted key, field) of every configuration field, walked from the dataclasses themselves."""
    out = []

    def walk(cls, path):
        for f in dataclasses.fields(cls):
            key = f.metadata.get("key", f.name)
            if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
                walk(f.default_factory, (*path, key))
            else:
                out.append((".".join((*path, key)), f))

    walk(TrainConfig, ())
    return out


def test_the_configuration_page_is_generated_and_lists_every_field_with_its_default_and_help():
    """Between its markers the page holds exactly what the code generates (the build writes it afresh; the committed
    copy, read on GitHub, is held to it here), and that lists every field of the dataclasses with its default and help."""
    source = read(DOCS / "configuration.md")
    assert all(pages.start_marker(n) in source and pages.end_marker(n) in source for n in pages.GENERATORS)
    assert pages.expand_generated(source) == source, "docs/configuration.md is stale: run python -m mappo_td.reference_pages docs/configuration.md"
    generated = source.split(pages.start_marker("config-fields"))[1].split(pages.end_marker("config-fields"))[0]
    assert generated.strip() == ref.config_reference_markdown().strip()
    rows = {m.group(1): line for line in generated.splitlines() if (m := re.match(r"\| `([\w.]+)` \|", line))}
    fields = every_field()
    assert len(fields) > 60 and sorted(rows) == sorted(key for key, _ in fields)
    for key, f in fields:
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", rows[key])[1:-1]]
        assert cells[3] == f"`{ref.default_text(default)}`", key
        assert re.sub(r"\\(.)", r"\1", cells[4]).startswith(f.metadata["help"]), key
    assert "| `mappo.lambda` | `--lambda` | float or dict by agent | `0.95` |" in generated
    assert "| `model.share_params` | `--share-params`, `--no-share-params` | bool | `true` |" in generated
    assert "| `mappo.rewards_shaper` | (Python only) |" in generated
    assert "\\<run\\>/eval/eval_\\<timestep\\>.gif" in generated  # not read as HTML tags


def test_the_command_flags_part_lists_every_flag_that_is_not_a_config_field():
    parser = build_parser()
    fields = {row.flag for row in ref.config_fields()} | {f"--no-{row.flag[2:]}" for row in ref.config_fields() if row.flag}
    text = read(DOCS / "configuration.md").split(pages.start_marker("command-flags"))[1]
    for name, command in {"": parser, **parser.commands}.items():
        usage = set(re.findall(r"\[(--?[\w-]+)", command.format_usage()))  # every option, as its usage line lists it
        flags = usage - {"-h", "--help"} - (fields if name == "train" else set())
        assert flags and all(f"`{flag}" in text or f", {flag}" in text for flag in flags), (name, flags)


def test_a_field_without_help_is_refused_not_left_out(monkeypatch):
    @dataclasses.dataclass
    class Extra:
        quiet: int = 3

    monkeypatch.setattr(ref, "CONFIG_SECTIONS", (*ref.CONFIG_SECTIONS, ("extra", Extra, ("extra",))))
    with pytest.raises(ValueError, match="Extra.quiet has no help: declare it with config_field"):
        ref.config_fields()


def test_a_field_declared_with_an_empty_help_or_a_float_min_is_refused_at_declaration():
    from mappo_td.config.schema import config_field

    with pytest.raises(ValueError, match="every field needs a one-line help"):
        config_field(0.0, "  ")
    with pytest.raises(TypeError, match="min=.... is for integer fields"):
        config_field(0.0, "dropout", min=0)
    assert config_field(3, "three", min=1).metadata == {"help": "three", "min": 1}


def test_the_page_writer_rewrites_a_stale_page_and_leaves_an_unmarked_one(tmp_path, capsys):
    page, plain = tmp_path / "config.md", tmp_path / "plain.md"
    page.write_text(f"# C\n{pages.start_marker('config-fields')}\nhand-written\n{pages.end_marker('config-fields')}\n")
    plain.write_text("# nothing generated\n")
    assert pages.main([str(page)]) == 0 and "hand-written" not in page.read_text() and "`mappo.lambda`" in page.read_text()
    assert pages.main([str(page)]) == 0 and capsys.readouterr().out.endswith("up to date\n")
    assert pages.main([str(plain)]) == 2 and plain.read_text() == "# nothing generated\n"


def test_a_field_added_to_a_section_appears_in_the_reference_with_no_other_edit(monkeypatch):
    @dataclasses.dataclass
    class Extra:
        brand_new: int = dataclasses.field(default=7, metadata={"help": "a field no page mentions", "min": 1})

    monkeypatch.setattr(ref, "CONFIG_SECTIONS", (*ref.CONFIG_SECTIONS, ("extra", Extra, ("extra",))))
    text = ref.config_reference_markdown()
    assert "| `extra.brand_new` | `--brand-new` | int | `7` | a field no page mentions (allowed: ≥ 1) |" in text


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


def test_the_layout_on_the_development_page_names_every_module():
    layout = blocks(read(DOCS / "development.md").split("## Layout", 1)[1], "")[0]
    modules = sorted(p for p in (ROOT / "mappo_td").rglob("*.py") if p.name != "__init__.py" and "__pycache__" not in p.parts)
    missing = [str(p.relative_to(ROOT)) for p in modules if p.name not in layout]
    assert not missing, f"docs/development.md's layout does not name {missing}"
    examples = read(DOCS / "development.md").split("## Layout", 1)[1]
    assert all(f"examples/{p.name}" in examples for p in (ROOT / "examples").glob("*.py"))


def test_ci_builds_the_docs_with_warnings_and_broken_references_as_errors():
    ci = read(ROOT / ".ci" / "run").splitlines()
    (build,) = [line for line in ci if line.startswith("sphinx-build")]
    assert {"-W", "-n", "--keep-going"} <= set(build.split()) and build.split()[-2:] == ["docs", "docs/_build/html"]
    assert 'pip install -q -e ".[docs]"' in ci and ci.index('pip install -q -e ".[docs]"') < ci.index(build)


def resolves(dotted: str) -> bool:
    try:
        pages.resolve_name(dotted)
    except LookupError:
        return False
    return True


def test_the_names_and_files_the_guides_mention_exist():
    """The guides name the API and the repository's files in code spans (``mappo_td.train.chunks``,
    ``MAPPOTrainer.from_checkpoint``, ``F.kl_early_stop``, ``mappo_td/agent/alive.py``), which the docs build does not
    check: a rename must fail here."""
    import mappo_td

    texts = [read(page) for page in [*PAGES, ROOT / "README.md"]]
    spans = {m.group(1) for text in texts for m in re.finditer(r"`([^`]+)`", FENCE.sub("", text))}
    dotted = {m.group(1) for span in spans if (m := re.match(r"(mappo_td(?:\.\w+)+)", span))}
    public = {f"mappo_td.{m.group(1)}" for span in spans if (m := re.match(rf"((?:{'|'.join(mappo_td.__all__)})\.\w+)", span))}
    functional = {f"mappo_td.functional.{m.group(1)}" for span in spans if (m := re.match(r"F\.(\w+)", span))}
    files = {m.group(1) for span in spans if (m := re.match(r"((?:mappo_td|examples|benchmarks|tests|docs|\.ci)/[\w./-]+\.\w+)", span))}
    assert len(dotted) > 5 and len(public) >= 3 and len(functional) >= 3 and len(files) > 15, (dotted, public, functional, files)
    assert not [n for n in sorted(dotted | public | functional) if not resolves(n)]
    assert not [f for f in sorted(files) if not (ROOT / f).exists()]


def test_the_api_reference_documents_every_public_name():
    """autodoc documents the classes and functions of a package's ``__all__`` by itself, but skips its constants
    (``PRESETS``, ``MAPPO_DEFAULT_CONFIG``), which the API pages name one by one: a new constant must be added there."""
    import inspect

    api = "\n".join(read(page) for page in sorted((DOCS / "api").glob("*.md")))
    packages = re.findall(r"^\.\. automodule:: ([\w.]+)$", api, re.M)
    missing = []
    for name in packages:
        module = importlib.import_module(name)
        for member in getattr(module, "__all__", []):
            obj = getattr(module, member)
            if not (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj)) and f"autodata:: {name}.{member}\n" not in api:
                missing.append(f"{name}.{member}")
    assert len(packages) > 10 and not missing, missing
