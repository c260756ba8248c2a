"""VAE (Kingma & Welling 2014).

Generative story::

    p(z) = N(0, I)                      z: (latent_dim,)
    p(x | z) = Bernoulli(sigmoid(Dec(z)))   for data in [0, 1]   (or N(Dec(z), I) for real data)
    q(z | x) = N(mu(x), diag sigma^2(x))    the encoder

Loss per example (the negative ELBO when ``kl_weight = 1``)::

    L(x) = -log p(x | z) + kl_weight * KL(q(z|x) || p(z)),   z ~ q(z|x)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .. import losses
from ..nets import Decoder, GaussianEncoder
from ..registry import register
from .base import Batch, GenerativeModel, ModelConfig, Phase, Step, StepOutput
from ..fields import opt


def elbo_terms(model: GenerativeModel, x: torch.Tensor, cond: Optional[torch.Tensor] = None):
    """Per-example reconstruction NLL and KL to N(0, I), both (B,), with one z ~ q(z|x[, cond]),
    and the decoder's output (B, *shape), for any family with ``enc`` (GaussianEncoder) and
    ``dec`` (Decoder); ``cond`` (B, K) goes to both (a conditional VAE)."""
    mu, logvar = model.enc(x, cond)  # (B, latent_dim) each
    x_logits = model.dec(losses.reparameterize(mu, logvar), cond)
    return model.nll(x_logits, x), losses.gaussian_kl(mu, logvar), x_logits


def importance_weighted(model: GenerativeModel, x: torch.Tensor, mu: torch.Tensor,
                        logvar: torch.Tensor, k: int, chunk: int,
                        decode: Callable[[torch.Tensor, int], torch.Tensor]) -> torch.Tensor:
    """log p(x) estimates (B,) from k draws of q(z | x) = N(mu, exp(logvar)) (Burda et al.
    2016), ``chunk`` draws per decoder pass; ``decode(z, n)`` decodes the codes (n*B, latent_dim)
    of n stacked copies of the batch. p(z) is the model's N(0, I), never an ex-post sampler
    (``model.sampler``): the likelihood is of the model that was trained."""
    log_w = []
    for start in range(0, k, chunk):
        n = min(chunk, k - start)
        z = losses.reparameterize(mu.expand(n, *mu.shape), logvar.expand(n, *logvar.shape))
        zf = z.reshape(-1, z.shape[-1])  # (n*B, latent_dim)
        xf = x.expand(n, *x.shape).reshape(-1, *x.shape[1:])
        lw = (-model.nll(decode(zf, n), xf) + losses.log_normal(zf)
              - losses.log_normal(zf, mu.repeat(n, 1), logvar.repeat(n, 1)))
        log_w.append(lw.view(n, -1))
    return losses.iwae_bound(torch.cat(log_w))


@dataclass
class VAEConfig(ModelConfig):
    latent_dim: int = opt(20, "")
    kl_weight: float = opt(1.0, "1 = the ELBO; other values give a beta-VAE (schedulable)")


@register("vae")
class VAE(GenerativeModel):
    """VAE (Kingma & Welling 2014): Gaussian encoder, decoder, N(0, I) prior."""


    Config = VAEConfig
    has_likelihood = True
    fit_prior_after = "train"  # model.sampler gaussian: fitted to the codes after training

    def __init__(self, cfg: VAEConfig, info, parts=None):
        super().__init__(cfg, info, parts)
        spec = cfg.net_spec()
        self.enc = self.build_part("enc", lambda: GaussianEncoder(info.shape, cfg.latent_dim, spec))
        self.dec = self.build_part("dec", lambda: Decoder(info.shape, cfg.latent_dim, spec))
        self.check_parts_used()

    def groups(self):
        return {"enc": self.enc, "dec": self.dec}

    def phases(self):
        return [Phase("train", (Step("vae", ("enc", "dec"), self.vae_loss),))]

    def vae_loss(self, batch: Batch) -> StepOutput:
        recon, kl, _ = elbo_terms(self, batch.x)
        loss = (recon + self.weight("kl_weight", batch) * kl).mean()
        return StepOutput(loss, {"loss": loss.detach(), "recon": recon.mean().detach(),
                                 "kl": kl.mean().detach()})

    def _negative_elbo(self, x):
        recon, kl, _ = elbo_terms(self, x)
        return recon + kl

    def _log_likelihood(self, x, k, chunk: int = 100):
        """Importance-weighted estimate of log p(x) (Burda et al. 2016)."""
        mu, logvar = self.enc(x)
        return importance_weighted(self, x, mu, logvar, k, chunk, lambda z, n: self.dec(z))
