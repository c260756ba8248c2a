"""Adversarial autoencoders (Makhzani et al. 2016): the shared core, the unsupervised ``aae``
(with optional label regularization) and ``aae_supervised``.

An autoencoder whose aggregate code distribution q(z) is pushed onto a chosen prior p(z) by a
discriminator on codes instead of a KL term. Every batch runs three updates::

    recon (Enc, Dec):  nll(x | Dec(z)),  z = Enc(x)
    disc  (Dis):       -log Dis([z_p, c]) - log(1 - Dis([z.detach(), c])),  z_p ~ p(z)
    gen   (Enc):       -log Dis([Enc(x), c])                                (through Dis)

The critic's fakes z are the reconstruction step's codes, detached (``critic_codes: recon``, the
default: one encoder pass fewer per batch), or x encoded again after the reconstruction update
(``fresh``: Makhzani's schedule).

``prior``: ``normal``, ``mixture`` (one Gaussian per class on a circle) or ``swiss-roll``.
``encoder``: ``deterministic`` (Makhzani's default) or ``gaussian`` (z = mu + sigma * eps).
``label_regularization``: the discriminator also reads c, a one-hot of K + 1 slots: slot k for an
image labeled k, whose prior sample then comes from mode k; slot K ("unknown") for an unlabeled
image, whose prior sample comes from any mode. The codes of class k are so pushed onto mode k.

``aae_supervised`` hands the label to the decoder, Dec(z, onehot(y)), so z holds only the style:
a row of one z decoded with every class is the paper's disentangling figure
(``figures/style_transfer.png``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn.functional as F

from .. import losses
from ..nets import Decoder, DeterministicEncoder, Discriminator, GaussianEncoder, NetSpec, Upsample
from ..nets.priors import PRIORS, make_prior
from ..registry import register
from .base import Batch, GenerativeModel, ModelConfig, Phase, Step, StepOutput
from ..fields import opt

Prior = Literal["normal", "mixture", "swiss-roll"]


def code_critic(d_in: int, hidden) -> Discriminator:
    """An MLP critic of (B, d_in) codes with the dense widths ``hidden`` (Makhzani: 2 x 1000)."""
    h = tuple(hidden)
    return Discriminator((d_in,), NetSpec("mlp", None, h[-1], h[:-1]))


@dataclass
class AAEConfig(ModelConfig):
    latent_dim: int = opt(8, "")
    upsample: Upsample = opt("resize", "")
    prior: Prior = opt("normal", "the distribution the codes are pushed onto")
    encoder: Literal["deterministic", "gaussian"] = opt(
        "deterministic", "deterministic codes (Makhzani's default) or a Gaussian q(z|x) sampled")
    label_regularization: bool = opt(False, "Dis reads the label (K + 1 slots); mode k for class k")
    disc_hidden: tuple[int, ...] = opt((1000, 1000), "the code discriminator's MLP (Makhzani: 2 x 1000)")
    critic_codes: Literal["fresh", "recon"] = opt("recon", "the codes the critic sees as fakes: \"recon\" (the "
                                                           "reconstruction step's own, detached: one encoder pass "
                                                           "fewer per batch, codes one update old; on a validation "
                                                           "split as good, 3 seeds, docs/aae.md) or \"fresh\" (encoded "
                                                           "again after the reconstruction update, Makhzani's "
                                                           "schedule)")

    def validate(self) -> None:
        super().validate()
        if self.prior not in PRIORS:
            raise ValueError(f"model.prior must be one of {', '.join(PRIORS)}, got {self.prior!r}")
        if not self.disc_hidden:
            raise ValueError("model.disc_hidden needs at least one width")


class AAECore(GenerativeModel):
    """What every adversarial autoencoder shares: a reconstruction step, then per batch one
    critic step for each regularized code and one step in which the encoder fools them all.

    A family names its regularized codes and their critics' groups in ``critics`` and says how
    to compute them (``codes``), what the critic calls real (``real_codes``) and how a critic
    reads a code (``critic``). The fakes of the critic steps are computed once per batch, after
    the reconstruction step's update, and handed from one critic step to the next (detached).
    """

    def critics(self) -> dict[str, str]:
        """Regularized code -> the group of its critic (one critic step each, in this order)."""
        raise NotImplementedError

    def codes(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The regularized codes of x, differentiable with respect to the encoder."""
        raise NotImplementedError

    def real_codes(self, name: str, y: torch.Tensor) -> torch.Tensor:
        """One draw of the imposed distribution of code ``name`` per example (labels y)."""
        raise NotImplementedError

    def critic(self, name: str, code: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The logit (B, 1) of code ``name``'s critic."""
        raise NotImplementedError

    def phases(self):
        return [Phase("train", (self.recon_step(), *self.critic_steps(), *self.extra_steps()))]

    def recon_step(self) -> Step:
        return Step("recon", ("enc", "dec"), self.recon_loss)

    def critic_steps(self) -> tuple[Step, ...]:
        crit = self.critics()
        disc = tuple(Step(group, (group,), functools.partial(self.disc_loss, name=name))
                     for name, group in crit.items())
        return (*disc, Step("gen", ("enc",), self.gen_loss, through=tuple(crit.values())))

    def extra_steps(self) -> tuple[Step, ...]:
        return ()

    def code_penalties(self, codes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Named scalar terms of this batch's codes (with their graph) that the encoder's ``gen``
        step adds to fooling the critics; none here."""
        return {}

    def fakes(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The batch's codes for the critics (detached): computed by the first critic step, unless
        the reconstruction step handed over its own (``aae``'s ``critic_codes: recon``, its default)."""
        if "codes" not in batch.shared:
            with torch.no_grad():
                batch.shared["codes"] = {k: v.detach() for k, v in self.codes(batch.x).items()}
        return batch.shared["codes"]

    def disc_loss(self, batch: Batch, name: str) -> StepOutput:
        real = self.critic(name, self.real_codes(name, batch.y), batch.y)
        fake = self.critic(name, self.fakes(batch)[name], batch.y)
        loss = losses.gan_d_loss(real, fake).mean()
        return StepOutput(loss, {"d_loss": loss.detach(), "d_real": torch.sigmoid(real).mean().detach(),
                                 "d_fake": torch.sigmoid(fake).mean().detach()})

    def gen_loss(self, batch: Batch) -> StepOutput:
        codes = self.codes(batch.x)
        terms = {name: losses.gan_g_loss(self.critic(name, codes[name], batch.y)).mean()
                 for name in self.critics()}
        terms.update(self.code_penalties(codes))
        loss = sum(terms.values())
        logs = {"g_loss": loss.detach()}
        if len(terms) > 1:
            logs.update({f"g_loss_{name}": t.detach() for name, t in terms.items()})
        return StepOutput(loss, logs)


@register("aae")
class AAE(AAECore):
    """Adversarial autoencoder: reconstruction, then a discriminator on codes against the prior."""

    tiny = {"model": {"disc_hidden": [32]}}

    Config = AAEConfig
    label_to_decoder = False  # aae_supervised: Dec(z, onehot(y))

    def __init__(self, cfg: AAEConfig, info, parts=None):
        super().__init__(cfg, info, parts)
        spec, k = cfg.net_spec(), info.num_classes
        self.target = make_prior(cfg.prior, cfg.latent_dim, k)  # what Dis calls real
        if cfg.sampler == "prior":
            self.prior = self.target  # sample() draws from the imposed prior
        # label-regularized codes of class y sit on mode y: sample(n, y) draws there
        self.class_sampling = cfg.label_regularization and self.target.num_modes > 0
        enc_cls = DeterministicEncoder if cfg.encoder == "deterministic" else GaussianEncoder
        self.enc = self.build_part("enc", lambda: enc_cls(info.shape, cfg.latent_dim, spec))
        self.dec = self.build_part("dec", lambda: Decoder(
            info.shape, cfg.latent_dim, spec, cond_dim=k if self.label_to_decoder else 0))
        # the label's one-hot joins the code at the critic's input, as in the paper (joining it
        # after the first layer left the critic blind to it on synthetic data: modes at chance)
        d_in = cfg.latent_dim + (k + 1 if cfg.label_regularization else 0)
        self.disc = self.build_part("disc", lambda: code_critic(d_in, cfg.disc_hidden))
        self.check_parts_used()

    def groups(self):
        return {"enc": self.enc, "dec": self.dec, "disc": self.disc}

    def critics(self):
        return {"z": "disc"}

    # ------------------------------------------------------------------ pieces
    def code(self, x: torch.Tensor) -> torch.Tensor:
        """z = Enc(x): the deterministic code, or one draw of the Gaussian encoder's."""
        if self.cfg.encoder == "deterministic":
            return self.enc(x)
        return losses.reparameterize(*self.enc(x))

    def codes(self, x):
        return {"z": self.code(x)}

    def critic(self, name, code, y):
        """Dis's logit (B, 1) for codes z, with the label one-hot at its input if regularized."""
        c = self.critic_condition(y)
        return self.disc(code if c is None else torch.cat([code, c], 1))[0]

    def critic_condition(self, y: torch.Tensor) -> Optional[torch.Tensor]:
        """Label regularization's one-hot of K + 1 slots (slot K: unlabeled), else None."""
        if not self.cfg.label_regularization:
            return None
        return F.one_hot(torch.where(y >= 0, y, self.num_classes), self.num_classes + 1).float()

    def real_codes(self, name, y):
        """One prior sample per example: from mode y where labels regularize, else anywhere."""
        if self.cfg.label_regularization and self.target.num_modes:
            modes = torch.randint(self.target.num_modes, y.shape, device=y.device)
            return self.target.sample(len(y), torch.where(y >= 0, y, modes))
        return self.target.sample(len(y))

    # ------------------------------------------------------------------ losses
    def recon_loss(self, batch: Batch) -> StepOutput:
        z = self.code(batch.x)
        if self.cfg.critic_codes == "recon":  # the critic steps take these (AAECore.fakes)
            batch.shared["codes"] = {"z": z.detach()}
        recon = self.nll(self.dec(z), batch.x)
        loss = recon.mean()
        return StepOutput(loss, {"loss": loss.detach()})

    def _encode(self, x, y):
        out = self.enc(x)
        return out if self.cfg.encoder == "deterministic" else out[0]  # the mean

    def _decode(self, z, y):
        return self.dec(z, self.one_hot(y) if self.label_to_decoder else None)


@dataclass
class SupervisedAAEConfig(AAEConfig):
    """The fields of ``aae`` (its own class: a run's config names its family), but the critic
    always encodes afresh: the reconstruction step reads other images (the labeled ones)."""

    critic_codes: Literal["fresh", "recon"] = opt("fresh", "")

    def validate(self) -> None:
        super().validate()
        if self.critic_codes != "fresh":  # its reconstruction step encodes other images
            raise ValueError("model.critic_codes must be 'fresh' for aae_supervised: its reconstruction step "
                             "reads the labeled examples, not the batch its critic sees")


@register("aae_supervised")
class SupervisedAAE(AAE):
    """AAE with the label given to the decoder: z learns the style, y the class (Makhzani 5)."""

    tiny = {"model": {"disc_hidden": [32]}, "data": {"labels_per_class": 8}}

    Config = SupervisedAAEConfig
    conditional = True
    label_to_decoder = True

    def recon_step(self) -> Step:
        return Step("recon", ("enc", "dec"), self.recon_loss, data="labeled")

    def recon_loss(self, batch: Batch) -> StepOutput:
        """On labeled examples: the mixed batch's labeled rows and the labeled stream's batch."""
        x, y = self.labeled_examples(batch)
        recon = self.nll(self.dec(self.code(x), self.one_hot(y)), x)
        loss = recon.mean()
        return StepOutput(loss, {"loss": loss.detach()})
