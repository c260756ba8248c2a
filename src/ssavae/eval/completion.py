"""The baseline for image completion: a plain VAE that decodes the nearest code.

A VAE was not trained to complete, but its decoded codes are images it can make. Given an image's
observed pixels, pick, among the decoded codes of a pool of training images, the one whose
observed pixels are nearest (squared error), and take its unobserved pixels. ``cvae_completion``
should beat this on the error of the missing part (docs/hybrids.md, results.md).
"""
from __future__ import annotations

import torch

from .infer import batches


@torch.no_grad()
def nearest_code_completion(model, x: torch.Tensor, mask: torch.Tensor, pool: torch.Tensor,
                            chunk: int = 500) -> torch.Tensor:
    """Complete ``x`` (n, *shape) whose observed pixels are ``mask`` (n, 1, H, W, 1 = observed):
    the unobserved pixels come from the decoded code of ``pool`` (N, *shape, e.g. training images)
    whose observed pixels are nearest. Returns (n, *shape); observed pixels are kept."""
    decoded = torch.cat([model.reconstruct(b.to(model.device)).cpu() for b in pool.split(chunk)]).flatten(1)  # (N, D)
    sq = decoded.pow(2)
    out = []
    for xb, mb in zip(x.split(chunk), mask.split(chunk)):
        m = mb.expand_as(xb).flatten(1).cpu()  # (b, D)
        xf = xb.flatten(1).cpu()
        # sum_p m_p (x_p - d_p)^2 = sum m x^2 - 2 (m x) . d + m . d^2, for every pool image at once
        dist = (m * xf.pow(2)).sum(1, keepdim=True) - 2 * (m * xf) @ decoded.T + m @ sq.T  # (b, N)
        best = decoded[dist.argmin(1)]  # (b, D)
        out.append((m * xf + (1 - m) * best).view_as(xb))
    return torch.cat(out).to(x.device)


def pool_images(ds, n: int = 10000) -> torch.Tensor:
    """The first ``n`` training images as floats, the pool of codes the baseline decodes."""
    return torch.cat(list(batches(ds.x_train[:n], "cpu")))
