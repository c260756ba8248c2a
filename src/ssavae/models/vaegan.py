"""VAE-GAN (Larsen et al. 2016, "Autoencoding beyond pixels").

Generative story: a VAE whose likelihood is measured in the feature space of a discriminator::

    p(z) = N(0, I);  x_tilde = Dec(z), z ~ q(z|x);  x_p = Dec(z_p), z_p ~ p(z)
    L_prior = KL(q(z|x) || N(0, I))
    L_llike = 1/2 || Dis_l(x) - Dis_l(x_tilde) ||^2     (summed over layer l's units: a Gaussian
                                                          observation model on Dis_l, unit variance)
    L_GAN   = log Dis(x) + log(1 - Dis(x_tilde)) + log(1 - Dis(x_p))

Three updates per batch, each on its own parameters (Larsen's Algorithm 1)::

    Enc <- kl_weight * L_prior + L_llike           (through Dec and Dis; never a GAN gradient)
    Dec <- gamma_dec * L_llike + L_GAN_gen          (non-saturating, both kinds of fake; through Dis)
    Dis <- L_GAN_dis                                (never the L_llike gradient)

The encoder update leaves z and Dis_l(x) (detached) for the decoder update, which leaves its
fakes for the discriminator update: one encoder pass and one decoder pass per batch for codes and
fakes. With ``equilibrium`` on, the discriminator's costs on this batch's reals and fakes gate
the updates (Larsen's code: threshold 0.68, margin 0.35): a discriminator far ahead skips its
update, one far behind takes the GAN term away from the decoder (``models/adversarial.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .. import losses
from ..nets import Decoder, Discriminator, GaussianEncoder, Upsample
from ..registry import register
from .adversarial import critic_pass, equilibrium, fakes_for_critic, hand_fakes
from .base import Batch, GenerativeModel, ModelConfig, Phase, Step, StepOutput
from ..fields import opt


@dataclass
class VAEGANConfig(ModelConfig):
    latent_dim: int = opt(20, "")
    upsample: Upsample = opt("resize", "")
    kl_weight: float = opt(0.1, "defaults chosen on a validation split (docs/hybrids.md): Larsen's own settings (kl 1, "
                                "gamma 0.01 or 1, equilibrium gate on, no spectral norm) collapse on Fashion-MNIST "
                                "weight of L_prior in the encoder's loss (schedulable)", ge=0)
    gamma_dec: float = opt(1.0, "weight of L_llike against the GAN term in the decoder's loss", ge=0)
    feature_layer: Optional[int] = opt(None, "Dis layer l (index of its hidden layers); null: the last conv")
    disc_spectral_norm: bool = opt(True, "Larsen's discriminator has none")
    equilibrium: bool = opt(False, "Larsen's gate on the discriminator's costs")
    equilibrium_threshold: float = opt(0.68, "Larsen's equilibrium gate: the critic pauses when both its costs are "
                                             "below threshold - margin")
    equilibrium_margin: float = opt(0.35, "the gate's margin: the generator loses its GAN term when a critic cost "
                                          "exceeds threshold + margin", ge=0)



@register("vaegan")
class VAEGAN(GenerativeModel):
    """VAE-GAN (Larsen et al. 2016): a VAE whose reconstruction error is measured by a GAN's
    discriminator features, and whose decoder is also that GAN's generator."""


    Config = VAEGANConfig
    fit_prior_after = "train"

    def __init__(self, cfg: VAEGANConfig, info, parts=None):
        super().__init__(cfg, info, parts)
        spec = cfg.net_spec()
        self.enc = self.build_part("enc", lambda: GaussianEncoder(info.shape, cfg.latent_dim, spec))
        self.dec = self.build_part("dec", lambda: Decoder(info.shape, cfg.latent_dim, spec))
        self.disc = self.build_part("disc", lambda: Discriminator(
            info.shape, spec, spectral_norm=cfg.disc_spectral_norm))
        self.check_parts_used()
        n = self.disc.trunk.n_features
        resolved = spec.resolve(info.shape)
        default = len(resolved.channels) - 1 if resolved.arch == "conv" else n - 2
        self.feature_layer = cfg.feature_layer if cfg.feature_layer is not None else max(default, 0)
        if not 0 <= self.feature_layer < n:
            raise ValueError(f"model.feature_layer must index the discriminator's {n} hidden "
                             f"layers (0..{n - 1}), got {cfg.feature_layer}")

    def groups(self):
        return {"enc": self.enc, "dec": self.dec, "disc": self.disc}

    def phases(self):
        return [Phase("train", (Step("enc", ("enc",), self.enc_loss, through=("dec", "disc")),
                                Step("dec", ("dec",), self.dec_loss, through=("disc",)),
                                Step("disc", ("disc",), self.disc_loss)))]

    def llike(self, real_feats: torch.Tensor, fake_feats: torch.Tensor) -> torch.Tensor:
        """L_llike per example (B,): half the squared distance of Dis_l's activations."""
        return 0.5 * losses.squared_error(fake_feats, real_feats, "sum")

    def enc_loss(self, batch: Batch) -> StepOutput:
        x = batch.x
        mu, logvar = self.enc(x)  # (B, latent_dim) each
        z = losses.reparameterize(mu, logvar)
        real_logit, _, feats = critic_pass(self.disc, x, [self.to_data_range(self.dec(z))])
        h = feats[self.feature_layer]  # (2B, ...): reals, then reconstructions
        n = len(x)
        target = h[:n].detach()  # the encoder's loss does not move Dis_l(x)
        llike, kl = self.llike(target, h[n:]), losses.gaussian_kl(mu, logvar)
        batch.shared.update(z=z.detach(), real_feats=target, real_logit=real_logit.detach())
        loss = (self.weight("kl_weight", batch) * kl + llike).mean()
        return StepOutput(loss, {"loss": loss.detach(), "kl": kl.mean().detach(),
                                 "llike": llike.mean().detach()})

    def _real_terms(self, batch: Batch):
        """z, Dis_l(x) and Dis(x)'s logit from the encoder update of this batch, else computed."""
        if "z" in batch.shared:
            s = batch.shared
            return s.pop("z"), s.pop("real_feats"), s.pop("real_logit")
        with torch.no_grad():
            mu, logvar = self.enc(batch.x)
            logit, feats = self.disc(batch.x)
            return losses.reparameterize(mu, logvar), feats[self.feature_layer], logit

    def dec_loss(self, batch: Batch) -> StepOutput:
        c = self.cfg
        z, real_feats, real_logit = self._real_terms(batch)
        n = len(z)
        z_p = torch.randn_like(z)  # p(z) = N(0, I) (model.sampler only changes sample())
        fakes = self.to_data_range(self.dec(torch.cat([z, z_p])))  # (2B, *shape)
        fake_logits, feats = self.disc(fakes)
        llike = self.llike(real_feats, feats[self.feature_layer][:n])
        gan = losses.gan_g_loss(fake_logits).view(2, n).mean(0)  # (B,): both kinds of fake
        train_dis, train_gen = True, True
        if c.equilibrium:
            train_dis, train_gen = equilibrium(real_logit, fake_logits, c.equilibrium_threshold,
                                               c.equilibrium_margin)
        batch.shared["train_dis"] = train_dis
        hand_fakes(batch, list(fakes.split(n)))
        loss = (self.weight("gamma_dec", batch) * llike + float(train_gen) * gan).mean()
        return StepOutput(loss, {"loss": loss.detach(), "llike": llike.mean().detach(),
                                 "gan": gan.mean().detach(), "gan_on": torch.tensor(float(train_gen))})

    def disc_loss(self, batch: Batch) -> StepOutput:
        x = batch.x
        train = batch.shared.pop("train_dis", True)

        def decode():  # no decoder update ran on this batch
            mu, logvar = self.enc(x)
            z = losses.reparameterize(mu, logvar)
            return [self.to_data_range(self.dec(c)) for c in (z, torch.randn_like(z))]

        real_logit, fake_logits, _ = critic_pass(self.disc, x, fakes_for_critic(batch, decode))
        d = torch.stack([losses.gan_d_loss(real_logit, f) for f in fake_logits]).mean(0)
        loss = d.mean()
        return StepOutput(loss, {"d_loss": loss.detach(), "d_real": torch.sigmoid(real_logit).mean().detach(),
                                 "d_fake": torch.sigmoid(torch.cat(fake_logits)).mean().detach(),
                                 "d_on": torch.tensor(float(train))}, skip=not train)
