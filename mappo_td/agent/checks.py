"""The checks every input of an agent call passes before anything is stored: names and shapes as each input is
stacked into its group's layout, then values (finite, integers within the space, legal actions...) all at once,
with one host read per call (:class:`InputCheck`)."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torchrl.data import Categorical, Composite, MultiCategorical, TensorSpec

FAULTS = ("has NaN or inf", "has a non-integer value", "has a value outside the space")
FIXES = ("fix them where they are made (nothing can learn from them)",
         "give integers, e.g. the actions act() returned (integer-valued floats are accepted)", "give values within the space")
ROLES = {"states": "observation", "next_states": "observation", "actions": "action", "log_prob": "log-probability",
         "rewards": "reward", "terminated": "done flag", "truncated": "done flag", "action_masks": "action mask",
         "infos": "action mask"}


def _tensor(x: Any, device: torch.device, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device)
    try:
        return torch.as_tensor(np.asarray(x), device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{what}: expected a tensor or array, got {type(x).__name__} ({err}).") from None


def _faults(x: torch.Tensor, spec: TensorSpec) -> torch.Tensor:
    """``[len(FAULTS), num_envs, n_agents]``: where ``x`` (``[num_envs, n_agents, *tail]``, as given) is NaN or inf,
    not an integer though ``spec`` holds integers (Discrete, MultiDiscrete, flags), outside ``spec``'s categories
    (or not 0/1 for flags and masks)."""
    flat = x.reshape(*x.shape[:2], -1)
    none = torch.zeros(flat.shape, dtype=torch.bool, device=x.device)
    if flat.dtype == torch.bool:
        return torch.stack([none, none, none]).any(-1)
    nonfinite = ~torch.isfinite(flat) if flat.is_floating_point() else none
    integral = not spec.dtype.is_floating_point
    nonint = (flat != flat.round()) & ~nonfinite if integral and flat.is_floating_point() else none
    if spec.dtype == torch.bool:
        outside = (flat != 0) & (flat != 1) & ~nonfinite
    elif isinstance(spec, MultiCategorical):
        outside = (flat < 0) | (flat >= spec.nvec.reshape(flat.shape).to(x.device))
    elif isinstance(spec, Categorical):
        outside = (flat < 0) | (flat >= spec.space.n)
    else:
        outside = none
    return torch.stack([nonfinite, nonint, outside]).any(-1)


def _allowed(spec: TensorSpec) -> str:
    if spec.dtype == torch.bool:
        return "0 or 1 (or bool)"
    if isinstance(spec, MultiCategorical):
        return f"MultiDiscrete: integers 0 <= a < nvec, nvec={spec.nvec.reshape(-1, spec.nvec.shape[-1])[0].tolist()}"
    if isinstance(spec, Categorical):
        return f"Discrete({spec.space.n}): integers 0..{spec.space.n - 1}"
    return "finite values" if spec.dtype.is_floating_point else f"integers ({spec.dtype})"


def _shown(x: torch.Tensor, most: int = 8) -> str:
    """``x``'s values as a list, the first ``most`` (flattened) where there are more."""
    if x.numel() <= most:
        return str(x.tolist() if x.ndim else x.item())
    return "[" + ", ".join(map(str, x.flatten()[:most].tolist())) + f", ... ({x.numel()} values, shape {tuple(x.shape)})]"


class _Entry(NamedTuple):
    key: str
    agents: list[str]
    sub: str  # the key path inside an agent's entry, as written in errors
    x: torch.Tensor | None  # the values as given (for "got ..."), or None
    faults: torch.Tensor  # [len(kinds), num_envs, n_agents]
    kinds: Sequence[tuple[str, str]]  # (what is wrong, how to fix it) of each fault kind
    allowed: str | None


