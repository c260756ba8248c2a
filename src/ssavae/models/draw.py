"""DRAW (Gregor et al. 2015; the generative-models poster): ``draw``,
``draw_cond`` and ``draw_gan``.

A recurrent VAE that draws an image over T steps. With canvas c_0 = 0 and decoder state
h^dec_0 = 0, for t = 1..T::

    x^_t  = x - mean(c_{t-1})                               the error image
    r_t   = read(x, x^_t, h^dec_{t-1})                      Gaussian N x N glimpses, or both whole
    h^enc_t = LSTM_enc(h^enc_{t-1}, [r_t, h^dec_{t-1}])
    z_t   ~ q(z_t | h^enc_t) = N(mu_t, diag sigma_t^2)
    h^dec_t = LSTM_dec(h^dec_{t-1}, z_t)
    c_t   = c_{t-1} + write(h^dec_t)                        a Gaussian N x N patch, or a whole image

    L(x) = -log p(x | c_T) + kl_weight * sum_t KL(q(z_t | .) || N(0, I))

Generation runs the decoder alone with z_t ~ N(0, I). Codes (``encode``) are the posterior means
of z_1..z_T concatenated, (B, T * latent_dim); ``decode`` reads them back.

- ``draw_cond``: the label's one-hot is an extra input to both LSTMs at every step.
- ``draw_gan``: a real/fake critic on the final canvas of prior draws; after the ELBO step (which
  trains reader, encoder and writer together: the reader is placed by the decoder's state, so the
  two halves cannot be separated without running the recurrence twice) the writer takes its
  own step on the generator term ``-log D(c_T)`` through the critic, then the critic its step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch

from .. import losses
from ..nets import Discriminator, DRAWDecoder, DRAWEncoder, StandardNormal
from ..registry import register
from .adversarial import critic_pass, fakes_for_critic, hand_fakes
from .base import Batch, GenerativeModel, ModelConfig, Phase, Step, StepOutput
from ..fields import opt


@dataclass
class DRAWConfig(ModelConfig):
    latent_dim: int = opt(10, "z_t, per step")
    steps: int = opt(16, "T", ge=1)
    rnn_hidden: int = opt(256, "each LSTM", ge=1)
    attention: Literal["auto", "gaussian", "none"] = opt("none", "none: read and write whole images; chosen on a "
                                                                 "validation split (docs/m2_draw.md: at T = 16 the 5 x "
                                                                 "5 write patches cannot cover the image, 242.6 "
                                                                 "against 265.9 nats); auto: gaussian for images")
    read_n: int = opt(2, "the reader's window (Gregor et al. on MNIST: 2 x 2 read, 5 x 5 write)", ge=1)
    write_n: int = opt(5, "the writer's window (N x N)", ge=1)
    kl_weight: float = opt(1.0, "1 = the ELBO (schedulable)")

    def validate(self) -> None:
        super().validate()
        if self.sampler != "prior":
            raise ValueError("draw samples z_1..z_T from N(0, I): leave model.sampler at 'prior'")


@register("draw")
class DRAW(GenerativeModel):
    """Deep Recurrent Attentive Writer: a recurrent VAE writing to a canvas over T steps."""

    tiny = {"model": {"latent_dim": 3, "steps": 3, "rnn_hidden": 16}}

    Config = DRAWConfig
    has_likelihood = True
    sequential = True

    def __init__(self, cfg: DRAWConfig, info, parts=None):
        super().__init__(cfg, info, parts)
        attend = cfg.attention == "gaussian" or (cfg.attention == "auto" and len(info.shape) == 3)
        if attend and len(info.shape) != 3:
            raise ValueError(f"DRAW's Gaussian attention reads images; this data has shape "
                             f"{tuple(info.shape)}: set model.attention none")
        cond = info.num_classes if self.conditional else 0
        self.enc = self.build_part("enc", lambda: DRAWEncoder(
            info.shape, cfg.latent_dim, cfg.rnn_hidden, cfg.read_n if attend else None, cond))
        self.dec = self.build_part("dec", lambda: DRAWDecoder(
            info.shape, cfg.latent_dim, cfg.rnn_hidden, cfg.write_n if attend else None, cond))
        self.prior = StandardNormal(self.code_dim)
        self.build_extra()
        self.check_parts_used()

    def build_extra(self) -> None:
        """Parts a variant adds (``draw_gan``: its critic)."""

    def groups(self):
        return {"enc": self.enc, "dec": self.dec}

    def phases(self):
        return [Phase("train", (Step("draw", ("enc", "dec"), self.draw_loss),))]

    @property
    def code_dim(self) -> int:
        return self.cfg.steps * self.cfg.latent_dim

    # ------------------------------------------------------------------ the recurrence
    def _zeros(self, b: int, device):
        h = torch.zeros(b, self.cfg.rnn_hidden, device=device)
        return h, (h, h)

    def _cond(self, y):
        return self.one_hot(y) if self.conditional and y is not None else None

    def infer(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, noise: bool = True):
        """The encoder reads x over T steps: (final canvas, before the output function
        (B, *shape); sum_t KL (B,); sum_t log p(z_t) - log q(z_t | .) (B,); codes (B, T*latent))."""
        cond = self._cond(y)
        b = len(x)
        h_dec, dec_state = self._zeros(b, x.device)
        _, enc_state = self._zeros(b, x.device)
        canvas = torch.zeros_like(x)
        kl = log_ratio = x.new_zeros(b)
        codes = []
        for _ in range(self.cfg.steps):
            x_hat = x - self.to_data_range(canvas)
            mu, logvar, enc_state = self.enc(x, x_hat, h_dec, enc_state, cond)
            z = losses.reparameterize(mu, logvar) if noise else mu
            kl = kl + losses.gaussian_kl(mu, logvar)
            log_ratio = log_ratio + losses.log_normal(z) - losses.log_normal(z, mu, logvar)
            delta, dec_state = self.dec(z, dec_state, cond)
            h_dec = dec_state[0]
            canvas = canvas + delta
            codes.append(z)
        return canvas, kl, log_ratio, torch.cat(codes, 1)

    def generate(self, codes: torch.Tensor, y: Optional[torch.Tensor] = None,
                 keep: bool = False):
        """The decoder alone from z_1..z_T (B, T*latent): the final canvas (B, *shape), and with
        ``keep`` every intermediate canvas (T, B, *shape)."""
        cond = self._cond(y)
        _, state = self._zeros(len(codes), codes.device)
        canvas = torch.zeros(len(codes), *self.info.shape, device=codes.device)
        kept = []
        for z in codes.split(self.cfg.latent_dim, 1):
            delta, state = self.dec(z, state, cond)
            canvas = canvas + delta
            if keep:
                kept.append(canvas)
        return (canvas, torch.stack(kept)) if keep else canvas

    # ------------------------------------------------------------------ the loss
    def elbo_terms(self, batch_x: torch.Tensor, y: Optional[torch.Tensor]):
        canvas, kl, _, _ = self.infer(batch_x, y)
        return self.nll(canvas, batch_x), kl

    def draw_loss(self, batch: Batch) -> StepOutput:
        x, y = self.training_examples(batch)
        recon, kl = self.elbo_terms(x, y)
        loss = (recon + self.weight("kl_weight", batch) * kl).mean()
        return StepOutput(loss, {"loss": loss.detach(), "recon": recon.mean().detach(),
                                 "kl": kl.mean().detach()})

    def training_examples(self, batch: Batch):
        """What the ELBO reads: the mixed batch (``draw_cond``: its labeled examples)."""
        return batch.x, None

    # ------------------------------------------------------------------ inference
    def _encode(self, x, y):
        return self.infer(x, y, noise=False)[3]

    def _decode(self, code, y):
        return self.generate(code, y)

    def _negative_elbo(self, x):
        recon, kl = self.elbo_terms(x, None)
        return recon + kl

    def _log_likelihood(self, x, k, chunk: int = 50):
        """Importance-weighted log p(x) (Burda et al. 2016): each sample one pass of the
        recurrence with its own z_1..z_T ~ q, log w = log p(x | c_T) + sum_t log p(z_t) / q(z_t | .)."""
        log_w = []
        for start in range(0, k, chunk):
            n = min(chunk, k - start)
            xf = x.expand(n, *x.shape).reshape(-1, *x.shape[1:])
            canvas, _, log_ratio, _ = self.infer(xf)
            log_w.append((log_ratio - self.nll(canvas, xf)).view(n, -1))
        return losses.iwae_bound(torch.cat(log_w))

    @torch.no_grad()
    def canvas_steps(self, n: int, y: Optional[torch.Tensor] = None,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """n prior draws, every canvas on the way: (T, n, *shape) in the data's range."""
        y = self._check_y(y, "canvas_steps", n, self.conditional)
        codes = self.sample_codes(n, y, generator)
        return self.to_data_range(self.generate(codes, y, keep=True)[1])


