"""Environment construction: clear errors for unknown scenarios, tasks and kwargs."""

import pytest

from mappo_td.config import EnvConfig
from mappo_td.envs import make_env, scenario_kwargs, vmas_scenario_kwargs


def test_unknown_vmas_scenario_names_close_matches():
    with pytest.raises(ValueError, match=r"unknown VMAS scenario 'navigaton'; did you mean \['navigation'\]"):
        make_env(EnvConfig(scenario="navigaton"))


def test_unknown_vmas_kwargs_are_an_error_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"env.scenario_kwargs \['n_agent'\] are not read by VMAS scenario 'navigation'; it reads \['n_agents', 'collisions'"):
        make_env(EnvConfig(scenario_kwargs={"n_agent": 2}))
    with pytest.raises(ValueError, match=r"could not be built with scenario_kwargs \{'n_agents': 'x'\} \(TypeError"):
        make_env(EnvConfig(scenario_kwargs={"n_agents": "x"}))
    assert "package_mass" in vmas_scenario_kwargs("balance")


def test_backend_default_kwargs():
    assert scenario_kwargs(EnvConfig()) == {"n_agents": 3}
    assert scenario_kwargs(EnvConfig(scenario="balance")) == {}
    assert scenario_kwargs(EnvConfig(scenario_kwargs={"n_agents": 5})) == {"n_agents": 5}


def test_unknown_pettingzoo_task_says_what_to_install():
    with pytest.raises(ValueError, match=r"unknown PettingZoo task 'simple_nothing_v1'.*pip install -e \"\.\[pettingzoo\]\""):
        make_env(EnvConfig(backend="pettingzoo", scenario="simple_nothing_v1"))
    pytest.importorskip("mpe2")
    with pytest.raises(ValueError, match=r"does not take scenario_kwargs \{'n_agents': 3\}"):
        make_env(EnvConfig(backend="pettingzoo", scenario="simple_spread_v3", scenario_kwargs={"n_agents": 3}))
