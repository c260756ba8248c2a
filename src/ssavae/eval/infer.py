"""Batched inference through the public API, for metrics and figures."""
from __future__ import annotations

from typing import Callable, Iterator, Optional

import numpy as np
import torch

from ..data import to_float


def batches(x: np.ndarray, device, batch_size: int = 500) -> Iterator[torch.Tensor]:
    for i in range(0, len(x), batch_size):
        yield to_float(x[i:i + batch_size]).to(device)


def labels_for(model, n: int) -> Optional[torch.Tensor]:
    """Balanced labels 0, 1, ..., K-1, 0, ... for a conditional family's samples; None otherwise."""
    if not model.conditional:
        return None
    return (torch.arange(n) % model.num_classes).to(model.device)


class Shards:
    """Inference split across the processes of a distributed run (``DistributedSampler``-style):
    of n rows, rank r computes the contiguous block ``[r m, (r + 1) m)`` with m = ceil(n / world),
    and every rank gets the whole result back, in order, from one ``all_gather``."""

    def __init__(self, fabric):
        self.fabric, self.rank, self.world = fabric, fabric.global_rank, fabric.world_size

    def block(self, n: int) -> tuple[int, int, int]:
        """(start, stop, m) of this rank's rows."""
        m = -(-n // self.world)
        start = min(n, self.rank * m)
        return start, min(n, start + m), m

    def gather(self, part: torch.Tensor, n: int, m: int) -> torch.Tensor:
        """Every rank's block (padded to m rows for the collective), concatenated, on the CPU."""
        pad = part.new_zeros((m - len(part), *part.shape[1:]))
        full = self.fabric.all_gather(torch.cat([part, pad]).to(self.fabric.device))  # (world, m, ...)
        return full.reshape(-1, *part.shape[1:])[:n].cpu()


@torch.no_grad()
def over_batches(model, x: np.ndarray, y: torch.Tensor, fn: Callable, batch_size: int = 500,
                 shards: Optional[Shards] = None) -> torch.Tensor:
    """``fn(x_batch, y_batch_or_None)`` over ``x`` in batches, concatenated on the CPU. ``y`` is
    passed only to conditional families (the labels they condition on). With ``shards`` (a
    multi-process run) each process computes its block of rows and all get the whole result."""
    if shards is not None and shards.world > 1:
        start, stop, m = shards.block(len(x))
        part = over_batches(model, x[start:stop], y[start:stop] if y is not None else None, fn, batch_size)
        return shards.gather(part, len(x), m)
    out = []
    for i, xb in enumerate(batches(x, model.device, batch_size)):
        yb = y[i * batch_size:i * batch_size + len(xb)].to(model.device) if model.conditional else None
        out.append(fn(xb, yb).cpu())
    if not out:  # no rows (a rank's empty block): the result's shape from an empty batch
        yb = y[:0].to(model.device) if model.conditional else None
        out.append(fn(to_float(x[:0]).to(model.device), yb).cpu())
    return torch.cat(out)


@torch.no_grad()
def encode_all(model, x: np.ndarray, y: Optional[np.ndarray] = None) -> np.ndarray:
    yt = torch.from_numpy(y) if y is not None else None
    if model.conditional and yt is None:
        raise ValueError(f"{model.name} is conditional: encoding needs the labels")
    return over_batches(model, x, yt, lambda xb, yb: model.encode(xb, yb)).numpy()
