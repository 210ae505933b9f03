"""Legal-action masks through the agent API: where they are read from and which wins, that no illegal action is sampled,
that the stored mask reaches the loss, PettingZoo's classic games through a small adapter, and clear errors."""

import importlib.util
import tempfile
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from mappo_td.agent import MAPPO, Memory, model_sizes
from mappo_td.models.distributions import policy_mask_key

NAMES = ["p_0", "p_1"]
N = 64  # envs
DICT = gym.spaces.Dict({"observation": gym.spaces.Box(-1, 1, (4,)), "action_mask": gym.spaces.Box(0, 1, (5,), dtype="int8")})


def make_agent(observation_space=DICT, action_space=None, num_envs=N, **kw):
    cfg = {"rollouts": 4, "learning_epochs": 2, "experiment": {"directory": tempfile.mkdtemp(), "checkpoint_interval": 0},
           **kw.pop("cfg", {})}
    return MAPPO(NAMES, observation_spaces={a: observation_space for a in NAMES},
                 action_spaces={a: action_space or gym.spaces.Discrete(5) for a in NAMES}, device="cpu", cfg=cfg, num_envs=num_envs, **kw)


def only(action: int, n: int = N, width: int = 5) -> torch.Tensor:
    """``[n, width]`` masks allowing ``action`` alone."""
    return torch.nn.functional.one_hot(torch.full((n,), action), width).to(torch.int8)


def dict_states(mask: torch.Tensor | None = None, n: int = N) -> dict:
    return {a: {"observation": torch.rand(n, 4) * 2 - 1, "action_mask": only(0, n) if mask is None else mask} for a in NAMES}


def test_precedence_explicit_then_infos_then_the_dict_entry_then_every_action():
    torch.manual_seed(0)
    agent = make_agent()
    assert agent.learner.env.observation_spec["p", "observation"].shape == (N, 2, 4)  # the mask is no observation
    assert policy_mask_key(agent.learner.groups[0].policy) == ("p", "action_mask")
    states = dict_states()  # the Dict entry allows action 0 only
    infos = {"p_0": {"action_mask": only(1)}, "p_1": {}}  # p_1's infos have no mask: its Dict entry counts
    assert all(bool((agent.act(states, 0, 9)[0][a] == 0).all()) for a in NAMES)
    actions = agent.act(states, 0, 9, infos=infos)[0]
    assert bool((actions["p_0"] == 1).all()) and bool((actions["p_1"] == 0).all())
    actions = agent.act(states, 0, 9, infos=infos, action_masks={"p_0": only(2), "p_1": only(3).bool()})[0]
    assert bool((actions["p_0"] == 2).all()) and bool((actions["p_1"] == 3).all())
    box = make_agent(observation_space=gym.spaces.Box(-1, 1, (4,)), action_masks=True)  # masks come from infos / the argument
    plain = {a: torch.zeros(N, 4) for a in NAMES}
    assert len(torch.unique(box.act(plain, 0, 9)[0]["p_0"])) == 5  # no mask given: every action legal
    assert bool((box.act(plain, 0, 9, infos={"p_0": {"action_mask": only(4)}})[0]["p_0"] == 4).all())


@pytest.mark.parametrize("space", [gym.spaces.Discrete(5), gym.spaces.MultiDiscrete([2, 3])])
def test_masked_agents_never_sample_an_illegal_action(space):
    torch.manual_seed(1)
    width = 5
    agent = make_agent(observation_space=gym.spaces.Box(-1, 1, (4,)), action_space=space, action_masks=True, num_envs=512,
                       cfg={"random_timesteps": 1})
    masks = torch.rand(512, width) < 0.5
    if isinstance(space, gym.spaces.MultiDiscrete):
        masks[:, 0] |= ~masks[:, :2].any(-1)  # at least one legal choice per dimension
        masks[:, 2] |= ~masks[:, 2:].any(-1)
    else:
        masks[:, 0] |= ~masks.any(-1)
    for t in (0, 1):  # uniform random actions (random_timesteps), then the policy's
        actions = agent.act({a: torch.rand(512, 4) for a in NAMES}, t, 9, action_masks={a: masks for a in NAMES})[0]["p_1"]
        index = actions if isinstance(space, gym.spaces.Discrete) else actions + torch.tensor([0, 2])
        assert bool(masks.gather(-1, index).all()), f"an illegal action at timestep {t}"
        assert len(torch.unique(actions.reshape(512, -1)[:, -1])) > 1


