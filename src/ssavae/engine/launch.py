"""Starting the processes of a run and ending them cleanly (Lightning Fabric does the launch).

Three things Fabric leaves to its user on a CPU (gloo) run, each a way a multi-process run dies or
hangs:

- the process group is never destroyed before Python's teardown: a gloo worker thread that
  releases a finished collective (e.g. the last all-gather) after the teardown has begun must
  take the interpreter's lock to free the collective's tensors, the teardown ends that thread,
  and the process aborts ("terminate called without an active exception"; seen once in 10 to 20
  two-process runs on a loaded machine). Destroying the group is not enough while a finished
  run's DDP module, in a reference cycle, still holds it: the group's threads are joined only
  when the last reference goes, so the exit handler also collects the cycles;
- a process the launcher started waits in the rendezvous (up to the 30-minute timeout) after the
  launcher died, e.g. of a port already in use;
- a port already in use is a bare ``EADDRINUSE`` from deep in ``torch.distributed``.
"""
from __future__ import annotations

import atexit
import ctypes
import functools
import gc
import os
import signal
from contextlib import contextmanager
from typing import Iterator

from ..errors import TrainingError

PR_SET_PDEATHSIG = 1  # prctl(2)


@contextmanager
def launched(fabric) -> Iterator[None]:
    """``fabric.launch()`` for the span of a run: a process that the launcher started (local rank
    > 0) is ended if the launcher dies meanwhile; a port in use is a clear error; the process group
    (when there are several processes) is destroyed at exit, while Python still runs, and stays
    usable until then (to gather results after the run, say)."""
    tied = int(os.environ.get("LOCAL_RANK", "0") or 0) > 0 and _end_with_the_parent(signal.SIGKILL)
    try:
        try:
            fabric.launch()
        except Exception as e:  # torch.distributed.DistNetworkError, known by its message
            if "EADDRINUSE" in str(e):
                port = os.environ.get("MASTER_PORT", "?")
                raise TrainingError(f"port {port} (MASTER_PORT) is already in use, by another distributed run on "
                                    "this machine or another program: unset MASTER_PORT to take a free port, or "
                                    "set it to a free one") from e
            raise
        if fabric.world_size > 1:
            destroy_process_group_at_exit()
        yield
    finally:
        if tied:  # after the run this process may outlive process 0 (which writes the report)
            _end_with_the_parent(0)


def _end_with_the_parent(sig: int) -> bool:
    """Linux: the kernel sends ``sig`` to this process when its parent ends (0: nothing). A signal
    and not a Python thread, since a process waiting in the rendezvous holds the interpreter's
    lock inside torch.distributed, and a signal Python would handle waits for that lock too: only
    SIGKILL ends it. Nothing is lost: process 0 writes every checkpoint and result. False where
    the kernel has no such call (the process then waits for the rendezvous timeout)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if sig and os.getppid() == 1:  # the parent ended before the call: nothing would be sent
        os._exit(1)
    return True


@functools.cache
def destroy_process_group_at_exit() -> None:
    """Register, once per process, the exit handler below (``make_fabric`` does for every
    multi-process Fabric it builds, ``launched`` for every distributed run)."""
    atexit.register(_destroy_process_group)


def _destroy_process_group() -> None:
    """Destroy the process group and collect what still holds it (a finished run's DDP module
    sits in reference cycles), so that gloo's threads are joined now, while Python runs."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        gc.collect()
