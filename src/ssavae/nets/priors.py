"""Priors over latent codes, as parts: ``sample(n, y=None, generator=None)`` and, where the
density exists in closed form, ``log_prob(z)``.

- ``StandardNormal``: N(0, I), the VAE's prior.
- ``GaussianMixture``: K Gaussians with means on a circle in the first two dimensions
  (Makhzani et al. 2016, Figure 4); ``y`` picks the mode (label regularization).
- ``SwissRoll``: a 2-D swiss roll cut into K segments, ``y`` picks the segment (Makhzani Fig. 4).
- ``Categorical``: one-hot vectors of K classes (the AAE's categorical code).

A prior is an ``nn.Module`` without parameters: its buffers follow the model to its device and
into the checkpoint. The random numbers are drawn on the CPU with the caller's generator (the
same seed gives the same codes on every device) and moved to the prior's device, where the
buffers are used as they are: no device-to-host copy in a training step.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


class Prior(nn.Module):
    """p(z) (optionally p(z | y)) over codes of size ``dim``."""

    has_log_prob: bool = True

    def __init__(self, dim: int, num_modes: int = 0):
        super().__init__()
        self.dim = dim
        self.num_modes = num_modes  # how many values ``y`` may take in ``sample`` (0: none)
        self.register_buffer("_probe", torch.zeros(()), persistent=False)

    def sample(self, n: int, y: Optional[torch.Tensor] = None,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """(n, dim) codes on the prior's device; ``y`` (n,) chooses a mode per row."""
        if y is not None:
            y = torch.as_tensor(y).cpu().long()
            if not self.num_modes:
                raise ValueError(f"{type(self).__name__} has no modes: sample it without y")
            if y.shape != (n,) or y.min() < 0 or y.max() >= self.num_modes:
                raise ValueError(f"y must be (n,) = ({n},) labels in 0..{self.num_modes - 1}")
        return self._sample(n, y, generator).to(self._probe.device)

    def _sample(self, n, y, generator) -> torch.Tensor:
        """(n, dim) codes from CPU random numbers; move them with ``self._to_device``."""
        raise NotImplementedError

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self._probe.device, non_blocking=True)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) per row (B,)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form density")


class StandardNormal(Prior):
    def _sample(self, n, y, generator):
        return torch.randn(n, self.dim, generator=generator)

    def log_prob(self, z):
        return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)


class GaussianMixture(Prior):
    """K equally weighted Gaussians; mode k has mean ``radius * (cos 2pi k/K, sin 2pi k/K)`` in the
    first two dimensions (0 elsewhere) and standard deviation ``std`` in every dimension."""

    def __init__(self, dim: int, k: int, radius: float = 4.0, std: float = 0.5):
        if dim < 2:
            raise ValueError("a mixture prior on a circle needs latent_dim >= 2")
        super().__init__(dim, k)
        angle = 2 * math.pi * torch.arange(k) / k
        means = torch.zeros(k, dim)
        means[:, 0], means[:, 1] = radius * angle.cos(), radius * angle.sin()
        self.register_buffer("means", means)
        self.std = std

    def _sample(self, n, y, generator):
        if y is None:
            y = torch.randint(self.num_modes, (n,), generator=generator)
        eps = torch.randn(n, self.dim, generator=generator)
        return self.means[self._to_device(y)] + self.std * self._to_device(eps)

    def log_prob(self, z):
        d2 = (z[:, None, :] - self.means[None]).pow(2).sum(-1)  # (B, K)
        log_comp = -0.5 * d2 / self.std ** 2 - self.dim * (math.log(self.std) + 0.5 * math.log(2 * math.pi))
        return torch.logsumexp(log_comp, -1) - math.log(self.num_modes)


class SwissRoll(Prior):
    """A 2-D swiss roll: t ~ U(0, 1), z = r(t) (cos a(t), sin a(t)) with r = scale * sqrt(t) and
    a = turns * 2 pi * sqrt(t), plus small Gaussian noise. Mode k is the segment t in [k/K, (k+1)/K)."""

    has_log_prob = False

    def __init__(self, dim: int, k: int = 10, scale: float = 4.0, turns: float = 1.5,
                 noise: float = 0.05):
        if dim != 2:
            raise ValueError("the swiss-roll prior is 2-D: set latent_dim 2")
        super().__init__(dim, k)
        self.scale, self.turns, self.noise = scale, turns, noise

    def _sample(self, n, y, generator):
        u = torch.rand(n, generator=generator)
        t = u if y is None else (y.float() + u) / self.num_modes
        r, a = self.scale * t.sqrt(), self.turns * 2 * math.pi * t.sqrt()
        z = torch.stack([r * a.cos(), r * a.sin()], 1)
        return z + self.noise * torch.randn(n, 2, generator=generator)