class InputCheck:
    """The inputs of one :class:`~mappo_td.agent.MAPPO` call, by agent name, checked against the groups' specs before
    anything is stored: names and shapes (``[num_envs, *shape of one agent's entry]``; a single value also
    ``[num_envs]``) as each input is stacked, from tensor metadata; values (finite; integers within the space for
    Discrete / MultiDiscrete actions, done flags and masks 0/1, and whatever :meth:`refuse_where` adds) in
    :meth:`verify`, all at once with one host read per call. Every error names the call, the input, the agent, what
    was expected and what was given.

    Example:
        >>> check = InputCheck("record_transition", num_envs=2, device="cpu")
        >>> x = check.stack({"a_0": torch.tensor([1, 3])}, "actions", ["a_0"], Categorical(4, (2, 1)))
        >>> x.shape, check.verify()
        (torch.Size([2, 1]), None)
        >>> check.stack({"a_0": torch.tensor([[1.0], [5.0]])}, "actions", ["a_0"], Categorical(4, (2, 1))).dtype
        torch.int64
        >>> check.verify()
        Traceback (most recent call last):
        ...
        ValueError: record_transition: actions['a_0'] has a value outside the space at env(s) [1] (got 5.0); expected Discrete(4): integers 0..3: give values within the space. Nothing was stored.
    """

    def __init__(self, call: str, num_envs: int, device: torch.device | str) -> None:
        self.call, self.num_envs, self.device = call, int(num_envs), torch.device(device)
        self._entries: list[_Entry] = []

    def _label(self, key: str, agent: str, path: tuple[str, ...] = ()) -> str:
        return f"{key}[{agent!r}]" + "".join(f"[{p!r}]" for p in path)

    def _shaped(self, x: torch.Tensor, label: str, key: str, tail: tuple[int, ...]) -> torch.Tensor:
        n = self.num_envs
        accepted = [(n,), (n, 1)] if len(tail) <= 1 and math.prod(tail) == 1 else [(n, *tail)]
        if tuple(x.shape) not in accepted:
            raise ValueError(f"{self.call}: {label} has shape {tuple(x.shape)}; expected {' or '.join(map(str, accepted))} "
                             f"(num_envs={n}, then the shape of one agent's {ROLES.get(key, key)}: {tail}); give every agent's "
                             f"{ROLES.get(key, key)} in that shape. Nothing was stored.")
        return x.reshape(n, *tail)

    def stack(self, per_agent: Mapping[str, Any], key: str, agents: Sequence[str], spec: TensorSpec, path: tuple[str, ...] = (),
              *, absent: Collection[str] = (), live: torch.Tensor | None = None, hint: str = "") -> torch.Tensor:
        """``per_agent``'s entries of ``agents`` checked and stacked: ``[num_envs, n_agents, *tail]`` in ``spec``'s
        dtype (``spec``: the group's ``[num_envs, n_agents, *tail]``). Agents of ``absent`` may be missing (zeros stand
        in); where ``live`` (``[num_envs, n_agents]`` bool) is false, the values are neither checked nor kept (zeros).
        A missing agent's error ends with ``hint`` (default: every step needs every agent)."""
        missing = [a for a in agents if a not in per_agent and a not in absent]
        if missing:
            raise ValueError(f"{self.call}: {key}: no entry for agent(s) {missing}"
                             f"{hint or f'; every step needs every agent ({list(agents)})'}.")
        tail = tuple(spec.shape[2:])
        given = {a: self._shaped(_tensor(per_agent[a], self.device, self._label(key, a, path)), self._label(key, a, path), key, tail)
                 for a in agents if a in per_agent}
        dtype = next(iter(given.values())).dtype if given else spec.dtype
        zeros = torch.zeros(self.num_envs, *tail, dtype=dtype, device=self.device)
        x = torch.stack([given.get(a, zeros) for a in agents], dim=1)
        faults = _faults(x, spec)
        if live is not None:
            faults = faults & live
            x = x.masked_fill(~live.reshape(*live.shape, *[1] * len(tail)), 0)
        self._entries.append(_Entry(key, list(agents), "".join(f"[{p!r}]" for p in path), x, faults, list(zip(FAULTS, FIXES)),
                                    _allowed(spec)))
        return x.to(spec.dtype)

    def refuse_where(self, key: str, agents: Sequence[str], bad: torch.Tensor, fault: str, fix: str) -> None:
        """Refuse the call in :meth:`verify` where ``bad`` (``[num_envs, n_agents]`` bool) holds, saying that
        ``key[agent]`` ``fault`` at those envs, and ``fix``."""
        self._entries.append(_Entry(key, list(agents), "", None, bad.unsqueeze(0), [(fault, fix)], None))

    def observation(self, states: Mapping[str, Any], key: str, agents: Sequence[str], spec: TensorSpec, *,
                    absent: Collection[str] = (), live: torch.Tensor | None = None) -> dict[tuple[str, ...], torch.Tensor]:
        """Every leaf of ``agents``' observations (a Dict space's entries by key path) checked and stacked
        (``absent``, ``live``: as :meth:`stack`'s)."""
        if not isinstance(spec, Composite):
            return {(): self.stack(states, key, agents, spec, absent=absent, live=live)}
        out = {}
        for path in spec.keys(True, True):
            path = (path,) if isinstance(path, str) else tuple(path)
            out[path] = self.stack({a: self._entry(states, key, a, path) for a in agents if a in states}, key, agents, spec[path], path,
                                   absent=absent, live=live)
        return out

    def _entry(self, states: Mapping[str, Any], key: str, agent: str, path: tuple[str, ...]) -> Any:
        x = states[agent]
        for i, p in enumerate(path):
            got = f"a {type(x).__name__}" if not isinstance(x, Mapping) else f"a dict without {p!r}"
            if not isinstance(x, Mapping) or p not in x:
                raise ValueError(f"{self.call}: {self._label(key, agent, path[:i])} is {got}; its space is a Dict: give a dict "
                                 f"with every key of the space. Nothing was stored.")
            x = x[p]
        return x

    def verify(self) -> None:
        """Refuse the call if any value checked so far is wrong (one host read); the error names the first."""
        if not self._entries:
            return
        flags = torch.cat([e.faults.any(1).flatten() for e in self._entries]).tolist()  # the one host read
        if not any(flags):
            return
        i = flags.index(True)
        for e in self._entries:
            if i >= e.faults.shape[0] * len(e.agents):
                i -= e.faults.shape[0] * len(e.agents)
                continue
            kind, a = divmod(i, len(e.agents))
            envs = e.faults[kind, :, a].nonzero().flatten().tolist()
            fault, fix = e.kinds[kind]
            got = "" if e.x is None else f" (got {_shown(e.x[envs[0], a])})"
            expected = "" if e.allowed is None else f"; expected {e.allowed}"
            raise ValueError(f"{self.call}: {e.key}[{e.agents[a]!r}]{e.sub} {fault} at env(s) {envs[:8]}{got}{expected}: {fix}. "
                             "Nothing was stored.")
