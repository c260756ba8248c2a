"""Network parts shared by every family, built from the data's shape.

Bodies turn an input into a list of hidden activations (the last one flat); heads sit on top:

- ``GaussianEncoder``: x [, cond] -> (mu, logvar) [, hidden activations]   (q(z|x))
- ``Decoder``: z [, cond] -> logits of x, shaped like the data                (p(x|z))
- ``Discriminator``: x [, cond] -> (logit(s), hidden activations)            (GAN critics)
- ``Classifier``: x or z -> K logits

``arch="conv"`` suits square images whose side halves down to at most 7 (28 -> 14 -> 7,
32 -> 16 -> 8 -> 4); ``arch="mlp"`` works for any shape, feature vectors included. No batch
normalization anywhere: losses stay per-example and a batch's examples never interact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional, Sequence

import torch
import torch.nn as nn

Arch = Literal["auto", "conv", "mlp"]


@dataclass(frozen=True)
class NetSpec:
    """The sizes of a network; every family's config carries these fields."""

    arch: Arch = "auto"
    channels: Optional[tuple[int, ...]] = None  # conv widths per stride-2 stage; None = auto
    hidden: int = 256  # width of the dense layer after the conv stack
    mlp_hidden: tuple[int, ...] = (512, 256)  # dense widths of MLP bodies

    def resolve(self, shape: Sequence[int]) -> "NetSpec":
        arch = self.arch
        if arch == "auto":
            arch = "conv" if len(shape) == 3 and conv_stages(shape) > 0 else "mlp"
        if arch == "conv":
            if len(shape) != 3:
                raise ValueError(f"model.arch='conv' needs images (C, H, W), the data has shape "
                                 f"{tuple(shape)}; use model.arch='mlp'")
            n = conv_stages(shape)
            if n == 0:
                raise ValueError(f"model.arch='conv' needs square images whose side halves to "
                                 f"7 or less (e.g. 28, 32, 64); got {tuple(shape)}: use 'mlp'")
            channels = self.channels or tuple(min(32 * 2 ** i, 256) for i in range(n))
            if len(channels) != n:
                raise ValueError(f"model.channels needs {n} widths for shape {tuple(shape)}, "
                                 f"got {len(channels)}")
            return NetSpec("conv", tuple(channels), self.hidden, self.mlp_hidden)
        return NetSpec("mlp", None, self.hidden, self.mlp_hidden)


def conv_stages(shape: Sequence[int]) -> int:
    """Number of stride-2 stages that take the image side down to <= 7, or 0 if impossible."""
    _, h, w = shape
    if h != w:
        return 0
    n = 0
    while h > 7:
        if h % 2:
            return 0
        h //= 2
        n += 1
    return n


def act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class Body(nn.Module):
    """x -> [h_1, ..., h_L]: the activation after every block; h_L is flat (B, out_dim)."""

    def __init__(self, shape: Sequence[int], spec: NetSpec):
        super().__init__()
        spec = spec.resolve(shape)
        self.blocks = nn.ModuleList()
        if spec.arch == "conv":
            c, side = shape[0], shape[1]
            for width in spec.channels:
                self.blocks.append(nn.Sequential(nn.Conv2d(c, width, 4, 2, 1), act()))
                c, side = width, side // 2
            self.out_dim = c * side * side
        else:
            d = int(math.prod(shape))
            self.blocks.append(nn.Flatten())
            for width in spec.mlp_hidden:
                self.blocks.append(nn.Sequential(nn.Linear(d, width), act()))
                d = width
            self.out_dim = d

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for block in self.blocks:
            x = block(x)
            if not isinstance(block, nn.Flatten):
                feats.append(x)
        feats[-1] = feats[-1].flatten(1)
        return feats


