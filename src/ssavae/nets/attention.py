"""DRAW's selective attention (Gregor et al. 2015, section 3.2): an N x N grid of Gaussian
filters whose centre, stride, width and intensity a linear layer reads from the decoder state.

For an image of H x W pixels (coordinates 1..H, 1..W), from ``(g~x, g~y, log s2, log d~, log g)``::

    gx = (W + 1) / 2 (g~x + 1),  gy = (H + 1) / 2 (g~y + 1),  delta = (max(H, W) - 1) / (N - 1) d~
    mu_x^i = gx + (i - N/2 - 0.5) delta,  i = 1..N          (the same for y with gy)
    F_x[i, a] = exp(-(a - mu_x^i)^2 / (2 s2)) / Z_x^i       (each row sums to 1 over a)

    read(x)  = gamma * F_y x F_x^T         (N x N per channel)
    write(w) = 1 / gamma * F_y^T w F_x     (H x W per channel)
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn


class GaussianAttention(nn.Module):
    """An N x N window of Gaussian filters over images of ``shape`` (C, H, W), placed by a
    linear layer on a state of size ``state_dim``."""

    def __init__(self, state_dim: int, shape: Sequence[int], n: int):
        super().__init__()
        if len(shape) != 3:
            raise ValueError(f"Gaussian attention works on images (C, H, W), not shape {tuple(shape)}: "
                             "use attention none")
        if n < 1:
            raise ValueError(f"an attention window needs N >= 1 filters per side, got {n}")
        self.c, self.h, self.w = shape
        self.n = n
        self.params = nn.Linear(state_dim, 5)

    def filterbanks(self, state: torch.Tensor, eps: float = 1e-8):
        """(F_x (B, N, W), F_y (B, N, H), gamma (B,)) for the states (B, state_dim)."""
        gx_, gy_, log_s2, log_d, log_gamma = self.params(state).unbind(1)
        gx = (self.w + 1) / 2 * (gx_ + 1)
        gy = (self.h + 1) / 2 * (gy_ + 1)
        delta = (max(self.h, self.w) - 1) / max(self.n - 1, 1) * log_d.exp()
        s2 = log_s2.exp()
        grid = torch.arange(self.n, device=state.device, dtype=state.dtype) - self.n / 2 + 0.5

        def bank(centre, size):
            mu = centre[:, None] + grid * delta[:, None]  # (B, N)
            a = torch.arange(1, size + 1, device=state.device, dtype=state.dtype)
            f = torch.exp(-(a - mu[..., None]) ** 2 / (2 * s2[:, None, None]))  # (B, N, size)
            return f / (f.sum(-1, keepdim=True) + eps)

        return bank(gx, self.w), bank(gy, self.h), log_gamma.exp()

    def read(self, images: Sequence[torch.Tensor], state: torch.Tensor) -> torch.Tensor:
        """gamma F_y x F_x^T of each image (B, C, H, W), flattened and concatenated: (B, len * C N N)."""
        fx, fy, gamma = self.filterbanks(state)
        fy, fxt = fy[:, None], fx.transpose(1, 2)[:, None]  # broadcast over channels
        return torch.cat([(fy @ x @ fxt).flatten(1) for x in images], 1) * gamma[:, None]

    def write(self, patch: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """F_y^T w F_x / gamma for a patch (B, C, N, N): (B, C, H, W)."""
        fx, fy, gamma = self.filterbanks(state)
        return fy.transpose(1, 2)[:, None] @ patch @ fx[:, None] / gamma[:, None, None, None]
