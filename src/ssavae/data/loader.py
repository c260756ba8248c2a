"""In-memory batching: uint8 images stay uint8 and become float in [0, 1] one batch at a time.

The order of every epoch is a pure function of (seed, phase, epoch), so a run resumed in the
middle of an epoch sees exactly the batches the uninterrupted run would have seen.
"""
from __future__ import annotations

from typing import Iterator, Optional

import numpy as np
import torch


def to_float(x) -> torch.Tensor:
    """uint8 images (numpy or torch) -> float32 in [0, 1]; other numbers -> float32 as they are."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()


ON_DEVICE_SHARE = 0.5  # the data moves to an accelerator when it takes at most this share of its free memory


def free_bytes(device: torch.device) -> Optional[int]:
    """Free memory of an accelerator, or None where it cannot be asked."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return None


def on_device(t: torch.Tensor, device: torch.device, free: Optional[int] = None) -> torch.Tensor:
    """The whole dataset on the training device when it fits (batches are then gathered there,
    with no copy from the host per step); otherwise, and on the CPU, ``t`` as it is. ``free``:
    the device's free bytes (asked when None)."""
    if device.type == "cpu":
        return t
    free = free_bytes(device) if free is None else free
    return t.to(device) if free is not None and t.nbytes <= ON_DEVICE_SHARE * free else t


class InMemoryLoader:
    """Yields ``(x, y)``: x float32 (B, *shape) in [0, 1] for images, y int64 with -1 unlabeled.

    In a multi-process run each rank takes every ``world_size``-th index of the shared
    permutation, so ranks see disjoint examples and the same number of batches.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False, rank: int = 0, world_size: int = 1,
                 device: torch.device | str = "cpu", limit_batches: Optional[int] = None):
        if batch_size < 1:
            raise ValueError(f"train.batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.x = on_device(torch.from_numpy(np.ascontiguousarray(x)), self.device)
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(self.x.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank, self.world_size = rank, world_size
        self.limit_batches = limit_batches
        self.epoch_key = 0  # set by the engine: (phase, epoch) -> key

    def _indices(self) -> torch.Tensor:
        n = len(self.x)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch_key)
            idx = torch.randperm(n, generator=g)
        else:
            idx = torch.arange(n)
        return idx[self.rank::self.world_size]

    def __len__(self) -> int:
        # every rank must run the same number of steps, so count with the smallest shard
        n = len(self.x) // self.world_size
        batches = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return min(batches, self.limit_batches) if self.limit_batches else batches

    def iterate(self, start: int = 0, with_index: bool = False) -> Iterator[tuple[torch.Tensor, ...]]:
        """Batches ``(x, y)`` of the current epoch, starting at batch ``start`` (for exact
        resume); ``with_index``: ``(x, y, rows)``, the batch's rows in the training set too."""
        idx = self._indices().to(self.x.device)  # one copy per epoch
        for b in range(start, len(self)):
            sel = idx[b * self.batch_size:(b + 1) * self.batch_size]
            x = to_float(self.x[sel]).to(self.device, non_blocking=True)
            y = self.y[sel].to(self.device, non_blocking=True)
            yield (x, y, sel) if with_index else (x, y)

    def __iter__(self):
        return self.iterate(0)

    def first_batches(self, n: int) -> list:
        """The first ``n`` batches ``(x, y, rows)`` of epoch 0's order, fetched once (``train.overfit_batches``)."""
        key, self.epoch_key = self.epoch_key, 0
        batches = [b for _, b in zip(range(n), self.iterate(0, with_index=True))]
        self.epoch_key = key
        return batches

    def full_pass(self, batch_size: int = 500) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every training example once, in order, on every process alike (not sharded)."""
        for i in range(0, len(self.x), batch_size):
            yield (to_float(self.x[i:i + batch_size]).to(self.device),
                   self.y[i:i + batch_size].to(self.device))


class LabeledStream:
    """Batches of the labeled subset only, cycling it forever in a fresh order each pass.

    Batch ``t`` is a pure function of (seed, rank, t): positions ``t*B .. (t+1)*B - 1`` of the
    endless sequence of passes, each pass a permutation seeded by its own number. A run resumed
    at global step ``t`` therefore draws exactly the labeled batches the uninterrupted run drew,
    and a labeled subset smaller than the batch simply repeats within it. Each process of a
    multi-process run draws its own order (``rank`` joins the seed).
    """

    def __init__(self, x: np.ndarray | torch.Tensor, y: np.ndarray, batch_size: int, seed: int = 0,
                 rank: int = 0, device: torch.device | str = "cpu"):
        y = np.asarray(y, dtype=np.int64)
        keep = np.flatnonzero(y >= 0)
        if len(keep) == 0:
            raise ValueError("the labeled stream needs labeled examples; the data has none")
        if batch_size < 1:
            raise ValueError(f"train.labeled_batch_size must be >= 1, got {batch_size}")
        # x: the mixed stream's (on the device when it moved there), shared, no copy
        self.x = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
        self.rows = torch.from_numpy(keep)  # the labeled examples' rows in x
        self.y = torch.from_numpy(y[keep])
        self.batch_size = batch_size
        self.seed, self.rank = seed, rank
        self.device = torch.device(device)
        self._perms: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.y)

    def _perm(self, cycle: int) -> torch.Tensor:
        if cycle not in self._perms:
            if len(self._perms) > 4:  # batches move forward: old passes are not needed again
                self._perms.pop(min(self._perms))
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.rank) * 7_919 + cycle)
            self._perms[cycle] = torch.randperm(len(self.y), generator=g)
        return self._perms[cycle]

    def batch(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``t``-th labeled batch: x float (B, *shape), y int64 (B,) all >= 0."""
        n = len(self.y)
        pos = torch.arange(t * self.batch_size, (t + 1) * self.batch_size)
        cycles, offsets = pos // n, pos % n
        idx = torch.empty_like(pos)
        for c in cycles.unique().tolist():
            sel = cycles == c
            idx[sel] = self._perm(c)[offsets[sel]]
        x = to_float(self.x[self.rows[idx].to(self.x.device)]).to(self.device, non_blocking=True)
        return x, self.y[idx].to(self.device, non_blocking=True)
