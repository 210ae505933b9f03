import dataclasses
import math

import pytest
import torch

from mappo_td.config import MAPPOConfig, TrainConfig
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
    assert typed == SEED


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
    ({"learing_rate": 1e-3}, r"unknown config key\(s\) \['learing_rate'\]; valid top-level keys"),
    ({"experiment": {"write_intervall": 5}}, r"unknown key\(s\) \['write_intervall'\] in 'experiment'"),
    ({"model": {"shared_model": True}}, "shared_model needs model.centralized_critic=false"),
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
