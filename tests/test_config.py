import dataclasses
import json
import math
import re

import pytest
import torch

from mappo_td.cli import main
from mappo_td.config import MAPPOConfig, TrainConfig, merge_config
from mappo_td.trainer import MAPPOTrainer
from tests.helpers import small_config

# skrl's MAPPO_DEFAULT_CONFIG, as a user would paste it.
SEED = {
    "rollouts": 16, "learning_epochs": 8, "mini_batches": 2, "discount_factor": 0.99, "lambda": 0.95,
    "learning_rate": 1e-3, "learning_rate_scheduler": None, "learning_rate_scheduler_kwargs": {},
    "state_preprocessor": None, "state_preprocessor_kwargs": {}, "shared_state_preprocessor": None,
    "shared_state_preprocessor_kwargs": {}, "value_preprocessor": None, "value_preprocessor_kwargs": {},
    "random_timesteps": 0, "learning_starts": 0, "grad_norm_clip": 0.5, "ratio_clip": 0.2, "value_clip": 0.2,
    "clip_predicted_values": False, "entropy_loss_scale": 0.0, "value_loss_scale": 1.0, "kl_threshold": 0,
    "rewards_shaper": None, "time_limit_bootstrap": False,
    "experiment": {"directory": "", "experiment_name": "", "write_interval": 250, "checkpoint_interval": 1000,
                   "store_separately": False, "wandb": False, "wandb_kwargs": {}},
}


def test_seed_dict_verbatim_equals_typed_defaults():
    assert TrainConfig.from_dict(SEED).mappo == MAPPOConfig() == TrainConfig().mappo
    typed = dataclasses.asdict(MAPPOConfig())
    typed["lambda"] = typed.pop("lambda_")
    assert typed.pop("experiment").pop("keep_checkpoints") == 0  # mappo_td's additions: keep every checkpoint,
    assert typed.pop("data_chunk_length") == 10  # and the MAPPO paper's recurrent chunk length (used with model.body=gru)
    additions = {k: typed.pop(k) for k in ("value_loss", "huber_delta", "value_clip_form", "policy_active_masks", "value_active_masks")}
    assert additions == {"value_loss": "mse", "huber_delta": 10.0, "value_clip_form": "prediction",  # defaults: skrl's loss,
                         "policy_active_masks": True, "value_active_masks": True}  # alive masks used where the env gives them
    assert typed == {k: v for k, v in SEED.items() if k != "experiment"}


def test_modified_seed_dict_equals_typed_form():
    d = {**SEED, "lambda": 0.9, "discount_factor": {"agent_0": 0.99, "agent_1": 0.995}, "rollouts": 32,
         "experiment": {**SEED["experiment"], "write_interval": 10}}
    cfg = TrainConfig.from_dict(d)
    assert cfg.mappo.lambda_ == 0.9 and cfg.mappo.rollouts == 32 and cfg.mappo.experiment.write_interval == 10
    assert cfg.mappo.discount_factor == {"agent_0": 0.99, "agent_1": 0.995}
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # the typed form round-trips


def test_per_agent_values_land_on_the_right_agents():
    cfg = small_config(discount_factor={"agent_0": 0.9, "agent_1": 0.95, "agent_2": 0.99}, ratio_clip={"agent_2": 0.3, "agent_0": 0.1, "agent_1": 0.2},
                       model={"share_params": False}, learning_rate={"agents": 5e-4})
    g = MAPPOTrainer(cfg).groups[0]
    assert g.agents == ["agent_0", "agent_1", "agent_2"]
    torch.testing.assert_close(g.gae.gamma.flatten(), torch.tensor([0.9, 0.95, 0.99]))
    torch.testing.assert_close(g.loss.ratio_clip.flatten(), torch.tensor([0.1, 0.2, 0.3]))
    torch.testing.assert_close(g.optimizer.lr, torch.full((3,), 5e-4))


