"""The semi-supervised split: which training labels the models may see (the rest become -1)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .readers import DataError


def labeled_mask(y: np.ndarray, labels_per_class: Optional[int] = None,
                 label_fraction: Optional[float] = None, seed: int = 0) -> np.ndarray:
    """Boolean mask of the labeled subset, stratified by class, chosen with its own seed.

    The same (y, arguments, seed) give the same subset for every model family, so
    comparisons are on identical labels. With neither argument every known label is kept.
    """
    y = np.asarray(y)
    known = y >= 0
    if labels_per_class is not None and label_fraction is not None:
        raise DataError("set either data.labels_per_class or data.label_fraction, not both")
    if labels_per_class is None and label_fraction is None:
        return known.copy()
    if label_fraction is not None and not 0.0 < label_fraction <= 1.0:
        raise DataError(f"data.label_fraction must be in (0, 1], got {label_fraction}")
    if labels_per_class is not None and labels_per_class < 0:
        raise DataError(f"data.labels_per_class must be >= 0, got {labels_per_class}")
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(y), dtype=bool)
    for k in np.unique(y[known]):
        idx = np.flatnonzero(y == k)
        if labels_per_class is not None:
            n = labels_per_class
            if n > len(idx):
                raise DataError(f"class {k} has only {len(idx)} labeled examples, fewer than "
                                f"data.labels_per_class = {n}")
        else:
            n = max(1, int(round(label_fraction * len(idx))))
        mask[rng.choice(idx, size=n, replace=False)] = True
    return mask


def apply_split(y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Labels with -1 outside the labeled subset."""
    return np.where(mask, y, -1).astype(np.int64)
