"""A graceful stop: the first Ctrl-C (SIGINT) or SIGTERM finishes the current update, the loop writes a checkpoint
and raises :class:`Interrupted`; a second signal aborts at once (``KeyboardInterrupt``)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mappo_td.train.distributed import all_reduce_sum, world

EXIT_INTERRUPTED = 130  # the shell's status for a run stopped by Ctrl-C


class Interrupted(Exception):
    """Training stopped on request after writing a checkpoint at ``timestep`` (``checkpoint``)."""

    def __init__(self, timestep: int, checkpoint: Path) -> None:
        super().__init__(f"interrupted at timestep {timestep}; checkpoint {checkpoint}")
        self.timestep, self.checkpoint = timestep, Path(checkpoint)


class StopRequest:
    """Set by the signal handler of :func:`graceful_stop`; read by the loop between updates.

    Example:
        >>> r = StopRequest(); r.requested = True; r.agreed()
        True
    """

    def __init__(self) -> None:
        self.requested = False

    def agreed(self) -> bool:
        """Whether to stop now: this process's request, or (torchrun) any process's, so that all stop together."""
        if world()[1] == 1:
            return self.requested
        import torch
        import torch.distributed as dist

        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
        return bool(all_reduce_sum(torch.tensor(int(self.requested), device=device)) > 0)  # one small read per iteration


@contextmanager
def graceful_stop() -> Iterator[StopRequest]:
    """Within the block, SIGINT/SIGTERM set ``requested`` (first) or raise ``KeyboardInterrupt`` (second); outside the
    main thread signals are left alone.

    Example:
        >>> with graceful_stop() as stop:
        ...     stop.requested
        False
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: object) -> None:
        if request.requested:
            raise KeyboardInterrupt
        request.requested = True
        print(f"\nmappo-td: {signal.Signals(signum).name}: stopping after this update and writing a checkpoint "
              "(Ctrl-C again to abort at once)", file=sys.stderr, flush=True)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