@register("draw_cond")
class ConditionalDRAW(DRAW):
    """DRAW with the label's one-hot an input to both LSTMs at every step; trained on the
    labeled examples (the mixed batch's labeled rows and the labeled stream)."""

    tiny = {"model": {"latent_dim": 3, "steps": 3, "rnn_hidden": 16}, "data": {"labels_per_class": 8}}

    conditional = True

    def phases(self):
        return [Phase("train", (Step("draw", ("enc", "dec"), self.draw_loss, data="labeled"),))]

    def training_examples(self, batch: Batch):
        return self.labeled_examples(batch)

    has_likelihood = False  # its bound is of p(x | y)


@dataclass
class DRAWGANConfig(DRAWConfig):
    disc_spectral_norm: bool = opt(True, "spectral normalization in the critic")


@register("draw_gan")
class DRAWGAN(DRAW):
    """DRAW plus a real/fake critic on the final canvas of prior draws."""


    Config = DRAWGANConfig

    def build_extra(self) -> None:
        self.disc = self.build_part("disc", lambda: Discriminator(
            self.info.shape, self.cfg.net_spec(), spectral_norm=self.cfg.disc_spectral_norm))

    def groups(self):
        return {**super().groups(), "disc": self.disc}

    def phases(self):
        return [Phase("train", (Step("draw", ("enc", "dec"), self.draw_loss),
                                Step("gen", ("dec",), self.gen_loss, through=("disc",)),
                                Step("disc", ("disc",), self.disc_loss)))]

    def prior_canvas(self, n: int, device) -> torch.Tensor:
        return self.to_data_range(self.generate(self.prior.sample(n).to(device)))

    def gen_loss(self, batch: Batch) -> StepOutput:
        x_p = self.prior_canvas(len(batch.x), batch.x.device)
        adv = losses.gan_g_loss(self.disc(x_p)[0]).mean()
        hand_fakes(batch, [x_p])
        return StepOutput(adv, {"adv": adv.detach()})

    def disc_loss(self, batch: Batch) -> StepOutput:
        fakes = fakes_for_critic(batch, lambda: [self.prior_canvas(len(batch.x), batch.x.device)])
        real, (fake,), _ = critic_pass(self.disc, batch.x, fakes)
        loss = losses.gan_d_loss(real, fake).mean()
        return StepOutput(loss, {"d_loss": loss.detach(), "d_real": torch.sigmoid(real).mean().detach(),
                                 "d_fake": torch.sigmoid(fake).mean().detach()})
