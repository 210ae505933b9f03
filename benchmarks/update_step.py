"""Time per minibatch update: mappo_td's loss + optimizer step vs TorchRL's MAPPOLoss / ClipPPOLoss and a
bare-PyTorch floor doing the same work (same MLP shapes, forward + backward + grad clip + Adam, same batch).

The batch is one real rollout of VMAS navigation (3 agents, 60 envs x 100 steps = 6,000 frames), cut into
minibatches of 400 frames. Each variant runs the same sequence of minibatches; we report the median over
repeats of the mean time per step, and each variant's ratio to the bare floor.

    python benchmarks/update_step.py --hidden 256 256
    python benchmarks/update_step.py --hidden 64 64 --compile
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time

import torch
from _common import device_name, median, versions
from torch import nn

from mappo_td import MAPPOTrainer, TrainConfig, compute_advantages, update_step
from mappo_td.train import minibatches


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_trainer(args: argparse.Namespace, compile_: bool = False) -> MAPPOTrainer:
    frames = args.n_envs * args.steps
    cfg = TrainConfig.from_dict({
        "rollouts": args.steps, "learning_epochs": 1, "mini_batches": frames // args.minibatch_size, "lambda": 0.9,
        "learning_rate": 5e-5, "grad_norm_clip": 5.0, "timesteps": args.steps, "device": args.device, "progress": False,
        "fast": "compile" if compile_ else "off", "env": {"num_envs": args.n_envs, "max_steps": 100},
        "model": {"hidden_sizes": args.hidden, "state_dependent_std": True},
        "experiment": {"directory": tempfile.mkdtemp(), "checkpoint_interval": 0},
    })
    return MAPPOTrainer(cfg)


def batches_of(trainer: MAPPOTrainer, n: int) -> list:
    """One epoch of ``n`` minibatches of a real rollout, with advantages (what the trainer's update sees)."""
    data = trainer.collect()
    for g in trainer.groups:
        compute_advantages(g, data)
    return list(minibatches(data.select(*trainer.learner.update_keys).reshape(-1), n))


def time_steps(step, batches: list, device: torch.device, repeats: int, warmup: int) -> list[float]:
    for b in batches[:warmup]:
        step(b)
    out = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        for b in batches:
            step(b)
        sync(device)
        out.append((time.perf_counter() - t0) / len(batches) * 1e3)
    return out


def torchrl_step(trainer: MAPPOTrainer, cls_name: str):
    """TorchRL's own loss on mappo_td's networks, with torch Adam and clip_grad_norm_ (the composing user's loop)."""
    from torchrl.objectives import ClipPPOLoss
    from torchrl.objectives.multiagent import MAPPOLoss

    g = trainer.groups[0]
    cls = {"MAPPOLoss": MAPPOLoss, "ClipPPOLoss": ClipPPOLoss}[cls_name]
    loss = cls(g.policy, g.critic, clip_epsilon=0.2, entropy_coeff=0.0, critic_coeff=1.0, loss_critic_type="l2", normalize_advantage=False)
    loss.set_keys(action=("agents", "action"), sample_log_prob=("agents", "action_log_prob"), value=("agents", "state_value"),
                  advantage=("agents", "advantage"), value_target=("agents", "value_target"))
    params = list(loss.parameters())
    opt = torch.optim.Adam(params, lr=5e-5)

    def step(batch):
        out = loss(batch)
        total = out["loss_objective"] + out["loss_critic"] + out.get("loss_entropy", 0.0)
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()

    return step


class BareFloor:
    """The same arithmetic with plain tensors: actor [B, n, F] -> MLP -> (loc, softplus scale), tanh-Normal log-prob,
    centralized critic [B, n*F] -> MLP -> V, clipped surrogate + MSE, backward, clip, Adam. No TensorDict, no TorchRL."""

    def __init__(self, n_obs: int, n_agents: int, n_act: int, hidden: list[int], device: torch.device) -> None:
        def mlp(i: int, o: int) -> nn.Sequential:
            layers, d = [], i
            for h in hidden:
                layers += [nn.Linear(d, h), nn.Tanh()]
                d = h
            return nn.Sequential(*layers, nn.Linear(d, o)).to(device)

        self.actor, self.critic, self.n_act = mlp(n_obs, 2 * n_act), mlp(n_obs * n_agents, 1), n_act
        self.params = [*self.actor.parameters(), *self.critic.parameters()]
        self.opt = torch.optim.Adam(self.params, lr=5e-5)

    def tensors(self, b) -> tuple:
        g = b["agents"]
        return g["observation"], g["action"], g["action_log_prob"], g["advantage"], g["value_target"]

    def __call__(self, batch) -> None:
        obs, act, old_lp, adv, target = batch
        loc, s = self.actor(obs).chunk(2, -1)
        scale = nn.functional.softplus(s) + 1e-4
        pre = torch.atanh(act.clamp(-0.999999, 0.999999))
        lp = (torch.distributions.Normal(loc, scale).log_prob(pre) - 2 * (math.log(2) - pre - nn.functional.softplus(-2 * pre))).sum(-1)
        ratio = (lp - old_lp).exp().unsqueeze(-1)
        pol = -torch.min(adv * ratio, adv * ratio.clamp(0.8, 1.2)).mean()
        v = self.critic(obs.flatten(-2)).unsqueeze(-2)
        total = pol + (target - v).pow(2).mean()
        self.opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 5.0)
        self.opt.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--n-envs", type=int, default=60)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--minibatch-size", type=int, default=400)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="also time mappo_td with torch.compile")
    p.add_argument("--json", default=None)
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run (CI)")
    args = p.parse_args()
    if args.tiny:
        args.hidden, args.n_envs, args.steps, args.minibatch_size, args.repeats, args.warmup = [16], 8, 10, 40, 1, 1
    device = torch.device(args.device)

    print("benchmark: one minibatch update (loss + backward + grad clip + Adam), VMAS navigation batch")
    print(f"config: {json.dumps(vars(args))}")
    print(f"device: {device_name(args.device)}")
    print(versions())
    trainer = make_trainer(args)
    n = (args.n_envs * args.steps) // args.minibatch_size
    batches = batches_of(trainer, n)
    g = trainer.groups[0]
    results = {}
    results["mappo_td (plain)"] = time_steps(lambda b: update_step(g, b), batches, device, args.repeats, args.warmup)
    if args.compile:
        ct = make_trainer(args, compile_=True)
        cb = batches_of(ct, n)
        step = ct.learner.step_fns[ct.groups[0].name]  # update_step, wrapped by the fast path
        t0 = time.perf_counter()
        step(cb[0])
        print(f"compile time: {time.perf_counter() - t0:.1f}s")
        results["mappo_td (compile)"] = time_steps(step, cb, device, args.repeats, args.warmup)
    for name in ("MAPPOLoss", "ClipPPOLoss"):
        results[f"torchrl {name}"] = time_steps(torchrl_step(make_trainer(args), name), batches, device, args.repeats, args.warmup)
    obs = batches[0]["agents", "observation"]
    floor = BareFloor(obs.shape[-1], obs.shape[-2], batches[0]["agents", "action"].shape[-1], args.hidden, device)
    results["bare PyTorch floor"] = time_steps(floor, [floor.tensors(b) for b in batches], device, args.repeats, args.warmup)
    base = median(results["bare PyTorch floor"])
    print(f"\n{'variant':<22}{'ms/step (median)':>18}{'min':>8}{'max':>8}{'vs floor':>10}")
    for name, ts in results.items():
        print(f"{name:<22}{median(ts):>18.2f}{min(ts):>8.2f}{max(ts):>8.2f}{median(ts) / base:>9.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: median(v) for k, v in results.items()}, f)


if __name__ == "__main__":
    main()
