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


def test_skrls_value_role_is_read_as_the_critic_and_warns():
    import gymnasium as gym
    import torch

    from mappo_td.agent import MAPPO, model_sizes

    names = ["agent_0", "agent_1"]
    obs, act = {a: gym.spaces.Box(-1, 1, (4,)) for a in names}, {a: gym.spaces.Discrete(3) for a in names}
    sizes = model_sizes(obs, act)
    with pytest.warns(DeprecationWarning, match=r"\['value'\] is deprecated; read \['critic'\]"):
        assert sizes["agent_0"]["value"] == sizes["agent_0"]["critic"] == (8, 1)
    policy, critic = torch.nn.Linear(4, 3), torch.nn.Linear(8, 1)
    with pytest.warns(DeprecationWarning, match=r"models\['agent_0'\]: the role 'value' \(skrl's name\) is deprecated; call it 'critic'"):
        agent = MAPPO(names, models={a: {"policy": policy, "value": critic} for a in names}, observation_spaces=obs,
                      action_spaces=act, device="cpu", cfg={"experiment": {"directory": "unused"}})
    assert any(p is critic.weight for p in agent.learner.groups[0].critic.parameters())  # the given network is the critic
    with pytest.raises(ValueError, match=r"give the critic once, as 'critic' \('value' is its earlier name\), not both"):
        MAPPO(names, models={a: {"policy": policy, "value": critic, "critic": critic} for a in names}, observation_spaces=obs,
              action_spaces=act, device="cpu")


DATA = __import__("pathlib").Path(__file__).parent / "data"


def test_a_checkpoint_written_before_the_config_package_loads_evaluates_and_resumes(tmp_path, monkeypatch):
    """tests/data/checkpoint_before_21.pt was written by mappo_td at 8873c68 (before #21): VMAS navigation, 2 envs,
    max_steps 4, rollouts 4, hidden_sizes [8], seed 3, trained to timestep 8. Its config is edited here to hold the
    earlier key env.workers as well, as a checkpoint from before that rename would."""
    import json

    import torch

    from mappo_td.train import load_checkpoint
    from mappo_td.trainer import MAPPOTrainer

    state = torch.load(DATA / "checkpoint_before_21.pt", weights_only=True)
    config = json.loads(state["config"])
    config["env"]["workers"] = config["env"].pop("num_workers")
    state["config"] = json.dumps(config)
    torch.save(state, tmp_path / "agent_8.pt")
    monkeypatch.chdir(tmp_path)
    with pytest.warns(DeprecationWarning, match="config key 'env.workers' is deprecated"):
        trainer = MAPPOTrainer.from_checkpoint(tmp_path / "agent_8.pt", {"timesteps": 12}, fork="continued")
    assert (trainer.timestep, trainer.updates) == (8, 32)
    saved = load_checkpoint(DATA / "checkpoint_before_21.pt")["models"]["agents/critic"]
    assert all(torch.equal(v, trainer.groups[0].critic.state_dict()[k]) for k, v in saved.items())
    assert trainer.evaluate(episodes=2)["episodes"] == 2.0
    summary = trainer.train()
    assert summary["timestep"] == 12 and (tmp_path / "runs" / "continued" / "checkpoints" / "agent_12.pt").exists()
