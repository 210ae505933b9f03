"""The hidden states the agent keeps for recurrent models (``model.body="gru"``): one set per env, carried from step
to step exactly as the trainer's collector carries them (TorchRL's ``InitTracker`` and ``TensorDictPrimer``).

=================================  =========================================  ==============================================
entry (the trainer's keys)         shape                                      meaning
=================================  =========================================  ==============================================
``"is_init"``                      ``[num_envs, 1]`` bool                     the env's episode starts at this step: the
                                                                              networks restart from zeros
``(group, "rnn_state")``           ``[num_envs, n_agents, layers, H]``        the policy's GRU state before the step
``(group, "rnn_state_critic")``    ``[num_envs, n_agents, layers, H]``        the critic's (centralized with shared
                                                                              parameters: one team state, a copy per agent)
=================================  =========================================  ==============================================

:meth:`~mappo_td.agent.MAPPO.act` steps the policy and the critic from them; :meth:`~mappo_td.agent.MAPPO.record_transition`
stores them with the step (the states it started from, and under ``"next"`` the states after it, with ``"is_init"``
False there, as in the trainer's rollouts) and advances them: the states after the step, reset to zeros, with
``is_init`` True, for every env whose episode ended (every agent ``terminated | truncated``). They advance only
there (skrl's order), so every ``act`` of a recurrent agent is followed by the ``record_transition`` of its step, in
an evaluation loop too (two ``act`` in a row warn, once: the second started from the same states).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from mappo_td.models.recurrent import IS_INIT, recurrent_states

ACT_TWICE = ("act() was called again without record_transition(): a recurrent agent's (model.body='gru') hidden states "
             "advance only in record_transition, so this act started from the same states as the last one. Call "
             "record_transition after every act, in an evaluation loop too (without post_interaction nothing is trained). "
             "Said once.")


class HiddenStates:
    """Each env's hidden states for ``modules`` (the groups' policies and critics); nothing to keep, and every method a
    no-op, when none of them is recurrent.

    Example:
        >>> from mappo_td.models.recurrent import GRUBody, gru_module
        >>> policy = gru_module(GRUBody(4, 2, 3, hidden_size=8), ("agents", "observation"), ("agents", "logits"),
        ...                     ("agents", "rnn_state"))
        >>> h = HiddenStates([policy], num_envs=5)
        >>> h.state["agents", "rnn_state"].shape, bool(h.state["is_init"].all())
        (torch.Size([5, 3, 1, 8]), True)
        >>> with torch.no_grad():  # as act() runs it
        ...     acted = policy(h.inputs(TensorDict({("agents", "observation"): torch.ones(5, 3, 4)}, [5])))
        >>> step, nxt = TensorDict({}, [5]), TensorDict({}, [5])
        >>> ended = torch.tensor([[True], [False], [False], [False], [False]])
        >>> h.record(acted, step, nxt, ended)
        >>> bool(step["is_init"].all()), h.state["is_init"].flatten().tolist()
        (True, [True, False, False, False, False])
        >>> float(h.state["agents", "rnn_state"][0].abs().sum()), torch.equal(h.state["agents", "rnn_state"][1:], nxt["agents", "rnn_state"][1:])
        (0.0, True)
    """

    def __init__(self, modules: Sequence[nn.Module], num_envs: int, device: torch.device | str = "cpu") -> None:
        self.shapes = recurrent_states(*modules)  # {state key: per-env shape}
        self.num_envs, self.device = int(num_envs), torch.device(device)
        self.acted = False  # act() gave the states of the step record_transition stores next
        self.warned = False  # ACT_TWICE is said once
        self.reset()

    @property
    def keys(self) -> list:
        """``"is_init"`` and every state key (empty without recurrent models)."""
        return [IS_INIT, *self.shapes] if self.shapes else []

    def reset(self) -> None:
        """Every env starts a new episode: states zero, ``is_init`` True (after :meth:`~mappo_td.agent.MAPPO.load`)."""
        n = self.num_envs
        state = {k: torch.zeros(n, *s, device=self.device) for k, s in self.shapes.items()}
        self.state = TensorDict({IS_INIT: torch.ones(n, 1, dtype=torch.bool, device=self.device), **state} if state else {},
                                batch_size=[n], device=self.device)
        self.acted = False

    def inputs(self, td: TensorDictBase) -> TensorDictBase:
        """``td`` (one step's inputs, ``[num_envs]``) with ``"is_init"`` and the states to act from."""
        if self.shapes:
            if self.acted and not self.warned:
                self.warned = True
                warnings.warn(ACT_TWICE, UserWarning, stacklevel=3)
            td.update(self.state.clone())
            self.acted = True
        return td

    def check(self, acted: TensorDictBase | None) -> None:
        """Refuse to record a step of a recurrent model that :meth:`inputs` (``act``) did not start."""
        if self.shapes and (acted is None or not self.acted):
            raise RuntimeError("with a recurrent model (model.body='gru') every record_transition needs an act() on its states "
                               "first: the hidden states stored with the step, and carried to the next one, come from act.")

    def record(self, acted: TensorDictBase | None, step: TensorDictBase, nxt: TensorDictBase, ended: torch.Tensor) -> None:
        """Store into ``step`` the states ``acted`` (the last act's TensorDict) started from and into ``nxt`` (its
        ``"next"``) those after it; then advance to the latter, zeros where ``ended`` (``[num_envs, 1]``)."""
        if not self.shapes:
            return
        self.check(acted)
        step.update(acted.select(*self.keys))
        nxt.set(IS_INIT, torch.zeros_like(ended, dtype=torch.bool))
        after = {}
        for k, shape in self.shapes.items():
            h = acted.get(("next", *k))
            nxt.set(k, h)
            after[k] = h * ~ended.view(self.num_envs, *[1] * len(shape))
        self.state = TensorDict({IS_INIT: ended.clone().bool(), **after}, batch_size=[self.num_envs], device=self.device)
        self.acted = False
