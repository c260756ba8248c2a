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


@torch.no_grad()
def over_batches(model, x: np.ndarray, y: torch.Tensor, fn: Callable, batch_size: int = 500) -> torch.Tensor:
    """``fn(x_batch, y_batch_or_None)`` over ``x`` in batches, concatenated on the CPU. ``y`` is
    passed only to conditional families (the labels they condition on)."""
    out = []
    for i, xb in enumerate(batches(x, model.device, batch_size)):
        yb = y[i * batch_size:i * batch_size + len(xb)].to(model.device) if model.conditional else None
        out.append(fn(xb, yb).cpu())
    return torch.cat(out)


@torch.no_grad()
def encode_all(model, x: np.ndarray, y: Optional[np.ndarray] = None) -> np.ndarray:
    yt = torch.from_numpy(y) if y is not None else None
    if model.conditional and yt is None:
        raise ValueError(f"{model.name} is conditional: encoding needs the labels")
    return over_batches(model, x, yt, lambda xb, yb: model.encode(xb, yb)).numpy()
