"""SSAVAE, the Semi-Supervised Adversarial VAE (Zemouri 2020), METHODS.md section 1.

Two training steps that never mix: step 1 shapes the latent space, step 2 trains a decoder
against it (the paper's Algorithms 1 and 2).

Step 1, the Variational Encoder Classifier (VEC)::

    q(z | x) = N(mu(x), diag sigma^2(x));   z = mu + sigma * eps
    p(y | z) = Cat(softmax(Cls(z)))                         (Cls(mu) at test time)
    L_VEC = vec_recon_weight * nll(x | Aux(z)) + kl_weight * KL(q(z|x) || N(0, I))
            + lambda_cls * CE(Cls(z), y)                    (CE only where y != -1)

Step 2, the decoder, with Enc and Cls frozen::

    z ~ q(z | x);  x_hat = Dec(z);  z_p ~ N(0, I);  x_p = Dec(z_p)
    L_rec    = sum_l w_l * mean_units (h_l(x) - h_l(x_hat))^2     h_l: frozen encoder layers
    L_adv    = -log sigmoid(Dis(x_hat))            (and x_p when prior_fakes)
    L_latent = || mu_Enc(x_hat) - z ||^2           (and x_p -> z_p when prior_fakes)
    L_G      = L_rec + beta * L_adv + gamma * L_latent
    L_D      = -log sigmoid(Dis(x)) - log(1 - sigmoid(Dis(x_hat.detach())))

Every choice the paper leaves open is a config field (see docs/ssavae.md).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import losses
from ..nets import Classifier, Decoder, Discriminator, GaussianEncoder, NetSpec
from ..registry import register
from .base import GenerativeModel, ModelConfig, Phase, Step, StepOutput


@dataclass
class SSAVAEConfig(ModelConfig):
    latent_dim: int = 100  # the paper's K_z (2 for the latent maps, 100 otherwise)
    # ---- step 1: the VEC
    kl_weight: float = 0.01  # literal KL + CE collapses the code (METHODS.md measurements)
    kl_warmup_steps: int = 0  # ramp kl_weight linearly from 0 over this many VEC steps
    lambda_cls: float = 1.0
    cls_input: Literal["z", "mu"] = "z"  # what Cls sees in training (always mu at test)
    cls_hidden: tuple[int, ...] = (256, 256)  # the classifier MLP on the code
    vec_recon_weight: float = 0.0  # >0 adds an auxiliary decoder with a pixel NLL term
    decoder_init: Literal["random", "aux"] = "random"  # step-2 decoder starts from Aux?
    vec_epochs: Optional[int] = None  # epochs of step 1; null = train.epochs
    # ---- step 2: the decoder
    beta: float = 0.005  # adversarial weight
    gamma: float = 0.1  # latent weight
    feature_layers: Optional[tuple[int, ...]] = None  # encoder hidden layers (index); null = all
    feature_weights: Optional[tuple[float, ...]] = None  # w_l per chosen layer; null = all 1
    feature_reduction: Literal["mean", "sum"] = "mean"  # over the units of each layer
    pixel_weight: float = 0.0  # optional pixel NLL added to L_rec
    latent_reduction: Literal["mean", "sum"] = "mean"  # over latent dimensions
    prior_fakes: bool = True  # also show Dec(z_p), z_p ~ N(0, I), to Dis and to L_latent
    decoder_epochs: Optional[int] = None  # epochs of step 2; null = train.epochs

    def validate(self) -> None:
        super().validate()
        if self.decoder_init == "aux" and self.vec_recon_weight <= 0:
            raise ValueError("model.decoder_init='aux' needs an auxiliary decoder: set "
                             "model.vec_recon_weight > 0")
        for name in ("kl_weight", "lambda_cls", "vec_recon_weight", "beta", "gamma",
                     "pixel_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"model.{name} must be >= 0, got {getattr(self, name)}")
        if self.feature_weights is not None and self.feature_layers is not None \
                and len(self.feature_weights) != len(self.feature_layers):
            raise ValueError("model.feature_weights needs one weight per model.feature_layers entry")


@register("ssavae")
class SSAVAE(GenerativeModel):
    """Semi-Supervised Adversarial VAE (Zemouri 2020): VEC, then an adversarial decoder."""

    Config = SSAVAEConfig
    conditional = True  # sample(n, y) draws codes the classifier assigns to class y

    def __init__(self, cfg: SSAVAEConfig, info):
        super().__init__(cfg, info)
        spec = cfg.net_spec()
        self.enc = GaussianEncoder(info.shape, cfg.latent_dim, spec)
        self.cls = Classifier((cfg.latent_dim,), info.num_classes,
                              NetSpec("mlp", None, cfg.cls_hidden[-1], cfg.cls_hidden[:-1]))
        self.aux = Decoder(info.shape, cfg.latent_dim, spec) if cfg.vec_recon_weight > 0 else None
        self.dec = Decoder(info.shape, cfg.latent_dim, spec)
        self.disc = Discriminator(info.shape, spec)
        self.register_buffer("vec_steps", torch.zeros((), dtype=torch.long))
        # the encoder's hidden layers: every body block (Flatten is not a layer) and its dense layer
        n_layers = sum(not isinstance(b, nn.Flatten) for b in self.enc.trunk.body.blocks) + 1
        layers = cfg.feature_layers if cfg.feature_layers is not None else tuple(range(n_layers))
        if any(not 0 <= i < n_layers for i in layers):
            raise ValueError(f"model.feature_layers must index the encoder's {n_layers} hidden "
                             f"layers (0..{n_layers - 1}), got {list(layers)}")
        self.feature_layers = tuple(layers)

    # ------------------------------------------------------------------ contract
    def groups(self):
        g = {"enc": self.enc, "cls": self.cls, "dec": self.dec, "disc": self.disc}
        if self.aux is not None:
            g["aux"] = self.aux
        return g

    def phases(self):
        c = self.cfg
        vec_groups = ("enc", "cls") + (("aux",) if self.aux is not None else ())
        dec_steps = (Step("disc", ("disc",)),) if c.beta > 0 else ()
        return [
            Phase("vec", (Step("vec", vec_groups),), epochs=c.vec_epochs,
                  figures=self.aux is not None),
            Phase("decoder", dec_steps + (Step("dec", ("dec",)),), frozen=vec_groups,
                  epochs=c.decoder_epochs),
        ]

    def on_phase_start(self, phase: str) -> None:
        """Step 2 may start from the auxiliary decoder of step 1 (``decoder_init='aux'``)."""
        if phase == "decoder" and self.cfg.decoder_init == "aux":
            self.dec.load_state_dict(copy.deepcopy(self.aux.state_dict()))

    def step_loss(self, step, batch):
        return {"vec": self._vec_loss, "disc": self._disc_loss, "dec": self._dec_loss}[step](*batch)

    # ------------------------------------------------------------------ step 1
    def kl_weight_now(self) -> float:
        c = self.cfg
        if c.kl_warmup_steps <= 0:
            return c.kl_weight
        return c.kl_weight * min(1.0, float(self.vec_steps) / c.kl_warmup_steps)

    def _vec_loss(self, x, y) -> StepOutput:
        c = self.cfg
        mu, logvar = self.enc(x)  # (B, latent_dim) each
        z = losses.reparameterize(mu, logvar)
        logits = self.cls(z if c.cls_input == "z" else mu)  # (B, K)
        kl = losses.gaussian_kl(mu, logvar)  # (B,)
        ce = losses.masked_cross_entropy(logits, y)  # (B,), 0 where unlabeled
        # KL is averaged over all examples, CE over the labeled ones only, so a batch with few
        # labels still gives the classifier a full-strength signal (and one with none, zero).
        cls_ce = losses.labeled_mean(ce, y)
        loss = self.kl_weight_now() * kl.mean() + c.lambda_cls * cls_ce
        logs = {"kl": kl.mean().detach(), "cls_ce": cls_ce.detach()}
        if self.aux is not None:
            recon = self.nll(self.aux(z), x)
            loss = loss + c.vec_recon_weight * recon.mean()
            logs["recon"] = recon.mean().detach()
        labeled = y >= 0
        if labeled.any():
            logs["acc"] = (logits.argmax(1)[labeled] == y[labeled]).float().mean().detach()
        self.vec_steps += 1
        logs["loss"] = loss.detach()
        return StepOutput(loss, logs)

    # ------------------------------------------------------------------ step 2
    def _codes(self, x: torch.Tensor):
        """Frozen encoder: z ~ q(z|x), the input's hidden features, and prior codes z_p."""
        with torch.no_grad():
            mu, logvar, feats = self.enc(x, return_features=True)
            z = losses.reparameterize(mu, logvar)
        z_p = torch.randn_like(z) if self.cfg.prior_fakes else None
        return z, [feats[i] for i in self.feature_layers], z_p

    def _disc_loss(self, x, y) -> StepOutput:
        z, _, z_p = self._codes(x)
        with torch.no_grad():  # fakes shown to Dis are detached from the decoder
            fakes = [self.to_data_range(self.dec(z))]
            if z_p is not None:
                fakes.append(self.to_data_range(self.dec(z_p)))
        real_logit = self.disc(x)[0]  # (B, 1)
        d = torch.stack([losses.gan_d_loss(real_logit, self.disc(f)[0]) for f in fakes]).mean(0)
        loss = d.mean()
        return StepOutput(loss, {"d_loss": loss.detach(),
                                 "d_real": torch.sigmoid(real_logit).mean().detach()})

    def _dec_loss(self, x, y) -> StepOutput:
        c = self.cfg
        z, feats_x, z_p = self._codes(x)
        x_logits = self.dec(z)  # (B, *shape)
        x_hat = self.to_data_range(x_logits)
        mu_hat, _, feats_hat = self.enc(x_hat, return_features=True)  # frozen weights, live graph
        rec = losses.feature_distance(feats_x, [feats_hat[i] for i in self.feature_layers],
                                      c.feature_weights, c.feature_reduction)  # (B,)
        if c.pixel_weight:
            rec = rec + c.pixel_weight * self.nll(x_logits, x)
        adv = losses.gan_g_loss(self.disc(x_hat)[0])  # (B,)
        lat = losses.squared_error(mu_hat, z, c.latent_reduction)  # (B,)
        if z_p is not None:
            x_p = self.to_data_range(self.dec(z_p))
            mu_p = self.enc(x_p)[0]
            adv = 0.5 * (adv + losses.gan_g_loss(self.disc(x_p)[0]))
            lat = 0.5 * (lat + losses.squared_error(mu_p, z_p, c.latent_reduction))
        loss = (rec + c.beta * adv + c.gamma * lat).mean()
        return StepOutput(loss, {"loss": loss.detach(), "rec": rec.mean().detach(),
                                 "adv": adv.mean().detach(), "latent": lat.mean().detach()})

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """p(y | x) = softmax(Cls(mu(x))): (B, K), rows sum to 1."""
        return F.softmax(self.cls(self.enc(x)[0]), dim=-1)

    @torch.no_grad()
    def predict_proba_latent(self, z: torch.Tensor) -> torch.Tensor:
        """p(y | z) for codes z (B, latent_dim): the decision regions of the latent map."""
        return F.softmax(self.cls(z), dim=-1)

    @torch.no_grad()
    def sample(self, n: int, y: Optional[torch.Tensor] = None,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Prior samples; with labels y (n,), the prior draws the classifier is surest are of
        class y[i] (the best of 32 candidates per requested image)."""
        if y is None:
            return super().sample(n, generator=generator)
        y = torch.as_tensor(y).to(self.device)
        cand = torch.randn(32 * n, self.cfg.latent_dim, generator=generator).to(self.device)
        logp = F.log_softmax(self.cls(cand), -1)  # (32n, K)
        z = torch.empty(n, self.cfg.latent_dim, device=self.device)
        for k in y.unique():
            rows = (y == k).nonzero().squeeze(1)
            best = logp[:, k].topk(len(rows)).indices
            z[rows] = cand[best]
        return self.decode(z)
