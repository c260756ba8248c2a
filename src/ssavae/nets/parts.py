"""Network parts shared by every family, built from the data's shape.

Bodies turn an input into a list of hidden activations (the last one flat); heads sit on top:

- ``Trunk``: x [, cond] -> hidden activations and named linear heads (the shared piece)
- ``GaussianEncoder``: x [, cond] -> (mu, logvar) [, hidden activations]   (q(z|x))
- ``DeterministicEncoder``: x [, cond] -> z [, hidden activations]          (AAE encoders)
- ``Decoder``: z [, cond] -> logits of x, shaped like the data                (p(x|z))
- ``Discriminator``: x [, cond] -> (logit(s), hidden activations)            (GAN critics)
- ``Classifier``: x or z -> K logits

Conditions come in two shapes: a vector ``cond`` (e.g. a one-hot label, ``cond_dim``) joins the
flat features before the dense layer (or ``z`` in a decoder); an image-shaped condition
(``cond_channels``, e.g. the observed half of an image) is concatenated to ``x`` as channels.

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
Upsample = Literal["transposed", "resize", "bilinear"]  # how a conv decoder doubles its size


# Nearest-neighbour upsampling by 2 followed by a 3x3 convolution is, output pixel for output
# pixel, a stride-2 transposed convolution whose 4x4 kernel is made of the 3x3 one: along each
# axis an even output sees taps (w0, w1 + w2) of its two nearest inputs and an odd one
# (w0 + w1, w2). _FOLD maps 3 taps to those 4 (rows: transposed-kernel index 0..3).
_FOLD = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


class ResizeConv2d(nn.Conv2d):
    """``nn.Upsample(scale_factor=2, mode="nearest")`` then this 3x3 convolution (padding 1),
    computed in one stride-2 transposed convolution with the folded kernel: the same function
    and parameters (and checkpoints) as the two layers, without convolving the 4x larger
    upsampled map (about 4x less work forward and backward)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fold = _FOLD.to(self.weight)
        kernel = torch.einsum("ka,oiab,lb->iokl", fold, self.weight, fold)  # (in, out, 4, 4)
        return nn.functional.conv_transpose2d(x, kernel, self.bias, stride=2, padding=1)


@dataclass(frozen=True)
class NetSpec:
    """The sizes of a network; every family's config carries these fields."""

    arch: Arch = "auto"
    channels: Optional[tuple[int, ...]] = None  # conv widths per stride-2 stage; None = auto
    hidden: int = 256  # width of the dense layer after the conv stack
    mlp_hidden: tuple[int, ...] = (512, 256)  # dense widths of MLP bodies
    upsample: Upsample = "transposed"  # decoder: ConvTranspose or resize-conv (see Decoder)

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
            return NetSpec("conv", tuple(channels), self.hidden, self.mlp_hidden, self.upsample)
        return NetSpec("mlp", None, self.hidden, self.mlp_hidden, self.upsample)


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
        if not feats:  # an MLP body without hidden layers (mlp_hidden: []): the input itself
            feats.append(x)
        feats[-1] = feats[-1].flatten(1)
        return feats


def _with_channels(shape: Sequence[int], extra: int) -> tuple[int, ...]:
    return (shape[0] + extra, *shape[1:]) if extra else tuple(shape)