def test_the_stored_mask_reaches_the_loss():
    """The mask act used is stored with the step and the loss recomputes log-probabilities under it: an illegal action
    has log-probability -inf, and a different mask for the same data gives a different update."""
    def trained(mask_of_p1):
        torch.manual_seed(3)
        agent = make_agent(num_envs=8, memories={a: Memory(4, num_envs=8) for a in NAMES}, cfg={"entropy_loss_scale": 0.1})
        g = torch.Generator().manual_seed(0)
        for t in range(4):
            states = {a: {"observation": torch.rand(8, 4, generator=g), "action_mask": torch.ones(8, 5)} for a in NAMES}
            states["p_1"]["action_mask"] = mask_of_p1
            actions = agent.act(states, t, 4)[0]
            r = {a: torch.rand(8, 1, generator=g) for a in NAMES}
            f = {a: torch.zeros(8, 1, dtype=torch.bool) for a in NAMES}
            agent.record_transition(states, actions, r, states, f, f, {}, t, 4)
        stored = agent.memories["p_1"].get_tensor_by_name("action_mask")
        assert stored.shape == (4, 8, 5) and bool((stored == mask_of_p1.bool()).all())
        group = agent.learner.groups[0]
        td = agent.inputs.act_step(states)
        assert bool(torch.isneginf(group.policy.get_dist(td).log_prob(torch.full((8, 2), 4)))[:, 1].all()) == (not mask_of_p1[0, 4])
        agent.post_interaction(3, 4)
        return [p.detach().clone() for p in group.policy.parameters()]

    everything = trained(torch.ones(8, 5))
    for p, q in zip(trained(torch.ones(8, 5)), everything):
        assert torch.equal(p, q)
    two = trained(torch.tensor([1, 1, 0, 0, 0]).expand(8, 5))
    assert any(not torch.equal(p, q) for p, q in zip(two, everything))


def test_an_agent_with_no_legal_action_waits_and_reaches_no_loss():
    """PettingZoo's classic games give the waiting player an all-zero mask: that step is not the agent's (alive false)."""
    agent = make_agent(num_envs=2)
    waiting = torch.tensor([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]])
    td = agent.inputs.act_step({"p_0": {"observation": torch.zeros(2, 4), "action_mask": waiting},
                                "p_1": {"observation": torch.zeros(2, 4), "action_mask": torch.ones(2, 5)}})
    assert td["p", "mask"].tolist() == [[True, True], [False, True]]


def test_sizes_and_masked_spaces_of_pettingzoo_classic():
    pytest.importorskip("pettingzoo.classic.tictactoe_v3")
    from pettingzoo.classic import tictactoe_v3

    raw = tictactoe_v3.env()
    names = raw.possible_agents
    obs, act = {a: raw.observation_space(a) for a in names}, {a: raw.action_space(a) for a in names}
    assert model_sizes(obs, act)["player_1"] == {"policy": (18, 9), "critic": (36, 1)}  # the 3x3x2 board, not the mask
    agent = MAPPO(names, observation_spaces=obs, action_spaces=act, num_envs=2, cfg={"experiment": {"directory": tempfile.mkdtemp()}})
    assert agent.learner.env.observation_spec["player", "action_mask"].shape == (2, 2, 9)


