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
        self.x = torch.from_numpy(np.ascontiguousarray(x))
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64))
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
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

    def iterate(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of the current epoch, starting at batch ``start`` (for exact resume)."""
        idx = self._indices()
        for b in range(start, len(self)):
            sel = idx[b * self.batch_size:(b + 1) * self.batch_size]
            x = to_float(self.x[sel]).to(self.device, non_blocking=True)
            yield x, self.y[sel].to(self.device, non_blocking=True)

    def __iter__(self):
        return self.iterate(0)