class _Trunk(nn.Module):
    """Body, optional condition concatenated to its flat output, then one dense layer."""

    def __init__(self, shape, spec: NetSpec, cond_dim: int):
        super().__init__()
        self.body = Body(shape, spec)
        self.cond_dim = cond_dim
        self.fc = nn.Sequential(nn.Linear(self.body.out_dim + cond_dim, spec.hidden), act())

    def forward(self, x, cond=None) -> list[torch.Tensor]:
        feats = self.body(x)
        h = feats[-1]
        if self.cond_dim:
            if cond is None:
                raise ValueError("this network is conditional: pass cond (e.g. a one-hot label)")
            h = torch.cat([h, cond], 1)
        feats.append(self.fc(h))
        return feats


class GaussianEncoder(nn.Module):
    """q(z | x [, cond]) = N(mu, diag exp(logvar)).  x: (B, *shape) -> mu, logvar: (B, latent)."""

    def __init__(self, shape, latent_dim: int, spec: NetSpec = NetSpec(), cond_dim: int = 0):
        super().__init__()
        self.trunk = _Trunk(shape, spec, cond_dim)
        self.mu = nn.Linear(spec.hidden, latent_dim)
        self.logvar = nn.Linear(spec.hidden, latent_dim)

    def forward(self, x, cond=None, return_features: bool = False):
        feats = self.trunk(x, cond)
        h = feats[-1]
        mu, logvar = self.mu(h), self.logvar(h).clamp(-12.0, 8.0)  # keeps exp() finite
        return (mu, logvar, feats) if return_features else (mu, logvar)


class Decoder(nn.Module):
    """p(x | z [, cond]): z (B, latent) -> logits (B, *shape). Mirrors the encoder's body."""

    def __init__(self, shape, latent_dim: int, spec: NetSpec = NetSpec(), cond_dim: int = 0):
        super().__init__()
        spec = spec.resolve(shape)
        self.shape = tuple(shape)
        self.cond_dim = cond_dim
        d_in = latent_dim + cond_dim
        if spec.arch == "conv":
            n = len(spec.channels)
            side = shape[1] // 2 ** n
            top = spec.channels[-1]
            self.start = (top, side, side)
            self.fc = nn.Sequential(nn.Linear(d_in, spec.hidden), act(),
                                    nn.Linear(spec.hidden, top * side * side), act())
            layers = []
            widths = list(reversed(spec.channels)) + [shape[0]]
            for i in range(n):
                layers.append(nn.ConvTranspose2d(widths[i], widths[i + 1], 4, 2, 1))
                if i < n - 1:
                    layers.append(act())
            self.net = nn.Sequential(*layers)
        else:
            self.start = None
            layers, d = [], d_in
            for width in reversed(spec.mlp_hidden):
                layers += [nn.Linear(d, width), act()]
                d = width
            layers.append(nn.Linear(d, int(math.prod(shape))))
            self.fc = nn.Sequential(*layers)
            self.net = nn.Identity()

    def forward(self, z, cond=None) -> torch.Tensor:
        if self.cond_dim:
            if cond is None:
                raise ValueError("this decoder is conditional: pass cond (e.g. a one-hot label)")
            z = torch.cat([z, cond], 1)
        h = self.fc(z)
        if self.start is not None:
            h = h.view(-1, *self.start)
        return self.net(h).view(-1, *self.shape)


class Discriminator(nn.Module):
    """x [, cond] -> (logits (B, n_out), hidden activations). n_out = 1 for real/fake."""

    def __init__(self, shape, spec: NetSpec = NetSpec(), cond_dim: int = 0, n_out: int = 1):
        super().__init__()
        self.trunk = _Trunk(shape, spec, cond_dim)
        self.head = nn.Linear(spec.hidden, n_out)

    def forward(self, x, cond=None):
        feats = self.trunk(x, cond)
        return self.head(feats[-1]), feats


class Classifier(nn.Module):
    """x (B, *shape) -> K logits. For codes pass shape=(latent_dim,) and arch='mlp'."""

    def __init__(self, shape, num_classes: int, spec: NetSpec = NetSpec()):
        super().__init__()
        self.trunk = _Trunk(shape, spec, 0)
        self.head = nn.Linear(spec.hidden, num_classes)

    def forward(self, x) -> torch.Tensor:
        return self.head(self.trunk(x)[-1])
