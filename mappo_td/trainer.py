"""The MAPPO trainer: TorchRL env + collector + replay buffer + the module set, all of SPEC §2–3.

The loop (:meth:`MAPPOTrainer.train`) reads top to bottom: collect → advantages →
epochs × minibatches → log/checkpoint. Between log intervals nothing is read back to
the host: statistics accumulate in device tensors.
"""

from __future__ import annotations

import csv
import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import InteractionType, TensorDictModuleBase, set_interaction_type
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement
from torchrl.envs import EnvBase

from mappo_td._multiagent import per_agent_tensor
from mappo_td.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mappo_td.config import TrainConfig
from mappo_td.critic import make_critic
from mappo_td.envs import group_map, make_env, resolve_device, set_simulator_rng_state, simulator_rng_state
from mappo_td.gae import MAPPOGAE
from mappo_td.loss import MAPPOLoss
from mappo_td.optim import GroupOptimizer, KLAdaptiveLR
from mappo_td.policy import make_policy, make_shared_actor_critic, observation_leaves
from mappo_td.preprocessing import RunningStandardizer

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU}
LOSS_TERMS = ("loss_objective", "loss_critic", "loss_entropy", "kl_approx", "clip_fraction", "entropy", "explained_variance")


class NonFiniteError(RuntimeError):
    """NaN or inf in rewards or observations."""


class RenderError(RuntimeError):
    """The environment cannot render frames here."""


@dataclass
class _Group:
    """Everything that belongs to one agent group."""

    name: str
    agents: list[str]
    policy: TensorDictModuleBase
    critic: TensorDictModuleBase
    loss: MAPPOLoss
    gae: MAPPOGAE
    optimizer: GroupOptimizer
    scheduler: Any
    kl_threshold: torch.Tensor | None  # None: no early stop
    separate: bool
    preprocessors: dict[str, RunningStandardizer]


class _ActingPolicy(TensorDictModuleBase):
    """The policies of every group; uniform random actions while ``step < random_timesteps``.

    Random actions are stored with their log-probability under the current policy.
    ``step`` is a host counter (the environment step), so choosing costs no sync.
    """

    def __init__(self, groups: list[_Group], action_specs: dict[str, Any], random_timesteps: int, *,
                 compile: bool = False, cudagraphs: bool = False) -> None:
        super().__init__()
        self.policies = nn.ModuleList([g.policy for g in groups])
        self.names = [g.name for g in groups]
        self.action_specs = action_specs
        self.random_timesteps = random_timesteps
        self.step = 0
        # The fast path wraps each group's policy; the step counter and the random/policy choice stay in Python.
        self._act = []
        for policy in self.policies:
            fn = torch.compile(policy) if compile else policy
            if cudagraphs:
                from tensordict.nn import CudaGraphModule

                fn = CudaGraphModule(fn, warmup=3, out_keys=list(policy.out_keys))
            self._act.append(fn)
        self.in_keys = sorted({k for g in groups for k in g.policy.in_keys}, key=str)
        self.out_keys = sorted({k for g in groups for k in g.policy.out_keys}, key=str)

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        random = self.step < self.random_timesteps
        for name, policy, act in zip(self.names, self.policies, self._act):
            if random:
                action = self.action_specs[name].rand().to(td.device)  # the spec carries the env batch dims
                dist = policy.get_dist(td)
                td.set((name, "action"), action)
                td.set((name, "action_log_prob"), dist.log_prob(action))
            else:
                td.update(act(td.select(*policy.in_keys)), keys_to_update=policy.out_keys)
        self.step += 1
        return td


@contextmanager
def _updating(standardizer: RunningStandardizer | None):
    """Let ``standardizer`` merge the statistics of what it sees inside the block (no-op for None)."""
    if standardizer is None:
        yield
        return
    standardizer.update_on_forward = True
    try:
        yield
    finally:
        standardizer.update_on_forward = False


