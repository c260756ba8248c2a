"""CVAE for image completion (Sohn et al. 2015, "structured output prediction"; the generative-models
poster).

The model sees part of an image, ``x_obs = m * x`` (``m``: 1 where observed, set by
``observe``), and draws the rest::

    h = Prior_trunk([x_obs, m])                       the observed part, summarized (B, hidden)
    p(z | x_obs) = N(mu_p(h), diag sigma_p^2(h))      the prior network
    q(z | x_obs, x_missing) = N(mu_q(x, m), ...)      the recognition network sees the whole image
    p(x_missing | z, x_obs) = Dec(z, h)               scored on the unobserved pixels only
    L = nll((1 - m) * x | Dec(z, h)) + kl_weight * KL(q(z|x, m) || p(z|x_obs)),   z ~ q

A completion draws z from the prior network and keeps the observed pixels:
``x_hat = m * x + (1 - m) * mean(Dec(z, h))`` (``complete(x, n)``). Labels are not used: every
training image teaches it. It is not a generator of whole images (no ``sample``), so the
evaluation reports its completion metrics instead: error on the missing part, diversity of the
draws, and whether the evaluator still sees the image's class (docs/hybrids.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch

from .. import losses
from ..nets import Decoder, GaussianEncoder, Upsample
from ..registry import register
from .base import Batch, GenerativeModel, ModelConfig, Phase, Step, StepOutput
from ..fields import opt

Observe = Literal["top-half", "left-half", "random-mask"]


@dataclass
class CompletionConfig(ModelConfig):
    latent_dim: int = opt(20, "")
    upsample: Upsample = opt("resize", "")
    kl_weight: float = opt(1.0, "weight of the KL term; 1 = the ELBO (schedulable)")
    observe: Observe = opt("top-half", "which part of each image the model is given")
    observe_fraction: float = opt(0.5, "random-mask: the fraction of pixels observed (a fresh mask per image)",
                                  gt=0, lt=1)



@register("cvae_completion")
class CompletionCVAE(GenerativeModel):
    """CVAE conditioned on the observed part of an image: draws of the unobserved part."""


    Config = CompletionConfig
    generative = False  # no decode(z) / sample(n) of whole images: complete(x, n) instead
    completes = True
    needs_images = True

    def __init__(self, cfg: CompletionConfig, info, parts=None):
        super().__init__(cfg, info, parts)
        spec = cfg.net_spec()
        c, h, w = info.shape
        self.prior_net = self.build_part("prior_net", lambda: GaussianEncoder((c + 1, h, w), cfg.latent_dim, spec))
        self.rec = self.build_part("rec", lambda: GaussianEncoder(info.shape, cfg.latent_dim, spec, cond_channels=1))
        self.dec = self.build_part("dec", lambda: Decoder(info.shape, cfg.latent_dim, spec,
                                                          cond_dim=spec.resolve(info.shape).hidden))
        self.check_parts_used()

    def groups(self):
        return {"prior_net": self.prior_net, "rec": self.rec, "dec": self.dec}

    def phases(self):
        return [Phase("train", (Step("cvae", ("prior_net", "rec", "dec"), self.completion_loss),))]

    # ------------------------------------------------------------------ masks
    def mask(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """(n, 1, H, W) 0/1, 1 where observed; random masks from ``generator`` (or the global RNG)."""
        _, h, w = self.info.shape
        c = self.cfg
        if c.observe == "random-mask":
            u = torch.rand(n, 1, h, w, generator=generator)
            return (u < c.observe_fraction).float().to(self.device)
        m = torch.zeros(n, 1, h, w, device=self.device)
        if c.observe == "top-half":
            m[:, :, : h // 2] = 1.0
        else:  # left-half
            m[:, :, :, : w // 2] = 1.0
        return m

    def observed_mask(self, n: int) -> torch.Tensor:
        return self.mask(n, torch.Generator().manual_seed(0))

    # ------------------------------------------------------------------ the model
    def observed_prior(self, x: torch.Tensor, m: torch.Tensor):
        """p(z | x_obs): (mu_p, logvar_p) and h, the observed part's summary for the decoder."""
        mu, logvar, feats = self.prior_net(torch.cat([x * m, m], 1), return_features=True)
        return mu, logvar, feats[-1]

    def completion_loss(self, batch: Batch) -> StepOutput:
        x = batch.x
        m = self.mask(len(x))
        mu_p, logvar_p, h = self.observed_prior(x, m)
        mu_q, logvar_q = self.rec(x, cond_image=m)
        z = losses.reparameterize(mu_q, logvar_q)
        missing = self.nll(self.dec(z, h), x, weight=1.0 - m)  # (B,): unobserved pixels only
        kl = losses.gaussian_kl_between(mu_q, logvar_q, mu_p, logvar_p)
        loss = (missing + self.weight("kl_weight", batch) * kl).mean()
        return StepOutput(loss, {"loss": loss.detach(), "missing": missing.mean().detach(),
                                 "kl": kl.mean().detach()})

    def _complete(self, x, n, generator):
        m = self.observed_mask(len(x))
        mu_p, logvar_p, h = self.observed_prior(x, m)
        draws = []
        for _ in range(n):
            eps = torch.randn(mu_p.shape, generator=generator).to(mu_p.device)
            z = mu_p + eps * (0.5 * logvar_p).exp()
            draws.append(m * x + (1 - m) * self.to_data_range(self.dec(z, h)))
        return torch.stack(draws, 1)  # (B, n, *shape)

    def _encode(self, x, y):
        """The recognition network's mean, given the whole image and the fixed mask."""
        return self.rec(x, cond_image=self.observed_mask(len(x)))[0]
