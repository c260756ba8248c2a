"""Batched image augmentations for classifiers, on tensors already on the device.

``augment(x, kind)`` is the view a classifier trains on:

- ``none``: the images as they are;
- ``shift``: a random translation of up to ``SHIFT`` pixels per image, zeros shifted in
  (safe for every dataset: digits, characters, silhouettes, clothes);
- ``flip-shift``: a random horizontal flip, then the shift (clothes, objects: a mirrored
  shoe is a shoe, a mirrored 2 is not a 2).

``strong(x, kind)`` is the perturbed view of consistency training (FixMatch-style): the
``kind`` augmentation, then Gaussian pixel noise and a random cut-out square.

Vectors (B, D) pass through ``augment`` unchanged; their strong view is swap noise (each feature,
with probability ``SWAP``, takes the value of the same feature in another row of the batch: a
draw from its marginal, the corruption of tabular self-supervision) plus the Gaussian noise.
All randomness comes from torch's generator, so a seeded run is reproducible and resumes
exactly (the engine checkpoints the RNG state).
"""
from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F

Augment = Literal["none", "shift", "flip-shift"]
SHIFT = 2  # pixels
NOISE = 0.1  # std of the strong view's pixel noise
CUTOUT = 0.4  # side of the strong view's cut-out square, as a fraction of the image side
SWAP = 0.2  # fraction of a vector's features the strong view swaps (validation, docs/results.md)


def shift(x: torch.Tensor, pixels: int = SHIFT) -> torch.Tensor:
    """Translate each image by its own random (dy, dx) in [-pixels, pixels]."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pixels, pixels, pixels, pixels))
    dy = torch.randint(0, 2 * pixels + 1, (b,), device=x.device)
    dx = torch.randint(0, 2 * pixels + 1, (b,), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None])  # (B, H)
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None])  # (B, W)
    idx_r = rows[:, None, :, None].expand(b, c, h, padded.shape[-1])
    out = padded.gather(2, idx_r)  # (B, C, H, W + 2p)
    idx_c = cols[:, None, None, :].expand(b, c, h, w)
    return out.gather(3, idx_c)


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def cutout(x: torch.Tensor, fraction: float = CUTOUT) -> torch.Tensor:
    """Zero one random square of side ``fraction * H`` per image."""
    b, _, h, w = x.shape
    side = max(1, int(round(fraction * h)))
    top = torch.randint(0, h - side + 1, (b,), device=x.device)
    left = torch.randint(0, w - side + 1, (b,), device=x.device)
    r = torch.arange(h, device=x.device)[None, :, None]
    c = torch.arange(w, device=x.device)[None, None, :]
    hole = ((r >= top[:, None, None]) & (r < top[:, None, None] + side)
            & (c >= left[:, None, None]) & (c < left[:, None, None] + side))  # (B, H, W)
    return x.masked_fill(hole[:, None], 0.0)


def augment(x: torch.Tensor, kind: Augment = "shift") -> torch.Tensor:
    """The training view of labeled images (B, C, H, W) in [0, 1]; vectors unchanged."""
    if kind == "none" or x.dim() != 4:
        return x
    if kind == "flip-shift":
        x = hflip(x)
    if kind in ("shift", "flip-shift"):
        return shift(x)
    raise ValueError(f"unknown augmentation {kind!r}; choose none, shift or flip-shift")


def swap(x: torch.Tensor, fraction: Optional[float] = None) -> torch.Tensor:
    """Replace each entry of vectors (B, D), with probability ``fraction`` (default ``SWAP``),
    by the same column of a random row of the batch."""
    fraction = SWAP if fraction is None else fraction
    if fraction <= 0 or len(x) < 2:
        return x
    donors = torch.randint(0, len(x), x.shape, device=x.device)
    return torch.where(torch.rand(x.shape, device=x.device) < fraction, x.gather(0, donors), x)


def strong(x: torch.Tensor, kind: Augment = "shift", unit_range: bool = True) -> torch.Tensor:
    """The strongly perturbed view: ``augment`` (images) or swap noise (vectors), Gaussian
    noise, then a cut-out (images)."""
    x = augment(x, kind) if x.dim() == 4 else swap(x)
    x = x + NOISE * torch.randn_like(x)
    if unit_range:
        x = x.clamp(0.0, 1.0)
    return cutout(x) if x.dim() == 4 else x


def mixup(x: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018): each row blended with a random partner of the batch,
    ``lam x + (1 - lam) x[partner]``, lam ~ Beta(alpha, alpha) per row, folded to lam >= 1/2 so
    each row stays mostly itself. Returns (mixed rows, partner indices (B,), lam (B,))."""
    b = len(x)
    lam = torch.distributions.Beta(alpha, alpha).sample((b,)).to(x.device)
    lam = torch.maximum(lam, 1 - lam)
    partner = torch.randperm(b, device=x.device)
    shape = (b,) + (1,) * (x.dim() - 1)
    return lam.view(shape) * x + (1 - lam.view(shape)) * x[partner], partner, lam