def _scalar_or_per_agent(t: torch.Tensor) -> float | torch.Tensor:
    return float(t[0]) if bool((t == t[0]).all()) else t


class MAPPOTrainer:
    """Build and run MAPPO from a :class:`TrainConfig`.

    Example:
        >>> import tempfile
        >>> cfg = TrainConfig.from_dict({"timesteps": 32, "rollouts": 16, "env": {"num_envs": 4, "max_steps": 8},
        ...                              "model": {"hidden_sizes": [16]}, "progress": False, "device": "cpu",
        ...                              "experiment": {"directory": tempfile.mkdtemp(), "experiment_name": "doc"}})
        >>> summary = MAPPOTrainer(cfg).train()
        >>> summary["timestep"], summary["updates"]
        (32, 32)
    """

    def __init__(self, cfg: TrainConfig, env: EnvBase | None = None) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.env = env if env is not None else make_env(cfg.env, self.device, cfg.seed)
        self.group_map = group_map(self.env)
        self._check_agent_names()
        self.groups = [self._build_group(g, agents) for g, agents in self.group_map.items()]
        self.acting = _ActingPolicy(self.groups, {g.name: self.env.full_action_spec[g.name, "action"] for g in self.groups},
                                    cfg.mappo.random_timesteps, compile=cfg.compile, cudagraphs=cfg.cudagraphs)
        self._check_fast_path()
        self.collector = Collector(
            self.env, self.acting, frames_per_batch=cfg.frames_per_iteration, total_frames=-1, device=self.device,
            auto_register_policy_transforms=False, trust_policy=True,
        )
        self.buffer = ReplayBuffer(
            storage=LazyTensorStorage(cfg.frames_per_iteration, device=self.device),
            sampler=SamplerWithoutReplacement(drop_last=True), batch_size=cfg.minibatch_size,
        )
        self.finite_keys = self._finite_keys()
        self._reward_keys = [k for k in self.finite_keys if k[-1] == "reward"]
        self._update_keys = self._loss_keys()  # what the minibatches carry
        self.timestep = 0  # environment steps taken (each advances every parallel env)
        self.iteration = 0
        self.updates = 0  # gradient steps
        self._stats = self._zero_stats()
        self._nonfinite = torch.zeros(len(self.finite_keys), dtype=torch.bool, device=self.device)
        self.run_dir: Path | None = None
        # KL early stop: one mask per group (per agent with separate parameters), reset in place each epoch
        self._active = {g.name: torch.ones_like(g.optimizer.lr, dtype=torch.bool) for g in self.groups if g.kl_threshold is not None}
        self._step_fn = self._make_step_fn()

    # ------------------------------------------------------------------ construction
    def _check_agent_names(self) -> None:
        valid = [a for agents in self.group_map.values() for a in agents] + list(self.group_map)
        m = self.cfg.mappo
        for name in ("discount_factor", "lambda_", "learning_rate", "grad_norm_clip", "ratio_clip", "value_clip",
                     "entropy_loss_scale", "value_loss_scale", "kl_threshold"):
            value = getattr(m, name)
            if isinstance(value, dict):
                unknown = [k for k in value if k not in valid]
                if unknown:
                    raise ValueError(f"{name.rstrip('_')}: unknown agent/group name(s) {unknown}; valid names: {valid}.")

    def _per_agent(self, name: str, group: str, agents: list[str]) -> torch.Tensor:
        value = getattr(self.cfg.mappo, name)
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k in agents or k == group}
            if not value:
                raise ValueError(f"{name.rstrip('_')}: the dict gives no value for group {group!r} (agents {agents}).")
        return per_agent_tensor(value, agents, name=name.rstrip("_"), group=group, device=self.device).squeeze(-1)

    def _preprocessor(self, name: str, size: int) -> RunningStandardizer | None:
        kind = getattr(self.cfg.mappo, name)
        if kind is None:
            return None
        return RunningStandardizer(size, **getattr(self.cfg.mappo, f"{name}_kwargs")).to(self.device)

    def _build_group(self, name: str, agents: list[str]) -> _Group:
        m, mc = self.cfg.mappo, self.cfg.model
        obs_spec, act_spec = self.env.observation_spec, self.env.full_action_spec
        n = len(agents)
        separate = not mc.share_params and n > 1
        n_obs = sum(int(torch.Size(s).numel()) for _, s in observation_leaves(obs_spec[name], "observation", len(obs_spec[name].shape)))
        pre = {"state_preprocessor": self._preprocessor("state_preprocessor", n_obs)}
        common = dict(share_params=mc.share_params, hidden_sizes=list(mc.hidden_sizes), activation=ACTIVATIONS[mc.activation])
        head = dict(distribution=mc.distribution, tanh_squash=mc.tanh_squash, log_std_init=mc.log_std_init)
        if mc.shared_model:
            op = make_shared_actor_critic(obs_spec, act_spec, name, input_preprocessor=pre["state_preprocessor"], **common, **head)
            policy, critic = op.get_policy_operator(), op.get_value_operator()
        else:
            policy = make_policy(obs_spec, act_spec, name, state_dependent_std=mc.state_dependent_std,
                                 input_preprocessor=pre["state_preprocessor"], **common, **head)
            critic = make_critic(obs_spec, name, centralized=mc.centralized_critic, **common)
            n_critic = sum(int(obs_spec[k].shape[len(obs_spec.shape):].numel()) for k in critic.in_keys) if mc.centralized_critic else n_obs
            pre["shared_state_preprocessor"] = self._preprocessor("shared_state_preprocessor", n_critic)
            if pre["shared_state_preprocessor"] is not None:
                critic = make_critic(obs_spec, name, centralized=mc.centralized_critic,
                                     input_preprocessor=pre["shared_state_preprocessor"], **common)
        policy, critic = policy.to(self.device), critic.to(self.device)
        pre["value_preprocessor"] = self._preprocessor("value_preprocessor", 1)
        pre = {k: v for k, v in pre.items() if v is not None}

        coef = {k: _scalar_or_per_agent(self._per_agent(k, name, agents)) for k in
                ("ratio_clip", "value_clip", "entropy_loss_scale", "value_loss_scale")}
        loss = MAPPOLoss(policy, critic, group=name, clip_predicted_values=m.clip_predicted_values, per_agent=separate, **coef).to(self.device)
        gae = MAPPOGAE(name, gamma=self._per_agent("discount_factor", name, agents).cpu(), lmbda=self._per_agent("lambda_", name, agents).cpu(),
                       agents=agents, time_limit_bootstrap=m.time_limit_bootstrap).to(self.device)

        lr, clip, kl = (self._per_agent(k, name, agents) for k in ("learning_rate", "grad_norm_clip", "kl_threshold"))
        if not separate:
            for label, t in (("learning_rate", lr), ("grad_norm_clip", clip), ("kl_threshold", kl)):
                if not bool((t == t[0]).all()):
                    raise ValueError(f"{label} differs between agents {agents} of group {name!r}, which share parameters "
                                     "(one optimizer); give them one value, or set model.share_params=false.")
            lr, clip, kl = lr[0].clone(), clip[0].clone(), kl[0].clone()
        params = list({id(p): p for p in [*policy.parameters(), *critic.parameters()]}.values())
        optimizer = GroupOptimizer(params, lr, clip, per_agent=separate)
        return _Group(name, agents, policy, critic, loss, gae, optimizer, self._make_scheduler(optimizer),
                      kl if bool((kl > 0).any()) else None, separate, pre)

    def _check_fast_path(self) -> None:
        cfg = self.cfg
        if cfg.cudagraphs and self.device.type != "cuda":
            raise ValueError(f"cudagraphs=True needs a CUDA device, the run is on {self.device}; use --no-cudagraphs (or --compile on CPU).")
        if (cfg.compile or cfg.cudagraphs) and any(g.scheduler is not None and not isinstance(g.scheduler, KLAdaptiveLR) for g in self.groups):
            raise ValueError("compile/cudagraphs keep the learning rate on the device: use learning_rate_scheduler='KLAdaptiveLR' "
                             "(a device tensor) or run without --compile/--cudagraphs to use a torch.optim.lr_scheduler.")

    def _make_step_fn(self):
        """The gradient step, as is (plain), ``torch.compile``d, or captured with tensordict's CudaGraphModule."""
        if not (self.cfg.compile or self.cfg.cudagraphs):
            return self._step
        fn = torch.compile(self._step) if self.cfg.compile else self._step
        if not self.cfg.cudagraphs:
            return fn
        from tensordict.nn import CudaGraphModule

        graphs = {}

        def step(g: _Group, batch: TensorDictBase, active: torch.Tensor | None) -> None:
            key = (g.name, active is None)
            if key not in graphs:
                graphs[key] = CudaGraphModule(lambda b, a=None, _g=g: fn(_g, b, a), warmup=3)
            graphs[key](batch) if active is None else graphs[key](batch, active)

        return step

    def _make_scheduler(self, optimizer: GroupOptimizer) -> Any:
        sched, kwargs = self.cfg.mappo.learning_rate_scheduler, self.cfg.mappo.learning_rate_scheduler_kwargs
        if sched is None:
            return None
        name = sched if isinstance(sched, str) else sched.__name__
        if name == "KLAdaptiveLR":
            return KLAdaptiveLR(optimizer.lr, **kwargs)
        cls = getattr(torch.optim.lr_scheduler, name, None) if isinstance(sched, str) else sched
        if cls is None:
            raise ValueError(f"unknown learning_rate_scheduler {sched!r}; use 'KLAdaptiveLR' or a torch.optim.lr_scheduler class name.")
        return cls(optimizer.adam, **kwargs)  # scales learning_rate (see GroupOptimizer.effective_lr)

    def _loss_keys(self) -> list:
        keys: list = []
        for g in self.groups:
            k = g.loss.tensor_keys
            keys += [*g.policy.in_keys, *g.critic.in_keys, k.action, k.sample_log_prob, k.advantage, k.value_target, k.value]
        keys += self._reward_keys  # the (shaped) rewards, for inspection
        return list(dict.fromkeys(keys))

    def _finite_keys(self) -> list[tuple[str, ...]]:
        keys: list[tuple[str, ...]] = []
        spec = self.env.observation_spec
        for g in self.group_map:
            keys += [("next", g, *k) for k, _ in observation_leaves(spec[g], "observation", len(spec[g].shape))]
            keys.append(("next", g, "reward") if (g, "reward") in self.env.full_reward_spec.keys(True) else ("next", "reward"))
        if "state" in spec.keys():
            keys.append(("next", "state"))
        return list(dict.fromkeys(keys))

    def _zero_stats(self) -> dict[str, torch.Tensor]:
        z = {f"{g}/terms": torch.zeros(len(LOSS_TERMS), device=self.device) for g in self.group_map}
        z.update({k: torch.zeros((), device=self.device) for k in ("updates", "ep_return", "ep_length", "episodes")})
        z.update({f"{g}/ep_return": torch.zeros((), device=self.device) for g in self.group_map})
        return z

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict[str, Any]:
        """Run until ``cfg.timesteps``; returns a summary (last logged row, counters, paths)."""
        cfg, m = self.cfg, self.cfg.mappo
        self._open_run()
        bar = self._progress()
        last_row: dict[str, Any] = {}
        t_log, frames_log = time.perf_counter(), 0
        next_write = (self.timestep // m.experiment.write_interval + 1) * m.experiment.write_interval
        interval = m.experiment.checkpoint_interval
        next_ckpt = (self.timestep // interval + 1) * interval if interval else math.inf
        while self.timestep < cfg.timesteps:
            # 1. collect `rollouts` steps from every env with the current stochastic policy
            self.acting.step = self.timestep
            with torch.no_grad():
                data = self.collector.rollout().copy()  # [num_envs, rollouts]; a shallow copy: the collector reuses its buffer
            self._shape_rewards(data)
            self._track(data)
            self.timestep += m.rollouts
            self.iteration += 1
            frames_log += data.numel()

            # 2-3. advantages, then epochs x minibatches (not before learning_starts)
            if self.timestep - 1 >= m.learning_starts:
                self._advantages(data)
                self._update(data)

            # 4. log / checkpoint at intervals (the only host reads)
            if self.timestep >= next_write or self.timestep >= cfg.timesteps:
                self._raise_if_nonfinite()
                fps = frames_log / (time.perf_counter() - t_log)
                last_row = self._write(fps)
                t_log, frames_log = time.perf_counter(), 0
                next_write = (self.timestep // m.experiment.write_interval + 1) * m.experiment.write_interval
                if bar is not None:
                    r = last_row["reward/episode_mean"]
                    bar.set_postfix(reward=f"{r:.3f}" if math.isfinite(r) else "n/a (no episode ended yet)", fps=f"{fps:,.0f}", refresh=False)
            if bar is not None:
                bar.update(data.numel())
            if self.timestep >= next_ckpt and self.timestep < cfg.timesteps:
                self.save()
                next_ckpt = (self.timestep // interval + 1) * interval
                self.collector.reset()  # a resumed run restarts episodes here too: resume is exact
        path = self.save()
        if bar is not None:
            bar.close()
        self._close_run()
        return {**last_row, "timestep": self.timestep, "iteration": self.iteration, "updates": self.updates,
                "checkpoint": str(path), "run_dir": str(self.run_dir)}

    def _shape_rewards(self, data: TensorDictBase) -> None:
        shaper = self.cfg.mappo.rewards_shaper
        if shaper is None:
            return
        for k in self._reward_keys:
            reward = data.get(k)
            shaped = [shaper(reward[:, t], self.timestep + t, self.cfg.timesteps) for t in range(reward.shape[1])]
            data.set(k, torch.stack([torch.as_tensor(s, dtype=reward.dtype, device=reward.device).expand_as(reward[:, 0]) for s in shaped], 1))

    def _track(self, data: TensorDictBase) -> None:
        """Accumulate non-finite flags and finished-episode statistics on the device."""
        self._nonfinite |= torch.stack([~torch.isfinite(data.get(k)).all() for k in self.finite_keys])
        done = data.get(("next", "done")).squeeze(-1).float()  # [N, T]
        per_group, team = self._episode_returns(data)
        for g, ret in per_group.items():
            self._stats[f"{g}/ep_return"] += (ret * done).sum()
        self._stats["ep_return"] += (team * done).sum()
        self._stats["ep_length"] += (data.get(("next", "step_count")).squeeze(-1).float() * done).sum()
        self._stats["episodes"] += done.sum()

    def _episode_returns(self, td: TensorDictBase) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Episode returns so far (TorchRL's RewardSum), ``[N, T]``: per group (mean over its agents), and the
        team's (mean over every agent of every group)."""
        per_group = {g: td.get(("next", g, "episode_reward")).mean(dim=(-1, -2)) for g in self.group_map}
        total = sum(per_group[g] * len(agents) for g, agents in self.group_map.items())
        return per_group, total / sum(len(agents) for agents in self.group_map.values())

    @torch.no_grad()
    def _advantages(self, data: TensorDictBase) -> None:
        """Values (real scale) of s and s', GAE, then value preprocessing of values and returns (skrl order)."""
        nxt = data.get("next")
        for g in self.groups:
            pre = g.preprocessors
            # Each standardizer merges this batch once, in its own pass (with a shared model the critic's trunk
            # holds the state preprocessor too: the critic pass must not count the observations again).
            if "state_preprocessor" in pre:
                with _updating(pre["state_preprocessor"]):
                    g.policy.get_dist(data.select(*g.policy.in_keys, strict=False))
            with _updating(pre.get("shared_state_preprocessor")):
                g.critic(data)
            g.critic(nxt)
            vp = pre.get("value_preprocessor")
            if vp is not None:
                for td in (data, nxt):
                    td.set((g.name, "state_value"), vp(td.get((g.name, "state_value")), inverse=True))
            g.gae(data)
            if vp is not None:
                data.set((g.name, "state_value"), vp(data.get((g.name, "state_value")), train=True))
                data.set((g.name, "value_target"), vp(data.get((g.name, "value_target")), train=True))

    def _update(self, data: TensorDictBase) -> None:
        m = self.cfg.mappo
        self.buffer.extend(data.select(*self._update_keys).reshape(-1))
        for _ in range(m.learning_epochs):
            for mask in self._active.values():
                mask.fill_(True)  # in place: a captured step holds on to this very tensor
            for _ in range(m.mini_batches):
                batch = self.buffer.sample()
                for g in self.groups:
                    self._step_fn(g, batch, self._active.get(g.name))
                self.updates += 1
                self._stats["updates"] += 1

    def _step(self, g: _Group, batch: TensorDictBase, active: torch.Tensor | None) -> None:
        """One gradient step of one group; `active` (KL early stop) masks the step without a host sync."""
        out = g.loss(batch)
        total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
        if active is not None:
            active &= ~(out["kl_approx"].detach() > g.kl_threshold)  # stop the rest of this epoch (skrl)
            total = total * active
        total = total.sum() if g.separate else total
        g.optimizer.zero_grad()
        total.backward()
        g.optimizer.step(active)
        if isinstance(g.scheduler, KLAdaptiveLR):
            g.scheduler.step(out["kl_approx"].detach(), active)
        elif g.scheduler is not None:
            g.scheduler.step()
        self._stats[f"{g.name}/terms"] += torch.stack([out[t].detach().mean() for t in LOSS_TERMS])  # one add, read at log time

    # ------------------------------------------------------------------ outputs
    def _open_run(self) -> None:
        if self.run_dir is not None:
            return
        x = self.cfg.mappo.experiment
        name = x.experiment_name or datetime.now().strftime("%y-%m-%d_%H-%M-%S-%f_MAPPO")
        self.run_dir = Path(x.directory or "runs") / name
        (self.run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.cfg.to_dict(), indent=2, default=str)
        (self.run_dir / "config.json").write_text(text)
        try:
            import yaml

            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(json.loads(text), sort_keys=False))
        except ImportError:
            pass
        from torchrl.record.loggers import TensorboardLogger

        self._tb = TensorboardLogger(exp_name="tensorboard", log_dir=str(self.run_dir))
        self._wandb = None
        if x.wandb:
            try:
                import wandb  # noqa: F401
            except ImportError:
                raise ImportError("experiment.wandb=True needs the wandb package: pip install wandb") from None
            from torchrl.record.loggers import WandbLogger

            self._wandb = WandbLogger(exp_name=name, save_dir=str(self.run_dir), **x.wandb_kwargs)
        self._csv_path = self.run_dir / "progress.csv"

    def _close_run(self) -> None:
        self._tb.experiment.flush()

    def _progress(self):
        if not self.cfg.progress:
            return None
        from tqdm import tqdm

        frames = self.cfg.timesteps * self.cfg.env.num_envs
        return tqdm(total=frames, initial=min(self.timestep * self.cfg.env.num_envs, frames), unit="frames", unit_scale=True,
                    desc=f"MAPPO {self.cfg.env.scenario} [{self.device}]", dynamic_ncols=True)

    def _write(self, fps: float) -> dict[str, Any]:
        s = {k: float(v) for k, v in self._stats.items() if v.ndim == 0}  # host reads, once per interval
        for g in self.group_map:
            s.update({f"{g}/{t}": v for t, v in zip(LOSS_TERMS, self._stats[f"{g}/terms"].tolist())})
        n_up, n_ep = max(s["updates"], 1.0), s["episodes"]
        row: dict[str, Any] = {"timestep": self.timestep, "frames": self.timestep * self.cfg.env.num_envs,
                               "iteration": self.iteration, "frames_per_s": fps}
        row["reward/episode_mean"] = s["ep_return"] / n_ep if n_ep else float("nan")
        row["episode/length_mean"] = s["ep_length"] / n_ep if n_ep else float("nan")
        row["episode/count"] = n_ep
        for g in self.groups:
            if len(self.groups) > 1:
                row[f"reward/{g.name}/episode_mean"] = s[f"{g.name}/ep_return"] / n_ep if n_ep else float("nan")
            for t in LOSS_TERMS:
                row[f"{g.name}/{t}"] = s[f"{g.name}/{t}"] / n_up if s["updates"] else float("nan")
            row[f"{g.name}/learning_rate"] = float(g.optimizer.effective_lr().float().mean())
        for k, v in row.items():
            if k not in ("timestep",) and isinstance(v, float) and math.isfinite(v):
                self._tb.log_scalar(k, v, step=self.timestep)
                if self._wandb is not None:
                    self._wandb.log_scalar(k, v, step=self.timestep)
        new = not self._csv_path.exists()
        with self._csv_path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        for v in self._stats.values():
            v.zero_()  # in place: a captured step keeps writing to these tensors
        return row

    def _raise_if_nonfinite(self) -> None:
        if bool(self._nonfinite.any()):
            bad = [k for k, flag in zip(self.finite_keys, self._nonfinite.tolist()) if flag]
            raise NonFiniteError(
                f"NaN or inf in {bad} collected before timestep {self.timestep}; the run stopped and the last good checkpoint "
                "was kept. Check the environment / rewards_shaper, or normalize inputs (state_preprocessor)."
            )

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: models, optimizers, schedules, preprocessors, RNG, counters."""
        state: dict[str, Any] = {"models": {}, "optimizers": {}, "schedulers": {}, "preprocessors": {}}
        for g in self.groups:
            state["models"][f"{g.name}/policy"] = g.policy.state_dict()
            state["models"][f"{g.name}/critic"] = g.critic.state_dict()
            state["optimizers"][g.name] = g.optimizer.state_dict()
            state["schedulers"][g.name] = g.scheduler.state_dict() if g.scheduler is not None else {}
            for k, p in g.preprocessors.items():
                state["preprocessors"][f"{g.name}/{k}"] = p.state_dict()
        state["sampler"] = self.buffer.sampler.state_dict()  # its next permutation is already drawn
        state["rng"] = {"torch": torch.get_rng_state(), "simulator": simulator_rng_state() if self.cfg.env.backend == "vmas" else {}}
        if torch.cuda.is_available():
            state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
        state["counters"] = {"timestep": self.timestep, "iteration": self.iteration, "updates": self.updates}
        state["config"] = json.dumps(self.cfg.to_dict(), default=str)
        state["group_map"] = json.dumps(self.group_map)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; refuses one made for other groups or model shapes."""
        where = state.get("path", "checkpoint")
        if json.loads(state["group_map"]) != self.group_map:
            raise CheckpointError(f"{where} was made for agent groups {state['group_map']}, this environment has {self.group_map}.")
        try:
            for g in self.groups:
                g.policy.load_state_dict(state["models"][f"{g.name}/policy"])
                g.critic.load_state_dict(state["models"][f"{g.name}/critic"])
                g.optimizer.load_state_dict(state["optimizers"][g.name])
                if g.scheduler is not None:
                    g.scheduler.load_state_dict(state["schedulers"][g.name])
                for k, p in g.preprocessors.items():
                    p.load_state_dict(state["preprocessors"][f"{g.name}/{k}"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(f"{where} does not match this configuration's models ({type(err).__name__}: "
                                  f"{str(err).splitlines()[0][:300]}); resume with the configuration it was trained with.") from None
        self.buffer.sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["rng"]["torch"])
        set_simulator_rng_state(state["rng"].get("simulator", {}))
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        c = state["counters"]
        self.timestep, self.iteration, self.updates = int(c["timestep"]), int(c["iteration"]), int(c["updates"])
        self.collector.reset()  # same point as the uninterrupted run (see train)

    def save(self, path: str | Path | None = None) -> Path:
        """Write a checkpoint (default: ``<run>/checkpoints/agent_<timestep>.pt``), atomically."""
        self._raise_if_nonfinite()  # never overwrite a good checkpoint with a poisoned one
        if path is None:
            self._open_run()
            path = self.run_dir / "checkpoints" / f"agent_{self.timestep}.pt"
        return save_checkpoint(self.state_dict(), path, store_separately=self.cfg.mappo.experiment.store_separately)

    @classmethod
    def from_checkpoint(cls, path: str | Path, overrides: dict[str, Any] | None = None, env: EnvBase | None = None) -> MAPPOTrainer:
        """Rebuild the trainer saved at ``path`` (a file or a checkpoints folder) and restore its state.

        ``overrides`` (a nested config dict) can extend the run, e.g. ``{"timesteps": 10_000}``; the run
        continues in the same experiment folder.
        """
        state = load_checkpoint(path)
        d = json.loads(state["config"])
        for k, v in (overrides or {}).items():
            if isinstance(v, dict) and isinstance(d.get(k), dict):
                d[k].update(v)
            else:
                d[k] = v
        trainer = cls(TrainConfig.from_dict(d), env=env)
        trainer.load_state_dict(state)
        trainer.run_dir = Path(state["path"]).parent.parent
        trainer._open_run_existing()
        return trainer

    def _open_run_existing(self) -> None:
        run_dir, self.run_dir = self.run_dir, None
        x = self.cfg.mappo.experiment
        x.directory, x.experiment_name = str(run_dir.parent), run_dir.name
        self._open_run()

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, episodes: int = 10, render: str | None = None) -> dict[str, float]:
        """Run ``episodes`` episodes with the deterministic policy; mean episode return (mean over agents)."""
        n = min(episodes, self.cfg.env.num_envs)
        env = make_env(self.cfg.env, self.device, self.cfg.seed + 1, num_envs=n)
        returns: list[torch.Tensor] = []
        frames = []
        def grab(e: EnvBase, _: TensorDictBase) -> None:
            try:
                frames.append(e.render(mode="rgb_array"))
            except Exception as err:  # no display, no renderer for this scenario ...
                raise RenderError(f"{self.cfg.env.scenario} cannot render headless here ({type(err).__name__}: {err}); "
                                  "evaluate without --render.") from None

        with set_interaction_type(InteractionType.DETERMINISTIC):
            while sum(len(r) for r in returns) < episodes:
                td = env.rollout(self.cfg.env.max_steps, self._eval_policy(), break_when_any_done=False,
                                 callback=grab if render and not frames else None)
                done = td.get(("next", "done")).squeeze(-1)
                first = done.long().cumsum(-1).eq(1) & done  # the first episode end of each env
                returns.append(self._episode_returns(td)[1][first])
        ret = torch.cat(returns)[:episodes]
        if render:
            _write_animation(frames, render)
        return {"episodes": float(len(ret)), "return_mean": float(ret.mean()), "return_std": float(ret.std()) if len(ret) > 1 else 0.0}

    def _eval_policy(self) -> TensorDictModuleBase:
        from tensordict.nn import TensorDictSequential

        return TensorDictSequential(*[g.policy for g in self.groups])


def _write_animation(frames: list, path: str) -> None:
    if not frames or not hasattr(frames[0], "shape"):
        raise RenderError("the environment rendered no frames; this scenario cannot render headless here.")
    try:
        from PIL import Image
    except ImportError:
        raise RenderError("rendering to a GIF needs Pillow: pip install pillow") from None
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=50, loop=0)
