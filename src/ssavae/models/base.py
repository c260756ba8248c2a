"""The contract every family implements, and the pieces families share.

A model says *what* is optimized; the engine (``engine/``) says *how*:

- ``groups()``: named sub-networks; ``param_groups()`` derives disjoint parameter lists from them.
- ``phases()``: ordered training phases; each is a tuple of update ``Step``s (a step names the
  groups its optimizer updates) and the groups it keeps frozen (eval mode, no gradients).
- ``step_loss(step, batch)``: the scalar loss of one update step, plus detached logs.
- inference: ``encode``, ``decode``, ``reconstruct``, ``sample`` and, for families with a
  classifier, ``predict_proba``. Images come out in the data's range ([0, 1]).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import torch
import torch.nn as nn

from .. import losses
from ..data import DataInfo
from ..nets import NetSpec


@dataclass(frozen=True)
class Step:
    """One optimizer update: its name (used in logs and for its optimizer) and the groups it trains."""

    name: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Phase:
    """A stretch of training: per batch, run ``steps`` in order; ``frozen`` groups stay fixed."""

    name: str
    steps: tuple[Step, ...]
    frozen: tuple[str, ...] = ()
    epochs: Optional[int] = None  # None: the run's train.epochs
    figures: bool = True  # sample/reconstruction grids after its epochs (no: nothing decodes yet)


@dataclass
class StepOutput:
    loss: torch.Tensor  # scalar, differentiable
    logs: dict[str, torch.Tensor] = field(default_factory=dict)  # detached scalars


@dataclass
class ModelConfig:
    """Fields every family shares (network sizes, likelihood); families subclass it."""

    latent_dim: int = 20
    arch: Literal["auto", "conv", "mlp"] = "auto"
    channels: Optional[tuple[int, ...]] = None  # conv widths; null = 32, 64[, 128]
    hidden: int = 256
    mlp_hidden: tuple[int, ...] = (512, 256)
    likelihood: Literal["auto", "bernoulli", "gaussian"] = "auto"  # auto: bernoulli for [0,1] data

    def net_spec(self) -> NetSpec:
        return NetSpec(self.arch, self.channels, self.hidden, self.mlp_hidden)

    def validate(self) -> None:
        if self.latent_dim < 1:
            raise ValueError(f"model.latent_dim must be >= 1, got {self.latent_dim}")


class GenerativeModel(nn.Module):
    """Base class of every family. Subclasses set ``Config`` and implement the contract."""

    name: str = "?"  # set by @register
    Config: type = ModelConfig

    def __init__(self, cfg: ModelConfig, info: DataInfo):
        super().__init__()
        self.cfg = cfg
        self.info = info
        lik = cfg.likelihood
        if lik == "auto":
            lik = "bernoulli" if info.unit_range else "gaussian"
        if lik == "bernoulli" and not info.unit_range:
            raise ValueError("model.likelihood='bernoulli' needs data in [0, 1]; this data is not: "
                             "use 'gaussian' or rescale the data")
        self.likelihood = lik
        # a buffer tells the model's device without a parameter lookup
        self.register_buffer("_device_probe", torch.zeros(()), persistent=False)

    # ------------------------------------------------------------------ the training contract
    def groups(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {name: list(m.parameters()) for name, m in self.groups().items()}

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def step_loss(self, step: str, batch: tuple[torch.Tensor, torch.Tensor]) -> StepOutput:
        raise NotImplementedError

    def on_phase_start(self, phase: str) -> None:
        """Called once when a phase begins (not when a run resumes inside it)."""

    # ------------------------------------------------------------------ shared helpers
    @property
    def device(self) -> torch.device:
        return self._device_probe.device

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    def nll(self, x_logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x | decoder output) per example, by the configured likelihood (unit variance
        for ``gaussian``)."""
        if self.likelihood == "bernoulli":
            return losses.bernoulli_nll(x_logits, x)
        return losses.gaussian_nll(x_logits, x)

    def to_data_range(self, x_logits: torch.Tensor) -> torch.Tensor:
        """Decoder output -> the mean image/vector in the data's range."""
        return torch.sigmoid(x_logits) if self.likelihood == "bernoulli" else x_logits

    def check_batch(self, batch) -> None:
        """Sanity check of the first batch: explains shape, range and label errors."""
        x, y = batch
        want = tuple(self.info.shape)
        if tuple(x.shape[1:]) != want:
            raise ValueError(f"batch of shape {tuple(x.shape)} does not fit the model built for "
                             f"inputs of shape {want}")
        if not torch.isfinite(x).all():
            raise ValueError("the batch contains NaN or infinite inputs")
        if self.likelihood == "bernoulli" and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"inputs range over [{x.min():.3g}, {x.max():.3g}] but the Bernoulli "
                             "likelihood needs [0, 1]: rescale, or set model.likelihood gaussian")
        if y.numel() and (y.min() < -1 or y.max() >= self.num_classes):
            raise ValueError(f"labels range over [{int(y.min())}, {int(y.max())}]; allowed are "
                             f"0..{self.num_classes - 1} and -1 for unlabeled")

    # ------------------------------------------------------------------ inference API
    # Defaults for families with ``self.enc`` (GaussianEncoder) and ``self.dec`` (Decoder).
    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, *shape) in the data's range -> the posterior mean code (B, latent_dim)."""
        return self.enc(x)[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """z (B, latent_dim) -> mean images (B, *shape) in the data's range."""
        return self.to_data_range(self.dec(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def sample(self, n: int, y: Optional[torch.Tensor] = None,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """n draws from the prior, decoded: (n, *shape)."""
        z = torch.randn(n, self.cfg.latent_dim, generator=generator).to(self.device)
        return self.decode(z, y)
