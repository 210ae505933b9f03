"""One rank of a data-parallel test, started by tests/train/test_distributed.py with torchrun's environment
(``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``).

    python dist_worker.py update CFG_JSON BATCH_FILE OUT_FILE   # this rank's share of a fixed batch: update + minibatch steps
    python dist_worker.py die CFG_JSON - OUT_FILE               # rank 1 dies after building; rank 0 trains and reports
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import torch


def minibatch_steps(lrn, flat, k: int, epochs: int) -> dict:
    """``epochs`` passes over ``flat`` in ``k`` minibatches, in order, with the KL early stop of each group;
    returns each group's KL mask and learning rate after every step."""
    from mappo_td.train import masked_update_step, update_step

    m = flat.shape[0] // k
    seen: dict = {}
    for _ in range(epochs):
        for mask in lrn.keep_updating.values():
            mask.fill_(True)
        for i in range(k):
            for g in lrn.groups:
                mask = lrn.keep_updating.get(g.name)
                if mask is None:
                    update_step(g, flat[i * m:(i + 1) * m])
                else:
                    masked_update_step(g, flat[i * m:(i + 1) * m], mask)
                    seen.setdefault(f"{g.name}/masks", []).append(mask.clone())
                seen.setdefault(f"{g.name}/lrs", []).append(g.optimizer.effective_lr())
    return {k: torch.stack(v) for k, v in seen.items()}


def result(lrn) -> dict:
    """Parameters, learning rates, KL masks and running statistics of every group."""
    out = {}
    for g in lrn.groups:
        out[f"{g.name}/params"] = torch.cat([p.detach().reshape(-1) for p in g.optimizer.params])
        out[f"{g.name}/lr"] = g.optimizer.effective_lr()
        out[f"{g.name}/mask"] = lrn.keep_updating.get(g.name, torch.ones(()))
        for k, p in g.preprocessors.items():
            out[f"{g.name}/{k}"] = torch.cat([p.running_mean.reshape(-1), p.running_variance.reshape(-1), p.current_count.reshape(-1)])
    return out


def main(mode: str, cfg_json: str, batch_file: str, out_file: str) -> None:
    from mappo_td import MAPPOTrainer, TrainConfig
    from mappo_td.multiagent import standardize_per_agent
    from mappo_td.objectives import RunningStandardScaler
    from mappo_td.train import build_learner, flat_batch, update
    from mappo_td.train.distributed import DistributedError, all_reduce_sum, world

    cfg = TrainConfig.from_dict(json.loads(cfg_json))
    if mode == "die":
        trainer = MAPPOTrainer(cfg)
        if world()[0] == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # dies without a word, as a killed process does
        t0 = time.perf_counter()
        try:
            trainer.train()
            out = {"error": None}
        except DistributedError as err:
            out = {"error": str(err)}
        out["seconds"] = time.perf_counter() - t0
        torch.save(out, out_file)
        os.kill(os.getpid(), signal.SIGKILL)  # the process group cannot be torn down cleanly with a dead peer
    lrn = build_learner(cfg)
    rank, n = world()
    whole = torch.load(batch_file, weights_only=False)
    share = whole.shape[0] // n
    data = whole[rank * share:(rank + 1) * share].clone()
    update(lrn, data)  # global advantage standardization and statistics; epochs x minibatches of the trainer
    out = result(lrn)
    out["advantage"] = torch.cat([data.get((g, "advantage")).reshape(-1) for g in lrn.group_map])
    seen = minibatch_steps(lrn, flat_batch(lrn, data), k=4, epochs=2)  # this rank's quarter of each global minibatch, in order
    out.update({f"after_steps/{k}": v for k, v in {**result(lrn), **seen}.items()})
    # the reductions on their own: a masked standardization and a running standardizer over both ranks' halves
    gen = torch.Generator().manual_seed(5)
    x, keep = torch.randn(10, 3, 1, generator=gen) * 4 + 1, torch.rand(10, 3, 1, generator=gen) > 0.3
    part = slice(rank * 10 // n, (rank + 1) * 10 // n)
    out["standardized"] = standardize_per_agent(x[part], keep[part], reduce=all_reduce_sum)
    s = RunningStandardScaler(3)
    s.reduce = all_reduce_sum
    s.update(x[part].squeeze(-1))
    out["running"] = torch.cat([s.running_mean, s.running_variance, s.current_count.reshape(1)])
    torch.save(out, out_file)


if __name__ == "__main__":
    main(*sys.argv[1:5])
