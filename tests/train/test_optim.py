import torch
from torch import nn

from mappo_td.train.optim import GroupOptimizer, KLAdaptiveLR, clip_grad_norm


def test_group_optimizer_equals_torch_adam():
    torch.manual_seed(0)
    a, b = nn.Linear(4, 3), nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    ours = GroupOptimizer(list(a.parameters()), lr=torch.tensor(3e-3), grad_norm_clip=torch.tensor(0.5))
    ref = torch.optim.Adam(b.parameters(), lr=3e-3)
    for _ in range(5):
        x = torch.randn(8, 4)
        for m, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            m(x).pow(2).sum().backward()
        torch.nn.utils.clip_grad_norm_(b.parameters(), 0.5)
        ours.step()
        ref.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


def test_per_agent_clip_isolates_a_huge_gradient():
    """Agent 0's huge gradient must not shrink agent 1's clipped step (separate parameters)."""
    p = nn.Parameter(torch.zeros(2, 3))
    opt = GroupOptimizer([p], lr=torch.tensor([0.1, 0.1]), grad_norm_clip=torch.tensor([0.5, 0.5]), share_params=False)
    p.grad = torch.tensor([[1e6, 0.0, 0.0], [0.1, 0.2, 0.0]])
    opt.step()
    alone = nn.Parameter(torch.zeros(3))
    ref = GroupOptimizer([alone], lr=torch.tensor(0.1), grad_norm_clip=torch.tensor(0.5))
    alone.grad = torch.tensor([0.1, 0.2, 0.0])
    ref.step()
    torch.testing.assert_close(p[1], alone.detach())
    # A single (global) clip would have scaled agent 1's gradient by ~5e-7: its step would differ.
    torch.testing.assert_close(p[0], torch.tensor([-0.1, 0.0, 0.0]))


def test_masked_agents_keep_parameters_and_moments():
    p = nn.Parameter(torch.ones(2, 3))
    opt = GroupOptimizer([p], lr=torch.tensor([0.1, 0.2]), grad_norm_clip=torch.tensor([0.0, 0.0]), share_params=False)
    p.grad = torch.ones(2, 3)
    opt.step()
    before = p.detach().clone()
    moments = [s.clone() for k, s in opt.adam.state[p].items() if k != "step"]
    p.grad = torch.full((2, 3), 5.0)
    opt.step(keep_updating=torch.tensor([False, True]))
    torch.testing.assert_close(p[0], before[0])
    assert not torch.allclose(p[1], before[1])
    for (_k, s), old in zip(((k, s) for k, s in opt.adam.state[p].items() if k != "step"), moments):
        torch.testing.assert_close(s[0], old[0])
    # Per-agent learning rates: agent 1 moved twice as far as agent 0 on the first, equal-gradient step.
    torch.testing.assert_close(before[1] - 1, 2 * (before[0] - 1))


def test_kl_adaptive_moves_the_rate_the_right_way_within_bounds():
    lr = torch.tensor(1e-3)
    s = KLAdaptiveLR(lr, kl_threshold=0.01, min_lr=5e-4, max_lr=2e-3)
    s.step(torch.tensor(0.05))  # KL > 2 * threshold: lower
    torch.testing.assert_close(lr, torch.tensor(1e-3 / 1.5))
    s.step(torch.tensor(0.05))
    torch.testing.assert_close(lr, torch.tensor(5e-4))  # not below min_lr
    s.step(torch.tensor(0.01))  # in between: unchanged
    torch.testing.assert_close(lr, torch.tensor(5e-4))
    for _ in range(5):
        s.step(torch.tensor(0.001))  # KL < threshold / 2: raise
    torch.testing.assert_close(lr, torch.tensor(2e-3))  # not above max_lr


def test_clip_grad_norm_equals_torchs_and_compiles_without_a_graph_break():
    """torch's clip_grad_norm_ reads max_norm with float() (a device-to-host read every step on CUDA); ours reads the
    tensor on the device, with the same result, and compiles as one graph."""
    torch.manual_seed(0)
    ps = [nn.Parameter(torch.randn(4, 3)), nn.Parameter(torch.randn(3))]
    qs = [nn.Parameter(p.detach().clone()) for p in ps]
    for p, q in zip(ps, qs):
        p.grad = torch.randn_like(p) * 5
        q.grad = p.grad.clone()
    norm = clip_grad_norm(ps, torch.tensor(0.5))
    expected = torch.nn.utils.clip_grad_norm_(qs, 0.5)
    torch.testing.assert_close(norm, expected)
    for p, q in zip(ps, qs):
        torch.testing.assert_close(p.grad, q.grad)
    limit = torch.tensor(0.5)
    torch.compile(lambda: clip_grad_norm(ps, limit), fullgraph=True)()  # fullgraph: a graph break would raise
