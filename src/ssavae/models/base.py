"""The contract every family implements, and the pieces families share.

A model says *what* is optimized; the engine (``engine/``) says *how*:

- ``groups() -> {name: nn.Module}``: disjoint, covering every trainable parameter.
- ``phases() -> [Phase]``: a phase is an ordered tuple of ``Step``s plus the groups it freezes.
  A step names the groups it trains, **its own loss** (a pure function of a ``Batch``) and **its
  data** (``"mixed"``: the batch of labeled and unlabeled examples; ``"labeled"``: the batch also
  carries ``x_lab, y_lab`` from a stream that cycles the labeled subset). A loss changes no
  state of the model; what a later step of the same batch may reuse (a discriminator's fakes)
  goes in ``batch.shared``, detached::

      Step("cls", groups=("enc", "cls"), loss=self.cls_loss, data="labeled")

- Capabilities are declared on the class (``conditional``, ``has_classifier``,
  ``has_likelihood``, ``class_sampling``, ``has_latent_classifier``, ``completes``,
  ``clusters``, ``sequential``) and read by evaluation,
  the CLI and the estimator; a class that declares one must implement it (checked when the
  class is defined).
- Inference: ``encode(x, y=None)``, ``decode(z, y=None)``, ``reconstruct(x, y=None)``,
  ``sample(n, y=None)``, ``predict_proba(x)``. A conditional family called without ``y``, or
  ``y`` given to a family that is not, is a ``CapabilityError``. Outputs are in the data's range.
  Any number of rows: the networks see at most ``inference_batch`` (1,024) at a time, on the
  model's device, and the result comes back on the input's device.
  Sampling draws codes from the model's ``prior`` (a part, see ``nets/priors.py``).
- Loss weights can follow a schedule read from the batch's counters (``model.schedules``).
- Parts: ``parts={"enc": my_module}`` replaces a default network (``build_part``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterable, Iterator, Literal, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import losses
from ..data import DataInfo, Standardization
from ..errors import CapabilityError
from ..nets import FittedGaussian, NetSpec, Prior, StandardNormal, Upsample
from .contract import Batch, Phase, Step, StepOutput, check_schedules, schedule_factor  # noqa: F401  (re-exported)
from ..fields import opt


def in_chunks(fn: Callable[..., torch.Tensor], size: int, device: torch.device,
              *tensors: Optional[torch.Tensor]) -> torch.Tensor:
    """``fn`` over row chunks of ``tensors`` (None passes as None), each moved to ``device``,
    the results concatenated on the first tensor's device."""
    home, n = tensors[0].device, len(tensors[0])
    outs = [fn(*(None if t is None else t[i:i + size].to(device) for t in tensors)).to(home)
            for i in range(0, max(n, 1), size)]  # no rows: one empty pass, for the output's shape
    return outs[0] if len(outs) == 1 else torch.cat(outs)


# ---------------------------------------------------------------------------- configs


@dataclass
class ModelConfig:
    """Fields every family shares (network sizes, likelihood, schedules); families subclass it."""

    latent_dim: int = opt(20, "size of the code z", ge=1)
    arch: Literal["auto", "conv", "mlp"] = opt("auto", "networks: conv (images), mlp (vectors); auto picks by the "
                                                       "data's shape")
    channels: Optional[tuple[int, ...]] = opt(None, "conv widths; null = 32, 64[, 128]")
    hidden: int = opt(256, "width of the dense layer after the conv stack", ge=1)
    mlp_hidden: tuple[int, ...] = opt((512, 256), "dense widths of the MLP bodies (arch mlp)")
    upsample: Upsample = opt("transposed", "conv decoders")
    likelihood: Literal["auto", "bernoulli", "gaussian"] = opt("auto", "auto: bernoulli for [0,1] data")
    sampler: Literal["prior", "gaussian", "class-gaussian"] = opt("prior", "where sample() draws codes: the family's "
                                                                           "fixed prior, or Gaussians fitted to the "
                                                                           "training codes once they are final (one "
                                                                           "overall, or one per class: the aggregate "
                                                                           "posterior)")
    schedules: dict = opt(factory=dict, help="loss-weight ramps, e.g. {kl_weight: {kind: linear, steps: 2000}} (see "
                                             "schedule_factor)")

    def net_spec(self) -> NetSpec:
        return NetSpec(self.arch, self.channels, self.hidden, self.mlp_hidden, self.upsample)

    def validate(self) -> None:
        check_schedules(self)


