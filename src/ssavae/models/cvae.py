"""CVAE, label-conditional (Sohn et al. 2015; the generative-models poster).

Generative story::

    p(z) = N(0, I)                                   z: (latent_dim,), independent of the label
    p(x | z, y) = Bernoulli(sigmoid(Dec(z, onehot(y))))   (or N(Dec(z, y), I) for real data)
    q(z | x, y) = N(mu(x, y), diag sigma^2(x, y))    the encoder sees the label too

Loss per labeled example::

    L(x, y) = -log p(x | z, y) + kl_weight * KL(q(z|x,y) || N(0, I)),   z ~ q(z|x,y)

Only labeled examples train it (the mixed batch's labeled rows and a batch of the labeled
stream): an unlabeled image has no y to condition on, and is not used to train some
unconditioned path instead. Since y is given to the decoder, the code is free to hold what the
label does not say (the "style"): ``decode(encode(x, y), y')`` draws x's style as class y'
(the style-transfer figure, ``figures/style_transfer.png``), and ``sample(n, y)`` draws class y.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


from ..nets import Decoder, GaussianEncoder, Upsample
from ..registry import register
from .base import Batch, GenerativeModel, ModelConfig, Phase, Step, StepOutput
from .vae import elbo_terms
from ..fields import opt


@dataclass
class CVAEConfig(ModelConfig):
    latent_dim: int = opt(20, "")
    upsample: Upsample = opt("resize", "")
    kl_weight: float = opt(1.0, "1 = the conditional ELBO (schedulable)")
    sampler: Literal["prior", "gaussian", "class-gaussian"] = opt("class-gaussian", "sample(n, y) draws z from a "
                                                                                    "Gaussian fitted to class y's "
                                                                                    "training codes (docs/hybrids.md: "
                                                                                    "88.5 % of samples of the class "
                                                                                    "asked for, against 79.4 % from "
                                                                                    "N(0, I))")


@register("cvae")
class CVAE(GenerativeModel):
    """Label-conditional VAE: Enc(x, y), Dec(z, y), N(0, I) prior, trained on labeled examples."""

    tiny = {"data": {"labels_per_class": 8}}

    Config = CVAEConfig
    conditional = True
    fit_prior_after = "train"

    def __init__(self, cfg: CVAEConfig, info, parts=None):
        super().__init__(cfg, info, parts)
        self.build_networks()
        self.check_parts_used()

    def build_networks(self) -> None:
        """Enc(x, y) and Dec(z, y), the label as a one-hot joining the dense layer / the code."""
        cfg, info = self.cfg, self.info
        spec, k = cfg.net_spec(), info.num_classes
        self.enc = self.build_part("enc", lambda: GaussianEncoder(info.shape, cfg.latent_dim, spec, cond_dim=k))
        self.dec = self.build_part("dec", lambda: Decoder(info.shape, cfg.latent_dim, spec, cond_dim=k))

    def groups(self):
        return {"enc": self.enc, "dec": self.dec}

    def phases(self):
        return [Phase("train", (Step("cvae", ("enc", "dec"), self.cvae_loss, data="labeled"),))]

    def cvae_loss(self, batch: Batch) -> StepOutput:
        x, y = self.labeled_examples(batch)
        recon, kl, _ = elbo_terms(self, x, self.one_hot(y))
        loss = (recon + self.weight("kl_weight", batch) * kl).mean()
        return StepOutput(loss, {"loss": loss.detach(), "recon": recon.mean().detach(),
                                 "kl": kl.mean().detach()})