@pytest.mark.parametrize("bad,match", [
    ({"rollouts": -1}, "rollouts must be an integer >= 1, got -1"),
    ({"ratio_clip": 0.0}, r"ratio_clip must be a finite number in \(0"),
    ({"lambda": 1.5}, r"lambda must be a finite number in \[0, 1\]"),
    ({"discount_factor": math.nan}, "discount_factor must be a finite number"),
    ({"mini_batches": 0}, "mini_batches must be an integer >= 1"),
    ({"learning_rate": -1e-3}, "learning_rate must be a finite number"),
    ({"rollouts": 16, "discount_factor": {"agent_0": 2.0}}, "discount_factor must be a finite number"),
    ({"learing_rate": 1e-3}, r"unknown config key\(s\) \['learing_rate'\] \(did you mean 'learning_rate'\?\); valid top-level keys"),
    ({"experiment": {"write_intervall": 5}}, r"unknown key\(s\) \['write_intervall'\] in 'experiment' \(did you mean 'write_interval'\?\)"),
    ({"model": {"shared_model": True}}, "shared_model needs model.centralized_critic=false"),
    ({"model": {"body": "gru"}}, r"data_chunk_length=10 must divide rollouts=16 .*use one of \[1, 2, 4, 8, 16\]"),
    ({"model": {"body": "gru"}, "rollouts": 8, "data_chunk_length": 16}, "data_chunk_length=16 must divide rollouts=8"),
    ({"model": {"body": "gru"}, "data_chunk_length": 8, "mini_batches": 300, "env": {"num_envs": 4}},
     r"mini_batches=300 needs at least as many chunks .* an update has 8 \(4 envs x 2 per env\)"),
    ({"model": {"body": "gru", "shared_model": True, "centralized_critic": False}, "data_chunk_length": 8},
     "shared_model is not available with model.body='gru'"),
    ({"model": {"body": "lstm"}}, "model.body must be one of"),
    ({"model": {"rnn_hidden_size": 0}}, "rnn_hidden_size must be an integer >= 1"),
    ({"data_chunk_length": 0}, "data_chunk_length must be an integer >= 1"),
])
def test_bad_values_are_rejected_with_clear_messages(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict(bad)


def test_unknown_agent_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown agent/group name\(s\) \['agent_7'\]; valid names: \['agent_0'"):
        MAPPOTrainer(small_config(discount_factor={"agent_7": 0.9}))


def test_shared_parameters_need_one_learning_rate():
    with pytest.raises(ValueError, match="learning_rate differs between agents"):
        MAPPOTrainer(small_config(learning_rate={"agent_0": 1e-3, "agent_1": 1e-4, "agent_2": 1e-3}))


@pytest.mark.parametrize("field,section", [("continuous_actions", "env"), ("share_params", "model"), ("tanh_squash", "model"),
                                           ("clip_predicted_values", None), ("progress", "top")])
def test_string_booleans_are_strict(field, section):
    def cfg(v):
        return TrainConfig.from_dict({field: v} if section in (None, "top") else {section: {field: v}})

    for text in ("no", "off", "0", "False!"):
        with pytest.raises(ValueError, match=f"{field} must be true or false, got '{text}'"):
            cfg(text)
    value = cfg("false")
    got = getattr(value.mappo if section is None else value if section == "top" else getattr(value, section), field)
    assert got is False


def test_numbers_written_as_strings_are_numbers():
    cfg = TrainConfig.from_dict({**SEED, "learning_rate": "1e-3", "rollouts": "32", "discount_factor": {"agent_0": "0.9"},
                                 "experiment": {**SEED["experiment"], "write_interval": "100"}})
    assert cfg.mappo.learning_rate == 1e-3 and cfg.mappo.rollouts == 32 and cfg.mappo.experiment.write_interval == 100
    assert cfg.mappo.discount_factor == {"agent_0": 0.9}


@pytest.mark.parametrize("bad,match", [
    ({"model": {"hidden_sizes": "64,64"}}, r"model.hidden_sizes must be a list, got '64,64'"),
    ({"model": {"hidden_sizes": [64, "x"]}}, r"model.hidden_sizes\[1\] must be an integer, got 'x'"),
    ({"seed": "zero"}, "seed must be an integer, got 'zero'"),
    ({"seed": 1.5}, "seed must be an integer, got 1.5"),
    ({"device": 0}, "device must be a string, got 0"),
    ({"env": {"scenario_kwargs": "n_agents=3"}}, r"env.scenario_kwargs must be a dict \(a JSON object\), got 'n_agents=3'"),
    ({"learning_rate_scheduler_kwargs": [1]}, r"mappo.learning_rate_scheduler_kwargs must be a dict"),
    ({"learning_rate": True}, "learning_rate must be a number, got True"),
    ({"env": {"num_envs": 1}, "rollouts": 1}, r"env.num_envs x rollouts must be >= 2 \(got 1 x 1\)"),
    ({"model": {"log_std_init": float("nan")}}, "model.log_std_init must be a finite number, got nan"),
    ({"experiment": {"keep_checkpoints": -1}}, "experiment.keep_checkpoints must be an integer >= 0, got -1"),
    ({"mappo": "x"}, "mappo must be a dict of its keys"),
])
def test_wrong_types_name_the_field_the_value_and_the_type(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict(bad)


def test_one_precedence_rule_defaults_file_flags():
    from mappo_td.config import merge_config

    file = {**SEED, "rollouts": 16, "learning_rate": 1e-4, "experiment": {**SEED["experiment"], "directory": "file_dir", "write_interval": 7}}
    flags = {"mappo": {"rollouts": 8, "learning_rate": 0.5, "experiment": {"directory": "X", "experiment_name": "Y"}}, "seed": 3}
    cfg = TrainConfig.from_dict(merge_config(file, flags))
    assert (cfg.mappo.rollouts, cfg.mappo.learning_rate, cfg.seed) == (8, 0.5, 3)  # flags win over the file
    x = cfg.mappo.experiment
    assert (x.directory, x.experiment_name, x.write_interval) == ("X", "Y", 7)  # the file wins over defaults
    assert cfg.mappo.mini_batches == 2  # defaults where neither says
    per_agent = merge_config({"discount_factor": {"agent_0": 0.9, "agent_1": 0.8}}, {"discount_factor": {"agent_0": 0.7}})
    assert per_agent["mappo"]["discount_factor"] == {"agent_0": 0.7}  # a per-agent dict is one value: replaced whole


def test_a_skrl_2x_config_maps_as_documented():
    """skrl 2.x names, mixed_precision and "auto" intervals (mappo_td/config/skrl_compat.py's table)."""
    cfg = TrainConfig.from_dict({
        "timesteps": 12_345, "rollouts": 16, "gae_lambda": 0.9, "mixed_precision": False,
        "observation_preprocessor": "RunningStandardScaler", "observation_preprocessor_kwargs": {"clip_threshold": 4.0},
        "state_preprocessor": "RunningStandardScaler", "state_preprocessor_kwargs": {"epsilon": 1e-5},
        "value_preprocessor": "RunningStandardScaler",
        "experiment": {"write_interval": "auto", "checkpoint_interval": "auto", "directory": "runs"},
    })
    m = cfg.mappo
    assert (m.state_preprocessor, m.state_preprocessor_kwargs) == ("RunningStandardScaler", {"clip_threshold": 4.0})  # observations
    assert (m.shared_state_preprocessor, m.shared_state_preprocessor_kwargs) == ("RunningStandardScaler", {"epsilon": 1e-5})  # state
    assert m.lambda_ == 0.9
    assert (m.experiment.write_interval, m.experiment.checkpoint_interval) == (123, 1234)  # skrl: timesteps / 100, / 10


def test_intervals_of_0_are_off_and_auto_resolves_as_skrl_does_to_0_for_a_short_run():
    """skrl: write_interval 0 means no TensorBoard writing (refused here before), and "auto" is int(timesteps / 100)."""
    x = TrainConfig.from_dict({"timesteps": 99, "experiment": {"write_interval": "auto", "checkpoint_interval": "auto"}}).mappo.experiment
    assert (x.write_interval, x.checkpoint_interval) == (0, 9)
    x = TrainConfig.from_dict({**SEED, "experiment": {**SEED["experiment"], "write_interval": 0, "checkpoint_interval": 0}}).mappo.experiment
    assert (x.write_interval, x.checkpoint_interval) == (0, 0)
    with pytest.raises(ValueError, match=r"experiment.write_interval must be an integer >= 0, got -5"):
        TrainConfig.from_dict({"experiment": {"write_interval": -5}})


def test_a_skrl_1x_config_keeps_its_meaning_and_auto_follows_the_final_timesteps():
    d = {"state_preprocessor": "RunningStandardScaler", "mixed_precision": False, "experiment": {"write_interval": "auto"}}
    cfg = TrainConfig.from_dict(merge_config(d, {"timesteps": 500}))  # a flag given after the file
    assert cfg.mappo.state_preprocessor == "RunningStandardScaler" and cfg.mappo.shared_state_preprocessor is None
    assert cfg.mappo.experiment.write_interval == 5


@pytest.mark.parametrize("d,needle", [
    ({"mixed_precision": True}, "mixed_precision=true"),
    ({"observation_preprocessor": None, "shared_state_preprocessor": None}, "mixes skrl 2.x"),
    ({"lambda": 0.9, "gae_lambda": 0.8}, "both 'lambda'"),
])
def test_skrl_keys_that_cannot_be_honoured_are_clear_errors(d, needle):
    with pytest.raises(ValueError, match=needle):
        TrainConfig.from_dict(d)


def test_value_loss_options_reach_the_loss():
    t = MAPPOTrainer(small_config(value_loss="huber", huber_delta=10, value_clip_form="max", clip_predicted_values=True))
    loss = t.groups[0].loss
    assert (loss.value_loss, loss.huber_delta, loss.value_clip_form, loss.clip_predicted_values) == ("huber", 10.0, "max", True)
    assert MAPPOTrainer(small_config()).groups[0].loss.value_loss == "mse"  # skrl's default is unchanged


@pytest.mark.parametrize("d,match", [
    ({"mappo": {"rolouts": 8}}, r"\['rolouts'\] in 'mappo' \(did you mean 'rollouts'\?\)"),
    ({"env": {"num_env": 8}}, r"\['num_env'\] in 'env' \(did you mean 'num_envs'\?\)"),
    ({"model": {"hiden_sizes": [8]}}, r"\['hiden_sizes'\] in 'model' \(did you mean 'hidden_sizes'\?\)"),
    ({"mappo": {"experiment": {"checkpoint_intervl": 8}}}, r"in 'experiment' \(did you mean 'checkpoint_interval'\?\)"),
    ({"seeed": 1, "timestep": 5}, r"\(did you mean 'seed' for 'seeed', 'timesteps' for 'timestep'\?\)"),
])
def test_unknown_config_keys_get_close_matches(d, match, tmp_path, capsys):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict(d)
    (tmp_path / "c.json").write_text(json.dumps(d))
    assert main(["train", "--config", str(tmp_path / "c.json"), "--no-progress", "--directory", str(tmp_path / "runs")]) == 2
    assert re.search(match, capsys.readouterr().err) and not (tmp_path / "runs").exists()
