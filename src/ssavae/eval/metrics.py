"""Metric functions on batches of images and labels (pure, tested on hand-computed cases)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def sharpness(x: torch.Tensor) -> torch.Tensor:
    """Variance of the Laplacian per image (B,): high for crisp edges, low for blur.

    x: (B, C, H, W) in [0, 1]. Compare a model's images with real ones on the same data.
    """
    b, c, h, w = x.shape
    k = _LAPLACE.to(x)[None, None]
    lap = F.conv2d(x.reshape(b * c, 1, h, w), k)  # valid convolution: no border artefacts
    return lap.reshape(b, c, -1).var(-1).mean(1)


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of equal labels, ignoring targets of -1."""
    known = target >= 0
    return float((pred[known] == target[known]).float().mean()) if known.any() else float("nan")


def pixel_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per example (B,)."""
    return (a - b).pow(2).flatten(1).mean(1)
