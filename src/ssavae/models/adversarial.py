"""Pieces the adversarial families share (SSAVAE's step 2, VAE-GAN, CVAE+CGAN, M2+GAN): how a
discriminator update gets its fakes, one critic pass over reals and fakes, the equilibrium gate
of VAE-GAN and the (K+1)-way conditional critic. The GAN losses themselves live in
``losses.py``.

The generator's update of a batch runs before the discriminator's and leaves its fakes, detached,
in ``batch.shared["fakes"]``: the discriminator then sees the generator's images from before this
batch's generator update (the same weights it would decode them with) without decoding twice.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .. import losses
from ..nets import Discriminator
from .base import Batch, StepOutput


def hand_fakes(batch: Batch, fakes: list[torch.Tensor]) -> None:
    """Leave the generator's fakes (detached) for the discriminator update of this batch."""
    batch.shared["fakes"] = [f.detach() for f in fakes]


def fakes_for_critic(batch: Batch, decode: Callable[[], list[torch.Tensor]]) -> list[torch.Tensor]:
    """The fakes the generator update left on this batch (once), else ``decode()`` without a
    graph (a discriminator update run on its own)."""
    fakes = batch.shared.pop("fakes", None)
    if fakes is None:
        with torch.no_grad():
            fakes = decode()
    return fakes


def critic_pass(disc, real: torch.Tensor, fakes: list[torch.Tensor], **cond):
    """One discriminator pass over reals and every kind of fake: (real logits, [fake logits per
    kind], the hidden activations of all of them in that order)."""
    logits, feats = disc(torch.cat([real, *fakes]), **cond)
    parts = logits.split([len(real)] + [len(f) for f in fakes])
    return parts[0], list(parts[1:]), feats


def equilibrium(real_logits: torch.Tensor, fake_logits: torch.Tensor, threshold: float,
                margin: float) -> tuple[bool, bool]:
    """Larsen et al.'s gate, from the discriminator's mean cross-entropies on reals and fakes:
    (train the discriminator, let the generator have its GAN term). A discriminator far ahead
    (either cost below threshold - margin) pauses; one far behind (either above threshold +
    margin) takes the GAN term away from the generator while it catches up; never both off."""
    real_cost = float(F.softplus(-real_logits.detach()).mean())
    fake_cost = float(F.softplus(fake_logits.detach()).mean())
    train_dis = min(real_cost, fake_cost) >= threshold - margin
    train_gen = max(real_cost, fake_cost) <= threshold + margin
    if not (train_dis or train_gen):
        return True, True
    return train_dis, train_gen



class ClassCritic:
    """The (K+1)-way conditional critic (Salimans et al. 2016) of ``cvae_cgan`` and ``m2_gan``,
    a mixin for families with a conditional decoder ``dec(z, onehot(y))`` and a
    ``disc_spectral_norm`` field: outputs 0..K-1 mean "real, class k", output K "fake".

    The generator's update calls ``generator_term`` on its fakes of classes ``y_p`` (through the
    critic) and leaves them for ``disc_loss``, the critic's update: CE to its class for a
    labeled real image, "any real class" for an unlabeled one, "fake" for a fake."""

    def build_critic(self) -> None:
        self.disc = self.build_part("disc", lambda: Discriminator(
            self.info.shape, self.cfg.net_spec(), n_out=self.num_classes + 1,
            spectral_norm=self.cfg.disc_spectral_norm))

    def generator_term(self, batch: Batch, x_p: torch.Tensor, y_p: torch.Tensor) -> torch.Tensor:
        """Mean CE(Dis(x_p), y_p): fakes of class y_p must pass for real images of that class."""
        hand_fakes(batch, [x_p])
        return losses.class_gan_g_loss(self.disc(x_p)[0], y_p).mean()

    def disc_loss(self, batch: Batch) -> StepOutput:
        x, y = batch.x, batch.y

        def decode():  # no generator update ran on this batch
            y_p = torch.randint(0, self.num_classes, (len(x),), device=x.device)
            z_p = torch.randn(len(x), self.cfg.latent_dim, device=x.device)
            return [self.to_data_range(self.dec(z_p, self.one_hot(y_p)))]

        real_logits, (fake_logits,), _ = critic_pass(self.disc, x, fakes_for_critic(batch, decode))
        loss = losses.class_gan_d_loss(real_logits, y, fake_logits).mean()
        p_fake = F.softmax(torch.cat([real_logits, fake_logits]), -1)[:, -1]
        return StepOutput(loss, {"d_loss": loss.detach(), "d_real": 1 - p_fake[:len(x)].mean().detach(),
                                 "d_fake": 1 - p_fake[len(x):].mean().detach()})
