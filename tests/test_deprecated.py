"""Earlier names keep working, each with a DeprecationWarning that names its replacement: config keys, module paths,
constants."""

import importlib

import pytest

from mappo_td.config import PRESETS, SECTION_KEYS, TrainConfig, check_in_bounds


@pytest.mark.parametrize("old,new,check", [
    ({"env": {"workers": 1}}, "env.num_workers", lambda cfg: cfg.env.num_workers == 1),
    ({"compile": True}, "fast='compile'", lambda cfg: cfg.fast == "compile"),
    ({"cudagraphs": False}, "fast='cudagraphs'", lambda cfg: cfg.fast == "off"),
])
def test_earlier_config_keys_are_read_and_warn(old, new, check):
    with pytest.warns(DeprecationWarning, match=f"deprecated \\(still read\\); use {new}"):
        cfg = TrainConfig.from_dict(old)
    assert check(cfg)


@pytest.mark.parametrize("module,name,value", [
    ("mappo_td.presets", "PRESETS", PRESETS), ("mappo_td.schema", "check_in_bounds", check_in_bounds),
    ("mappo_td.validation", "VALUE_LOSSES", ("mse", "huber")),  # moved on from validation to mappo_td.config.constants
])
def test_modules_moved_into_config_import_from_their_earlier_paths_and_warn(module, name, value):
    old = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=f"{module} moved to mappo_td.config"):
        assert getattr(old, name) is value or getattr(old, name) == value


def test_config_sections_constant_is_section_keys():
    import mappo_td.config

    with pytest.warns(DeprecationWarning, match="use mappo_td.config.SECTION_KEYS"):
        assert mappo_td.config.SECTIONS is SECTION_KEYS
