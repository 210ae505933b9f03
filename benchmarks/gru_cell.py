"""Why mappo_td's GRU body runs ``torch.nn.GRUCell`` (and, per agent, ``AgentGRUCell``) step by step.

Forward + backward of one recurrent minibatch as training sees it: ``chunks`` sequences of ``T`` steps for
``n_agents`` agents, a reset mask applied before every step (so a fused multi-step ``torch.nn.GRU`` call
cannot be used). Shared parameters: ``torch.nn.GRU`` called on one step at a time vs ``torch.nn.GRUCell``
(what :class:`mappo_td.GRUBody` uses), eager and ``torch.compile``d. Separate parameters: one
``torch.nn.GRUCell`` per agent in a loop vs :class:`mappo_td.models.recurrent.AgentGRUCell` (weights
stacked per agent, one batched matmul). Median ms over repeats, ratios against the first row.

    python benchmarks/gru_cell.py
    python benchmarks/gru_cell.py --chunks 40 --steps 10 --hidden 64 --repeats 30
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _common import device_name, median, versions
from torch import nn

from mappo_td.models.recurrent import AgentGRUCell


def variants(f: int, h: int, n: int) -> dict:
    gru, cell = nn.GRU(f, h, batch_first=True), nn.GRUCell(f, h)
    cells, stacked = nn.ModuleList(nn.GRUCell(f, h) for _ in range(n)), AgentGRUCell(f, h, n)

    def shared_gru(x, keep, h0):  # x [B, T, n, F] -> agents folded into the batch
        b, t = x.shape[:2]
        s = h0.reshape(1, b * n, h)
        ys = []
        for i in range(t):
            y, s = gru(x[:, i].reshape(b * n, 1, f), s * keep[:, i].repeat_interleave(n).view(1, -1, 1))
            ys.append(y)
        return torch.stack(ys, 1)

    def shared_cell(x, keep, h0):
        b, t = x.shape[:2]
        s, ys = h0.reshape(b * n, h), []
        for i in range(t):
            s = cell(x[:, i].reshape(b * n, f), s * keep[:, i].repeat_interleave(n).view(-1, 1))
            ys.append(s)
        return torch.stack(ys, 1)

    def loop_cells(x, keep, h0):
        s, ys = h0, []
        for i in range(x.shape[1]):
            s = s * keep[:, i].view(-1, 1, 1)
            s = torch.stack([c(x[:, i, a], s[:, a]) for a, c in enumerate(cells)], 1)
            ys.append(s)
        return torch.stack(ys, 1)

    def stacked_cell(x, keep, h0):
        s, ys = h0, []
        for i in range(x.shape[1]):
            s = stacked(x[:, i], s * keep[:, i].view(-1, 1, 1))
            ys.append(s)
        return torch.stack(ys, 1)

    return {"shared: torch.nn.GRU per step": shared_gru, "shared: torch.nn.GRUCell (mappo_td)": shared_cell,
            "per agent: n x torch.nn.GRUCell": loop_cells, "per agent: AgentGRUCell (mappo_td)": stacked_cell}


def time_fn(fn, args, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn(*args).sum().backward()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args).sum().backward()
        times.append((time.perf_counter() - t0) * 1e3)
    return median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chunks", type=int, default=40, help="sequences per minibatch (R1: 400 frames / 10 steps)")
    p.add_argument("--steps", type=int, default=10, help="data_chunk_length")
    p.add_argument("--agents", type=int, default=3)
    p.add_argument("--features", type=int, default=18, help="VMAS navigation's observation size")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--tiny", action="store_true")
    args = p.parse_args()
    if args.tiny:
        args.chunks, args.steps, args.hidden, args.repeats, args.no_compile = 4, 3, 8, 3, True
    print("benchmark: GRU cell forward+backward over a chunked minibatch with resets")
    print(f"config: {json.dumps(vars(args))}")
    print(f"device: {device_name('cpu')}")
    print(versions())
    torch.manual_seed(0)
    b, t, n = args.chunks, args.steps, args.agents
    x = torch.randn(b, t, n, args.features, requires_grad=True)
    keep = (torch.rand(b, t) > 0.1).float()
    h0 = torch.zeros(b, n, args.hidden)
    rows = []
    for name, fn in variants(args.features, args.hidden, n).items():
        for mode in ["eager"] + ([] if args.no_compile else ["compile"]):
            f = fn if mode == "eager" else torch.compile(fn)
            rows.append((name, mode, time_fn(f, (x, keep, h0), args.repeats, 2 if mode == "eager" else 3)))
    print(f"\n{'variant':<40}{'mode':<9}{'ms/step (median)':>18}{'vs first':>10}")
    for name, mode, ms in rows:
        print(f"{name:<40}{mode:<9}{ms:>18.2f}{rows[0][2] / ms:>9.2f}x")


if __name__ == "__main__":
    main()
