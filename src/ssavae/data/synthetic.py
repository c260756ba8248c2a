"""A small synthetic image dataset: class-dependent shapes at random positions and sizes, 28x28.

It is learnable (a classifier reaches high accuracy), generative models have structure to find,
and it costs nothing to make, so tests and smoke runs never need real data.
"""
from __future__ import annotations

import numpy as np

from .datasets import Dataset

SHAPES = ("square", "disc", "cross", "bar")


def _draw(kind: str, rng: np.random.Generator, side: int = 28) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    r = rng.uniform(5, 9)
    cy, cx = rng.uniform(r + 1, side - r - 1, size=2)
    if kind == "square":
        m = (abs(yy - cy) <= r * 0.8) & (abs(xx - cx) <= r * 0.8)
    elif kind == "disc":
        m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    elif kind == "cross":
        m = ((abs(yy - cy) <= 1.5) & (abs(xx - cx) <= r)) | ((abs(xx - cx) <= 1.5) & (abs(yy - cy) <= r))
    else:  # a horizontal bar
        m = (abs(yy - cy) <= 2.0) & (abs(xx - cx) <= r * 1.2)
    img = m.astype(np.float32) * rng.uniform(0.7, 1.0)
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def make_synthetic(n_train: int = 2000, n_test: int = 500, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)

    def split(n):
        y = np.arange(n) % len(SHAPES)
        rng.shuffle(y)
        x = np.stack([_draw(SHAPES[k], rng) for k in y])[:, None]
        return x, y.astype(np.int64)

    x_tr, y_tr = split(n_train)
    x_te, y_te = split(n_test)
    return Dataset("synthetic", x_tr, y_tr, x_te, y_te, list(SHAPES))