class Trunk(nn.Module):
    """The shared piece of every network that reads data: a body, an optional condition, one
    dense layer, then named linear heads.

    ``heads={"mu": 20, "logvar": 20}`` gives ``forward(x) -> {"mu": (B, 20), "logvar": (B, 20)}``;
    ``features(x)`` gives the hidden activations ``[h_1, ..., h_L]`` (the last is the dense layer's
    output, (B, hidden)). A two-head encoder (categorical y + Gaussian z) is one Trunk with heads
    ``y_logits``, ``mu`` and ``logvar``.
    """

    def __init__(self, shape: Sequence[int], spec: NetSpec = NetSpec(),
                 heads: Optional[dict[str, int]] = None, cond_dim: int = 0,
                 cond_channels: int = 0, spectral_norm: bool = False):
        super().__init__()
        if cond_channels and len(shape) != 3:
            raise ValueError("an image-shaped condition (cond_channels) needs image data (C, H, W)")
        self.shape = tuple(shape)
        self.cond_dim, self.cond_channels = cond_dim, cond_channels
        self.body = Body(_with_channels(shape, cond_channels), spec)
        self.out_dim = spec.hidden
        self.fc = nn.Sequential(nn.Linear(self.body.out_dim + cond_dim, spec.hidden), act())
        self.heads = nn.ModuleDict({k: nn.Linear(spec.hidden, n) for k, n in (heads or {}).items()})
        if spectral_norm:
            apply_spectral_norm(self)

    @property
    def n_features(self) -> int:
        """How many hidden activations ``features`` returns (body blocks + the dense layer)."""
        return sum(not isinstance(b, nn.Flatten) for b in self.body.blocks) + 1

    def features(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None,
                 cond_image: Optional[torch.Tensor] = None,
                 repeats: Optional[int | torch.Tensor] = None) -> list[torch.Tensor]:
        """``repeats`` (an int, or one count per row of x): the body reads each image once and
        its output row i is repeated ``repeats[i]`` times before the condition joins, so one
        image can be read under several conditions (M2's K classes) at the cost of one; cond
        then has the repeated length, and so have the dense layer's output (the body's own
        activations keep x's)."""
        if self.cond_channels:
            if cond_image is None:
                raise ValueError("this network reads an image-shaped condition: pass cond_image "
                                 f"(B, {self.cond_channels}, H, W)")
            x = torch.cat([x, cond_image], 1)
        feats = self.body(x)
        h = feats[-1]
        if repeats is not None:
            h = h.repeat_interleave(repeats, 0)
        if self.cond_dim:
            if cond is None:
                raise ValueError("this network is conditional: pass cond (e.g. a one-hot label)")
            h = torch.cat([h, cond], 1)
        feats.append(self.fc(h))
        return feats

    def forward(self, x, cond=None, cond_image=None) -> dict[str, torch.Tensor]:
        h = self.features(x, cond, cond_image)[-1]
        return {k: head(h) for k, head in self.heads.items()}


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalization (Miyato et al. 2018) on every conv and linear layer of ``module``."""
    from torch.nn.utils.parametrizations import spectral_norm

    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            spectral_norm(m)
    return module


class GaussianEncoder(nn.Module):
    """q(z | x [, cond]) = N(mu, diag exp(logvar)).  x: (B, *shape) -> mu, logvar: (B, latent)."""

    def __init__(self, shape, latent_dim: int, spec: NetSpec = NetSpec(), cond_dim: int = 0,
                 cond_channels: int = 0):
        super().__init__()
        self.trunk = Trunk(shape, spec, {"mu": latent_dim, "logvar": latent_dim}, cond_dim,
                           cond_channels)

    def forward(self, x, cond=None, return_features: bool = False, cond_image=None, repeats=None):
        feats = self.trunk.features(x, cond, cond_image, repeats)  # repeats: Trunk.features
        h = feats[-1]
        mu = self.trunk.heads["mu"](h)
        logvar = self.trunk.heads["logvar"](h).clamp(-12.0, 8.0)  # keeps exp() finite
        return (mu, logvar, feats) if return_features else (mu, logvar)


class DeterministicEncoder(nn.Module):
    """z = Enc(x [, cond]): (B, *shape) -> (B, latent) (the adversarial autoencoders' encoder)."""

    def __init__(self, shape, latent_dim: int, spec: NetSpec = NetSpec(), cond_dim: int = 0,
                 cond_channels: int = 0):
        super().__init__()
        self.trunk = Trunk(shape, spec, {"z": latent_dim}, cond_dim, cond_channels)

    def forward(self, x, cond=None, return_features: bool = False, cond_image=None):
        feats = self.trunk.features(x, cond, cond_image)
        z = self.trunk.heads["z"](feats[-1])
        return (z, feats) if return_features else z


class Decoder(nn.Module):
    """p(x | z [, cond]): z (B, latent) -> logits (B, *shape). Mirrors the encoder's body.

    ``spec.upsample``: ``transposed`` (4x4 stride-2 transposed convolutions), ``resize``
    (nearest upsampling then a 3x3 convolution, which cannot make checkerboard artefacts:
    Odena et al. 2016) or ``bilinear`` (the same with bilinear upsampling, which also leaves no
    block lattice of the coarsest feature map for an adversarial loss to sharpen into a grid).
    """

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
                if spec.upsample == "resize":  # (Identity keeps the layer indices of 0.3)
                    layers += [nn.Identity(), ResizeConv2d(widths[i], widths[i + 1])]
                elif spec.upsample == "bilinear":
                    layers += [nn.Upsample(scale_factor=2, mode="bilinear"),
                               nn.Conv2d(widths[i], widths[i + 1], 3, 1, 1)]
                else:
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
    """x [, cond] -> (logits (B, n_out), hidden activations). n_out = 1 for real/fake, K + 1 for
    a class-conditional critic (K real classes and one fake); ``spectral_norm`` for stability."""

    def __init__(self, shape, spec: NetSpec = NetSpec(), cond_dim: int = 0, n_out: int = 1,
                 spectral_norm: bool = False, cond_channels: int = 0):
        super().__init__()
        self.trunk = Trunk(shape, spec, {"logit": n_out}, cond_dim, cond_channels, spectral_norm)

    def forward(self, x, cond=None, cond_image=None):
        feats = self.trunk.features(x, cond, cond_image)
        return self.trunk.heads["logit"](feats[-1]), feats


class Classifier(nn.Module):
    """x (B, *shape) -> K logits. For codes pass shape=(latent_dim,) and arch='mlp'."""

    def __init__(self, shape, num_classes: int, spec: NetSpec = NetSpec()):
        super().__init__()
        self.trunk = Trunk(shape, spec, {"logits": num_classes})

    def forward(self, x) -> torch.Tensor:
        return self.trunk(x)["logits"]

    def features(self, x) -> torch.Tensor:
        """The penultimate activations (B, hidden)."""
        return self.trunk.features(x)[-1]

    @classmethod
    def on_codes(cls, latent_dim: int, num_classes: int, hidden: Sequence[int]) -> "Classifier":
        """An MLP classifier of codes (B, latent_dim) with the dense ``hidden`` widths."""
        hidden = tuple(hidden)
        return cls((latent_dim,), num_classes, NetSpec("mlp", None, hidden[-1], hidden[:-1]))