def load_example():
    path = Path(__file__).parents[2] / "examples" / "turn_based_loop.py"
    spec = importlib.util.spec_from_file_location("turn_based_loop", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tictactoe_through_the_adapter_never_moves_illegally_in_200_games():
    pytest.importorskip("pettingzoo.classic.tictactoe_v3")
    example = load_example()
    out = example.main(games=200, num_envs=8, game="tictactoe_v3", seed=0)
    assert out["games"] >= 200 and out["illegal"] == 0
    assert out["forbidden"] > 1000  # occupied cells came up: the masks had something to forbid
    assert sum(out["wins"].values()) > 50  # games were won, not only drawn or lost to an illegal move
    unmasked = example.main(games=20, num_envs=8, game="tictactoe_v3", seed=0, masked=False)
    assert unmasked["illegal"] > 5  # without the mask the same loop plays occupied cells


def test_mask_errors():
    agent = make_agent(num_envs=2)
    s = dict_states(n=2)
    with pytest.raises(ValueError, match=r"act: action_masks\['p_0'\] has shape \(5,\); expected \(2, 5\) \(num_envs=2"):
        agent.act(s, 0, 9, action_masks={"p_0": torch.ones(5)})
    with pytest.raises(ValueError, match=r"act: infos\['p_1'\]\['action_mask'\] has a value outside the space at env\(s\) \[1\] "
                                         r"\(got \[2, 0, 0, 0, 0\]\); expected 0 or 1 \(or bool\)"):
        agent.act(s, 0, 9, infos={"p_1": {"action_mask": torch.tensor([[1, 0, 0, 0, 0], [2, 0, 0, 0, 0]])}})
    with pytest.raises(ValueError, match=r"act: action_masks: unknown agent name\(s\) \['p_9'\]; valid names: \['p_0', 'p_1'\]"):
        agent.act(s, 0, 9, action_masks={"p_9": only(0, 2)})
    with pytest.raises(ValueError, match=r"act: states\['p_0'\] is a Tensor; its space is a Dict"):
        agent.act({**s, "p_0": torch.zeros(2, 4)}, 0, 9)
    unmasked = make_agent(observation_space=gym.spaces.Box(-1, 1, (4,)), num_envs=2)
    with pytest.raises(ValueError, match=r"an action mask is given for agent\(s\) \['p_0'\], whose policy takes none: construct "
                                         r"MAPPO\(\.\.\., action_masks=True\)"):
        unmasked.act({a: torch.zeros(2, 4) for a in NAMES}, 0, 9, infos={"p_0": {"action_mask": only(0, 2)}})
    with pytest.raises(ValueError, match=r"observation_spaces\['p_0'\]\['action_mask'\] has shape \(5,\); the action space "
                                         r"Discrete\(7\) needs masks of shape \(7,\)"):
        make_agent(action_space=gym.spaces.Discrete(7))


def test_a_recorded_action_its_mask_forbids_is_refused():
    agent = make_agent(num_envs=2, memories={a: Memory(4, num_envs=2) for a in NAMES})
    s = dict_states(n=2)  # action 0 only
    actions = agent.act(s, 0, 9)[0]
    f = {a: torch.zeros(2, 1, dtype=torch.bool) for a in NAMES}
    r = {a: torch.zeros(2, 1) for a in NAMES}
    log_prob = {a: torch.zeros(2, 1) for a in NAMES}
    with pytest.raises(ValueError, match=r"record_transition: actions\['p_1'\] is an action its action mask forbids at env\(s\) \[1\]"):
        agent.record_transition(s, {**actions, "p_1": torch.tensor([[0], [3]])}, r, s, f, f, {}, 0, 9, log_prob=log_prob)
    assert agent.memories["p_0"].memory_index == 0  # nothing was stored
    agent.record_transition(s, {**actions, "p_1": torch.tensor([[0], [3]])}, r, s, f, f, {}, 0, 9, log_prob=log_prob,
                            action_masks={"p_1": torch.ones(2, 5)})  # replayed under another mask: legal there
    assert agent.memories["p_0"].memory_index == 1
