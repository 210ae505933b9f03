"""A pool of worker processes that step PettingZoo envs into shared memory, for :class:`~mappo_td.batched_pettingzoo.BatchedPettingZooEnv`.

Worker ``k`` of ``K`` owns a contiguous share of the ``N`` envs and writes their entries straight into the
batched env's output arrays (shared memory); the actions come the same way. A command is a few bytes over a
pipe; a worker that dies (killed, crashed in the task) is a clear :class:`WorkerError`, never a hang.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from mappo_td.pettingzoo_arrays import Tasks, seed_chain

if TYPE_CHECKING:
    from mappo_td.batched_pettingzoo import BatchedPettingZooEnv


class WorkerError(RuntimeError):
    """A PettingZoo worker process died or failed."""


def shares(n: int, k: int) -> list[range]:
    """``n`` envs cut into ``k`` contiguous shares as even as possible.

    Example:
        >>> shares(8, 3)
        [range(0, 3), range(3, 5), range(5, 8)]
    """
    cuts = [round(i * n / k) for i in range(k + 1)]
    return [range(a, b) for a, b in zip(cuts, cuts[1:])]


def _work(conn, make_blob: bytes, buf, act, share: range, layout: tuple) -> None:
    """A worker's loop: build its envs, then seed / reset / step them on command, writing into the shared arrays."""
    import cloudpickle

    group_map, has_action_mask, info_keys = layout
    try:
        make = cloudpickle.loads(make_blob)
        out = {k: v.numpy()[share.start:share.stop] for k, v in buf.items(include_nested=True, leaves_only=True)}
        acts = {g: act.get((g, "action")).numpy()[share.start:share.stop] for g in group_map}
        tasks = Tasks([make() for _ in share], group_map, has_action_mask, info_keys, out, acts)
    except Exception:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ok", None))
    while True:
        try:
            cmd, arg = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        try:
            if cmd == "close":
                tasks.close()
                conn.send(("ok", None))
                return
            conn.send(("ok", getattr(tasks, cmd)(*arg)))
        except Exception:
            conn.send(("error", traceback.format_exc()))


class WorkerPool:
    """``num_workers`` processes stepping ``env``'s envs (built by ``make`` in each worker) into ``env``'s shared buffers.

    The same interface as ``Tasks``: ``seed``, ``reset(ids)``, ``step()``, ``close()``;
    ``processes`` are the workers, ``shares`` the envs each steps.

    Example:
        >>> from mpe2 import simple_spread_v3
        >>> from mappo_td.batched_pettingzoo import BatchedPettingZooEnv
        >>> env = BatchedPettingZooEnv(lambda: simple_spread_v3.parallel_env(continuous_actions=False), 4, num_workers=2)
        >>> env.rollout(3)["next", "agent", "observation"].shape
        torch.Size([4, 3, 3, 18])
        >>> env.close()
    """

    def __init__(self, make: Callable[[], object], env: BatchedPettingZooEnv, num_workers: int, timeout_s: float = 60.0) -> None:
        import cloudpickle

        # fork where the platform has it (as gymnasium's AsyncVectorEnv): a user's script needs no __main__ guard, and
        # the workers run numpy and the task only, never torch's thread pools; else spawn, with `make` cloudpickled
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        blob = cloudpickle.dumps(make)
        layout = (env.group_map, env.has_action_mask, env.info_keys)
        self.shares = shares(env.batch_size[0], num_workers)
        self.timeout_s = timeout_s
        self.conns, self.processes = [], []
        for share in self.shares:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_work, args=(child, blob, env._buf, env._act, share, layout), daemon=True)
            p.start()
            child.close()
            self.conns.append(parent)
            self.processes.append(p)
        self._wait(range(len(self.processes)), "start")

    def seed(self, seed: int | None) -> None:
        """Each worker seeds its share with its envs' seeds of :func:`~mappo_td.pettingzoo_arrays.seed_chain`."""
        chain = seed_chain(seed, self.shares[-1].stop)
        self._all("seed", [(chain[s.start],) for s in self.shares])

    def reset(self, ids: Sequence[int]) -> None:
        """Reset the envs ``ids`` (global indices), each by the worker that owns it."""
        per = [([i - s.start for i in ids if i in s],) for s in self.shares]
        busy = [k for k, (local,) in enumerate(per) if local]
        for k in busy:
            self._send(k, "reset", per[k])
        self._wait(busy, "reset")

    def step(self) -> None:
        """Every worker steps its share with the actions in the shared action buffer."""
        self._all("step", [()] * len(self.shares))

    def render(self):
        """The first env's frame, from the worker that owns it."""
        self._send(0, "render", ())
        return self._wait([0], "render")[0]

    def close(self) -> None:
        """Stop the workers (a dead one is skipped)."""
        for conn, p in zip(self.conns, self.processes):
            try:
                if p.is_alive():
                    conn.send(("close", ()))
                    conn.poll(5) and conn.recv()
            except (OSError, EOFError):
                pass
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
        self.conns, self.processes = [], []

    def _all(self, cmd: str, args: list[tuple]) -> None:
        for k, arg in enumerate(args):
            self._send(k, cmd, arg)
        self._wait(range(len(self.conns)), cmd)

    def _send(self, k: int, cmd: str, arg: tuple) -> None:
        try:
            self.conns[k].send((cmd, arg))
        except OSError:  # the worker is gone (broken pipe)
            self.processes[k].join(timeout=5)
            self._fail(k, cmd)

    def _fail(self, k: int, cmd: str, detail: str = "") -> None:
        p, share = self.processes[k], self.shares[k]
        code = p.exitcode
        self.close()
        what = f"failed during {cmd!r}:\n{detail}" if detail else (
            f"{'died with exit code ' + str(code) if code is not None else 'did not answer'} during {cmd!r}; the run cannot "
            "continue. If the machine is short of memory, use fewer --num-workers (1 steps every env in this process).")
        raise WorkerError(f"PettingZoo worker {k} (envs {share.start}..{share.stop - 1}) {what}")

    def _wait(self, which: Sequence[int], cmd: str) -> list:
        answers = []
        for k in which:
            conn, p = self.conns[k], self.processes[k]
            waited = 0.0
            while not conn.poll(0.5):
                waited += 0.5
                if not p.is_alive() or (cmd == "start" and waited > self.timeout_s):
                    self._fail(k, cmd)
            try:
                status, detail = conn.recv()
            except EOFError:
                p.join(timeout=5)
                self._fail(k, cmd)
            if status == "error":
                self._fail(k, cmd, detail)
            answers.append(detail)
        return answers