class Categorical(Prior):
    """Uniform over the K one-hot vectors: ``sample`` returns (n, K) one-hots."""

    def __init__(self, k: int):
        super().__init__(k, k)

    def _sample(self, n, y, generator):
        if y is None:
            y = torch.randint(self.num_modes, (n,), generator=generator)
        return F.one_hot(y, self.num_modes).float()

    def log_prob(self, z):
        is_one_hot = (z.sum(-1) == 1) & ((z == 0) | (z == 1)).all(-1)
        return torch.where(is_one_hot, torch.full_like(z[:, 0], -math.log(self.num_modes)),
                           torch.full_like(z[:, 0], -math.inf))


class CategoricalStyle(Prior):
    """The code of a categorical-plus-style encoder: a one-hot of K clusters followed by a
    Gaussian style of ``style_dim`` dims, (n, K + style_dim); ``y`` picks the cluster."""

    def __init__(self, k: int, style_dim: int, std: float = 1.0):
        super().__init__(k + style_dim, k)
        self.style_dim, self.std = style_dim, std

    def _sample(self, n, y, generator):
        if y is None:
            y = torch.randint(self.num_modes, (n,), generator=generator)
        return torch.cat([F.one_hot(y, self.num_modes).float(),
                          self.std * torch.randn(n, self.style_dim, generator=generator)], 1)


PRIORS = {"normal": StandardNormal, "mixture": GaussianMixture, "swiss-roll": SwissRoll}


def make_prior(kind: str, dim: int, num_classes: int) -> Prior:
    """A latent prior by name: ``normal``, ``mixture`` (one mode per class), ``swiss-roll``."""
    if kind == "normal":
        return StandardNormal(dim)
    if kind == "mixture":
        return GaussianMixture(dim, max(num_classes, 1))
    if kind == "swiss-roll":
        return SwissRoll(dim, max(num_classes, 1))
    raise ValueError(f"unknown prior {kind!r}; choose one of: {', '.join(PRIORS)}")


class FittedGaussian(Prior):
    """An ex-post prior: full-covariance Gaussians fitted to a trained encoder's codes (the
    aggregate posterior), one overall or one per class (two-stage VAEs, Dai & Wipf 2019; regularized
    autoencoders, Ghosh et al. 2020). Until ``fit`` it is N(0, I). With one Gaussian per class,
    ``y`` picks the class and ``sample(n)`` draws classes by their share of the training codes."""

    def __init__(self, dim: int, num_classes: int = 1, jitter: float = 1e-4):
        super().__init__(dim, num_classes if num_classes > 1 else 0)
        c = max(num_classes, 1)
        self.jitter = jitter
        self.register_buffer("means", torch.zeros(c, dim))
        self.register_buffer("scale_tril", torch.eye(dim).expand(c, dim, dim).clone())
        self.register_buffer("weights", torch.full((c,), 1.0 / c))

    @torch.no_grad()
    def fit(self, codes: torch.Tensor, labels: Optional[torch.Tensor] = None) -> None:
        """codes (N, dim); labels (N,) in 0..C-1, needed for one Gaussian per class."""
        c = self.means.shape[0]
        if c > 1 and labels is None:
            raise ValueError("a per-class fitted prior needs the codes' labels")
        labels = torch.zeros(len(codes), dtype=torch.long) if c == 1 else labels.long()
        codes = codes.double()
        eye = torch.eye(self.dim, dtype=torch.float64)
        for k in range(c):
            zk = codes[labels == k]
            if len(zk) < 2:  # a class without codes keeps N(0, I) and gets no weight
                self.weights[k] = 0.0
                continue
            mean = zk.mean(0)
            cov = torch.cov(zk.T).reshape(self.dim, self.dim) + self.jitter * eye
            self.means[k] = mean.to(self.means)
            self.scale_tril[k] = torch.linalg.cholesky(cov).to(self.scale_tril)
            self.weights[k] = len(zk) / len(codes)
        self.weights /= self.weights.sum().clamp(min=1e-12)

    def _sample(self, n, y, generator):
        eps = self._to_device(torch.randn(n, self.dim, generator=generator))
        if y is None:  # a component per draw, by the classes' shares of the training codes
            u = self._to_device(torch.rand(n, generator=generator))
            y = torch.searchsorted(self.weights.cumsum(0), u).clamp(max=len(self.weights) - 1)
        else:
            y = self._to_device(y)
        return self.means[y] + (self.scale_tril[y] @ eps[:, :, None]).squeeze(-1)

    def log_prob(self, z):
        comps = torch.distributions.MultivariateNormal(self.means, scale_tril=self.scale_tril)
        logp = comps.log_prob(z[:, None, :])  # (B, C)
        return torch.logsumexp(logp + self.weights.clamp(min=1e-30).log(), -1)