# ---------------------------------------------------------------------------- the base class


class GenerativeModel(nn.Module):
    """Base class of every family. Subclasses set ``Config``, declare their capabilities and
    implement the contract."""

    name: str = "?"  # set by @register
    Config: type = ModelConfig
    # capabilities: read everywhere instead of guessing with hasattr
    generative: ClassVar[bool] = True  # decode/reconstruct/sample exist (not: the classifier baseline)
    conditional: ClassVar[bool] = False  # encode/decode/reconstruct/sample need y
    class_sampling: ClassVar[bool] = False  # sample(n, y) draws class y (conditional ones do)
    has_classifier: ClassVar[bool] = False  # predict_proba(x)
    has_latent_classifier: ClassVar[bool] = False  # predict_proba_latent(z) (decision regions)
    has_likelihood: ClassVar[bool] = False  # log_likelihood(x, k), negative_elbo(x)
    completes: ClassVar[bool] = False  # complete(x, n): draws of an image's unobserved part
    clusters: ClassVar[bool] = False  # cluster_proba(x): soft assignments to learned clusters
    sequential: ClassVar[bool] = False  # canvas_steps(n): the canvas after each step of drawing
    needs_images: ClassVar[bool] = False  # refuses data that are not images (C, H, W)
    fit_prior_after: ClassVar[Optional[str]] = None  # the phase after which the codes are final
    # settings (over the test suite's small MLPs on synthetic data) that train the family in
    # seconds: every registry-wide test (contract, gradients, resume, CLI) runs each family with them
    tiny: ClassVar[dict] = {}

    _REQUIRES = {"has_classifier": ("_predict_proba",),
                 "has_latent_classifier": ("_predict_proba_latent",),
                 "has_likelihood": ("_log_likelihood", "_negative_elbo"),
                 "completes": ("_complete", "observed_mask"),
                 "clusters": ("_cluster_proba",),
                 "sequential": ("canvas_steps",)}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        for cap, methods in GenerativeModel._REQUIRES.items():
            for method in methods:
                if getattr(cls, cap) and getattr(cls, method) is getattr(GenerativeModel, method):
                    raise TypeError(f"{cls.__name__} declares {cap} but does not implement {method}")

    def __init__(self, cfg: ModelConfig, info: DataInfo, parts: Optional[dict[str, nn.Module]] = None):
        super().__init__()
        self.cfg = cfg
        self.info = info
        if self.needs_images and len(info.shape) != 3:
            raise ValueError(f"{self.name} works on images (C, H, W); the data has shape "
                             f"{tuple(info.shape)}")
        self._parts = dict(parts or {})
        lik = cfg.likelihood
        if lik == "auto":
            lik = "bernoulli" if info.unit_range else "gaussian"
        if lik == "bernoulli" and not info.unit_range:
            raise ValueError("model.likelihood='bernoulli' needs data in [0, 1]; this data is not: "
                             "use 'gaussian' or rescale the data")
        self.likelihood = lik
        self.prior: Prior = StandardNormal(cfg.latent_dim) if cfg.sampler == "prior" else \
            FittedGaussian(cfg.latent_dim, info.num_classes if cfg.sampler == "class-gaussian" else 1)
        # a buffer tells the model's device without a parameter lookup
        self.register_buffer("_device_probe", torch.zeros(()), persistent=False)

    def build_part(self, name: str, default: Callable[[], nn.Module]) -> nn.Module:
        """The user's module for part ``name`` if one was passed in ``parts``, else ``default()``.
        A user part must take the same call as the default it replaces (see docs/design.md)."""
        return self._parts.pop(name) if name in self._parts else default()

    def check_parts_used(self) -> None:
        """Families call this at the end of ``__init__``: a misspelled part name is an error
        (and what reads the finished parts is built then: ``semisup.SemiSupervised``)."""
        if self._parts:
            raise ValueError(f"{type(self).__name__} has no part(s) {sorted(self._parts)}; "
                             f"its parts are {sorted(self.groups())}")

    def after_update(self, step: Step) -> None:
        """Called after each optimizer update of ``step`` (the mean teacher follows it)."""

    # ------------------------------------------------------------------ the training contract
    def groups(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {name: list(m.parameters()) for name, m in self.groups().items()}

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def train_phase(self, phase: Phase) -> None:
        """Train mode, except the phase's frozen groups (eval)."""
        self.train()
        for g in phase.frozen:
            self.groups()[g].eval()

    def on_phase_start(self, phase: str) -> None:
        """Called once when a phase begins (not when a run resumes inside it)."""

    def on_phase_end(self, phase: str, data: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]) -> None:
        """Called once when a phase completes, before its checkpoint; ``data()`` is one ordered
        pass over every training example (the same on every process). By default an ex-post
        sampler (``model.sampler``) is fitted after the phase ``fit_prior_after``."""
        if phase == self.fit_prior_after and isinstance(self.prior, FittedGaussian):
            self.fit_prior(data())

    def on_epoch_start(self, phase: str, epoch: int,
                       data: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]) -> dict:
        """Called when an epoch begins (not when a run resumes inside it), with ``data`` as in
        ``on_phase_end``; returns what to log."""
        return {}

    @torch.no_grad()
    def fit_prior(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Fit the ex-post sampler to the codes of ``batches``; per class, an unlabeled example
        takes the model's own prediction where it has a classifier and is left out otherwise."""
        was_training = self.training
        self.eval()
        codes, labels = [], []
        for x, y in batches:
            if self.conditional:  # codes of labeled examples only: encoding needs the label
                x, y = x[y >= 0], y[y >= 0]
            codes.append(self._encode(x, y if self.conditional else None).cpu())
            if self.has_classifier:
                y = torch.where(y >= 0, y, self._predict_proba(x).argmax(1))
            labels.append(y.cpu())
        codes, labels = torch.cat(codes), torch.cat(labels)
        if self.prior.num_modes:
            keep = labels >= 0
            codes, labels = codes[keep], labels[keep]
        self.prior.fit(codes, labels)
        self.train(was_training)

    def weight(self, name: str, batch: Batch) -> float:
        """The config's loss weight ``name`` at this batch, with its schedule if one is set."""
        value = float(getattr(self.cfg, name))
        spec = self.cfg.schedules.get(name)
        return value * schedule_factor(spec, batch) if spec else value

    # ------------------------------------------------------------------ shared helpers
    @property
    def device(self) -> torch.device:
        return self._device_probe.device

    @property
    def code_dim(self) -> int:
        """The width of ``encode``'s codes and of what ``decode`` reads."""
        return self.cfg.latent_dim

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @staticmethod
    def labeled_examples(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixed batch's labeled rows and the labeled stream's batch: (n, *shape), (n,)."""
        x_lab, y_lab = batch.labeled()
        known = batch.y >= 0
        return torch.cat([batch.x[known], x_lab]), torch.cat([batch.y[known], y_lab])

    def one_hot(self, y: torch.Tensor) -> torch.Tensor:
        """(B,) labels in 0..K-1 -> (B, K) float one-hots."""
        return F.one_hot(y, self.num_classes).float()

    def nll(self, x_logits: torch.Tensor, x: torch.Tensor,
            weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """-log p(x | decoder output) per example, by the configured likelihood (unit variance
        for ``gaussian``); ``weight`` (e.g. a 0/1 mask, broadcast to x) scores some units only."""
        if self.likelihood == "bernoulli":
            return losses.bernoulli_nll(x_logits, x, weight=weight)
        return losses.gaussian_nll(x_logits, x, weight=weight)

    def to_data_range(self, x_logits: torch.Tensor) -> torch.Tensor:
        """Decoder output -> the mean image/vector in the data's range."""
        return torch.sigmoid(x_logits) if self.likelihood == "bernoulli" else x_logits

    @staticmethod
    def frozen(module: nn.Module) -> Callable:
        """``module`` as a fixed function: gradients reach its inputs, never its weights, even if
        they require grad (step 2 of SSAVAE differentiates through its frozen encoder)."""
        from torch.func import functional_call

        params = {k: v.detach() for k, v in module.named_parameters()}

        def call(*args, **kwargs):
            return functional_call(module, params, args, kwargs)

        return call

    def check_batch(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Sanity check of a first batch: explains shape, range and label errors."""
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

    def _check_y(self, y: Optional[torch.Tensor], what: str, n: int,
                 allowed: bool) -> Optional[torch.Tensor]:
        """``y`` for ``what``: required (conditional families), allowed, or refused."""
        if y is None:
            if self.conditional:
                raise CapabilityError(f"{self.name} is conditional: {what} needs y, one label "
                                      f"in 0..{self.num_classes - 1} per row")
            return None
        if not allowed:
            raise CapabilityError(f"{self.name} is not conditional: {what} takes no y")
        y = torch.as_tensor(y, device=self.device).long()
        if y.shape != (n,) or (n and (y.min() < 0 or y.max() >= self.num_classes)):
            raise CapabilityError(f"{what}: y must hold {n} labels in 0..{self.num_classes - 1}, "
                                  f"got shape {tuple(y.shape)}")
        return y

    def _require(self, capability: str, what: str) -> None:
        if not getattr(self, capability):
            lacks = "is not generative" if capability == "generative" else \
                f"has no {capability.removeprefix('has_')}"
            raise CapabilityError(f"{self.name} {lacks}: {what} does not apply")

    # ------------------------------------------------------------------ inference API
    inference_batch: ClassVar[int] = 1024  # rows per network pass in the inference API
    # set on a loaded model whose table was standardized (runs.load_model, from_pretrained): the
    # inference API then takes and returns rows as the training data came, as the command read them
    preprocess: Optional[Standardization] = None

    def _chunked(self, fn: Callable[..., torch.Tensor], *tensors) -> torch.Tensor:
        return in_chunks(fn, self.inference_batch, self.device, *tensors)

    def _in(self, x) -> torch.Tensor:
        """Raw rows -> what the networks were trained on (``preprocess``), bit for bit as the data was."""
        if self.preprocess is None:
            return x
        return torch.from_numpy(self.preprocess(torch.as_tensor(x).detach().cpu().numpy()))

    def _out(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocess is None:
            return x
        return torch.from_numpy(self.preprocess.inverse(x.detach().cpu().numpy())).to(x.device)

    def _log_jacobian(self) -> float:
        """log |d standardized / d raw| of one row: log-densities of raw rows add it."""
        return 0.0 if self.preprocess is None else -float(np.log(self.preprocess.scale).sum())

    def save_pretrained(self, out, config: Optional[dict] = None, card: Optional[dict] = None):
        """Write the model to share: OUT/model.safetensors, config.json and README.md (no pickle;
        ``ssavae.from_pretrained(OUT)`` loads it). ``config``: its run config as a dict (default:
        the family's config alone); ``card``: what the model card shows (``command``, ``summary``,
        ``evaluation``)."""
        from .. import pretrained

        config = config or {"model": {"name": self.name, **dataclasses.asdict(self.cfg)}}
        return pretrained.write(out, config=config, info=self.info.to_dict(), state=self.state_dict(),
                                preprocess=self.preprocess.to_dict() if self.preprocess else None, card=card)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, *shape) in the data's range -> codes (B, latent_dim) (posterior means)."""
        return self._chunked(self._encode, self._in(x), self._check_y(y, "encode", len(x), self.conditional))

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """z (B, latent_dim) -> mean images (B, *shape) in the data's range."""
        self._require("generative", "decode")
        y = self._check_y(y, "decode", len(z), self.conditional)
        return self._out(self._chunked(lambda zb, yb: self.to_data_range(self._decode(zb, yb)), z, y))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        self._require("generative", "reconstruct")
        y = self._check_y(y, "reconstruct", len(x), self.conditional)
        return self._out(self._chunked(lambda xb, yb: self.to_data_range(self._decode(self._encode(xb, yb), yb)),
                                       self._in(x), y))

    @torch.no_grad()
    def sample(self, n: int, y: Optional[torch.Tensor] = None,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """n draws from the prior, decoded: (n, *shape); with ``y`` (n,) draws of those classes
        (conditional and class-sampling families)."""
        self._require("generative", "sample")
        y = self._check_y(y, "sample", n, self.conditional or self.class_sampling)
        z = self.sample_codes(n, y, generator)  # all codes first: the same draws at any chunking
        return self._out(self._chunked(lambda zb, yb: self.to_data_range(self._decode(zb, yb)), z,
                                       y if self.conditional else None))

    def sample_codes(self, n: int, y: Optional[torch.Tensor],
                     generator: Optional[torch.Generator]) -> torch.Tensor:
        """Codes for ``sample``; by default from the prior (y picks its mode where it has modes)."""
        return self.prior.sample(n, y if self.prior.num_modes else None, generator)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """p(y | x): (B, K), rows sum to 1."""
        self._require("has_classifier", "predict_proba")
        return self._chunked(self._predict_proba, self._in(x))

    @torch.no_grad()
    def cluster_proba(self, x: torch.Tensor) -> torch.Tensor:
        """q(cluster | x): (B, number of clusters), rows sum to 1 (clusters are not classes)."""
        self._require("clusters", "cluster_proba")
        return self._chunked(self._cluster_proba, self._in(x))

    @torch.no_grad()
    def predict_proba_latent(self, z: torch.Tensor) -> torch.Tensor:
        """p(y | z) for codes (B, latent_dim): the decision regions of a latent map."""
        self._require("has_latent_classifier", "predict_proba_latent")
        return self._chunked(self._predict_proba_latent, z)

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, k: int = 1000) -> torch.Tensor:
        """Importance-weighted estimate of log p(x) with k samples, (B,)."""
        self._require("has_likelihood", "log_likelihood")
        return self._chunked(lambda xb: self._log_likelihood(xb, k), self._in(x)) + self._log_jacobian()

    @torch.no_grad()
    def negative_elbo(self, x: torch.Tensor) -> torch.Tensor:
        """-ELBO per example (B,), in nats (KL weight 1)."""
        self._require("has_likelihood", "negative_elbo")
        return self._chunked(self._negative_elbo, self._in(x)) - self._log_jacobian()

    @torch.no_grad()
    def complete(self, x: torch.Tensor, n: int = 1,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """n draws of each image's unobserved part given its observed part (the family's
        ``observe`` setting; ``observed_mask(len(x))`` says which pixels): (B, n, *shape) in
        the data's range, the observed pixels kept as they are."""
        self._require("completes", "complete")
        return self._complete(x, n, generator)

    def observed_mask(self, n: int) -> torch.Tensor:
        """The 0/1 mask (n, 1, H, W) of observed pixels ``complete`` uses (a fixed draw where
        the mask is random)."""
        raise NotImplementedError

    # Implementations. Defaults serve families with ``self.enc`` (GaussianEncoder) and
    # ``self.dec`` (Decoder); conditional ones receive y and pass one-hots.
    def _encode(self, x: torch.Tensor, y: Optional[torch.Tensor]) -> torch.Tensor:
        cond = self.one_hot(y) if y is not None else None
        return self.enc(x, cond)[0]

    def _decode(self, z: torch.Tensor, y: Optional[torch.Tensor]) -> torch.Tensor:
        """Decoder output (logits for Bernoulli data)."""
        return self.dec(z, self.one_hot(y) if y is not None else None)

    def _predict_proba(self, x):
        raise NotImplementedError

    def _predict_proba_latent(self, z):
        raise NotImplementedError

    def _cluster_proba(self, x):
        raise NotImplementedError

    def _log_likelihood(self, x, k):
        raise NotImplementedError

    def _negative_elbo(self, x):
        raise NotImplementedError

    def _complete(self, x, n, generator):
        raise NotImplementedError

    def canvas_steps(self, n, y=None, generator=None):
        """(T, n, *shape): n draws, the canvas after each of the T steps (``sequential``)."""
        raise NotImplementedError
