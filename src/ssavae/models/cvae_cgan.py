"""CVAE + CGAN (the generative-models poster's hybrid).

A label-conditional VAE (``cvae``, section 3) whose decoder is also the generator of a
conditional GAN with a (K+1)-way discriminator (Salimans et al. 2016): outputs 0..K-1 mean
"real, class k", output K means "fake"::

    q(z | x, y), p(x | z, y) as in the CVAE;   x_p = Dec(z_p, y_p), z_p ~ N(0, I), y_p ~ U{0..K-1}
    Enc <- nll(x | Dec(z, y)) + kl_weight * KL(q(z|x,y) || N(0, I))      (labeled; through Dec)
    Dec <- nll(x | Dec(z, y)) + adv_weight * CE(Dis(x_p), y_p)           (labeled; through Dis)
    Dis <- CE(Dis(x), y) for labeled reals, -log sum_{k<K} p_k(x) for unlabeled ones,
           CE(Dis(x_p.detach()), K) for the fakes                         (the mixed batch)

The encoder never gets the adversarial gradient and the discriminator never the
reconstruction's. The discriminator learns from every real image, labeled or not, so it is also
a semi-supervised classifier of real images: ``predict_proba(x)`` is its softmax over the K real
classes. The encoder update leaves its codes for the decoder update, which leaves its fakes for
the discriminator update (one encoder and one decoder pass per batch).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import losses
from ..registry import register
from .adversarial import ClassCritic
from .base import Batch, Phase, Step, StepOutput
from .cvae import CVAE, CVAEConfig
from ..fields import opt


@dataclass
class CVAECGANConfig(CVAEConfig):
    adv_weight: float = opt(1.0, "weight of the (K+1)-way generator term in the decoder's loss", ge=0)
    disc_spectral_norm: bool = opt(True, "spectral normalization in the critic")



@register("cvae_cgan")
class CVAECGAN(ClassCritic, CVAE):
    """CVAE whose decoder is also a conditional GAN generator against a (K+1)-way critic."""

    Config = CVAECGANConfig
    has_classifier = True  # the critic's K real classes

    def build_networks(self) -> None:
        super().build_networks()
        self.build_critic()

    def groups(self):
        return {"enc": self.enc, "dec": self.dec, "disc": self.disc}

    def phases(self):
        return [Phase("train", (Step("enc", ("enc",), self.enc_loss, data="labeled", through=("dec",)),
                                Step("dec", ("dec",), self.dec_loss, data="labeled", through=("disc",)),
                                Step("disc", ("disc",), self.disc_loss)))]

    def enc_loss(self, batch: Batch) -> StepOutput:
        x, y = self.labeled_examples(batch)
        mu, logvar = self.enc(x, self.one_hot(y))
        z = losses.reparameterize(mu, logvar)
        recon, kl = self.nll(self.dec(z, self.one_hot(y)), x), losses.gaussian_kl(mu, logvar)
        batch.shared["z"] = z.detach()  # for the decoder update
        loss = (recon + self.weight("kl_weight", batch) * kl).mean()
        return StepOutput(loss, {"loss": loss.detach(), "recon": recon.mean().detach(),
                                 "kl": kl.mean().detach()})

    def dec_loss(self, batch: Batch) -> StepOutput:
        x, y = self.labeled_examples(batch)
        z = batch.shared.pop("z", None)
        if z is None:  # no encoder update ran on this batch
            with torch.no_grad():
                mu, logvar = self.enc(x, self.one_hot(y))
                z = losses.reparameterize(mu, logvar)
        n, b = len(x), len(batch.x)
        z_p = torch.randn(b, z.shape[1], device=z.device)  # p(z) = N(0, I)
        y_p = torch.randint(0, self.num_classes, (b,), device=z.device)
        out = self.dec(torch.cat([z, z_p]), self.one_hot(torch.cat([y, y_p])))  # one pass
        recon = self.nll(out[:n], x)  # (n,)
        x_p = self.to_data_range(out[n:])  # (b, *shape)
        adv = self.generator_term(batch, x_p, y_p)
        loss = recon.mean() + self.weight("adv_weight", batch) * adv
        return StepOutput(loss, {"loss": loss.detach(), "recon": recon.mean().detach(),
                                 "adv": adv.detach()})

    def _predict_proba(self, x):
        """p(y | x) from the critic's K real-class outputs (its fake output left out)."""
        return F.softmax(self.disc(x)[0][:, :-1], -1)
