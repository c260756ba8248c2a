"""SSAVAE, the Semi-Supervised Adversarial VAE (Zemouri 2020).

Two training steps that never mix: step 1 shapes the latent space, step 2 trains a decoder
against it (the paper's Algorithms 1 and 2).

Step 1, the Variational Encoder Classifier (VEC)::

    q(z | x) = N(mu(x), diag sigma^2(x));   z = mu + sigma * eps
    p(y | z) = Cat(softmax(Cls(z)))                         (Cls(mu) at test time)
    L_VEC = vec_recon_weight * nll(x | Aux(z)) + kl_weight * KL(q(z|x) || N(0, I))
            + lambda_cls * CE(Cls(z), y)

KL and the auxiliary term run on the mixed batch; CE on its labeled examples plus a batch of
the labeled stream (``train.labeled_batch_size``), so the classifier learns at full strength
however few labels there are.

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
import torch.nn.functional as F

from .. import losses
from ..data.augment import strong
from ..nets import Classifier, Decoder, Discriminator, GaussianEncoder, Upsample
from ..registry import register
from .adversarial import critic_pass, fakes_for_critic, hand_fakes
from .base import Batch, Phase, Step, StepOutput
from .semisup import SemiSupervised, SemiSupervisedConfig
from ..fields import opt


AUX_WEIGHT = 0.1  # the auxiliary pixel term's default weight at latent_dim > 2 (docs/ssavae.md)


@dataclass
class SSAVAEConfig(SemiSupervisedConfig):
    latent_dim: int = opt(100, "the paper's K_z (2 for the latent maps, 100 otherwise)")
    upsample: Upsample = opt("resize", "no checkerboard (validation, results.md)")
    sampler: Literal["prior", "gaussian", "class-gaussian"] = opt("class-gaussian", "where codes lie")
    # ---- step 1: the VEC (kl_weight and lambda_cls can follow model.schedules)
    kl_weight: float = opt(0.01, "literal KL + CE collapses the code (docs/ssavae.md)", ge=0)
    lambda_cls: float = opt(1.0, "weight of the classifier's cross-entropy on the labeled stream (schedulable)", ge=0)
    cls_input: Literal["z", "mu"] = opt("z", "what Cls sees in training (always mu at test)")
    cls_hidden: tuple[int, ...] = opt((256, 256), "the classifier MLP on the code")
    vec_recon_weight: Optional[float] = opt(None, ">0 adds an auxiliary decoder with a pixel NLL term; null: "
                                                  "AUX_WEIGHT when latent_dim > 2 (instance detail for step 2's "
                                                  "decoder), 0 for 2-D maps (it wrecks their class structure)", ge=0)
    # ---- step 1 on few labels (docs/ssavae.md, docs/semisup.md): with the shared augment,
    # consistency_* (0: the paper's VEC) and graph_* fields, terms that learn from unlabeled images
    entropy_weight: float = opt(0.0, "entropy minimization of q(y|x) on unlabeled examples", ge=0)
    decoder_init: Optional[Literal["random", "aux"]] = opt(None, "step-2 decoder starts from Aux? null: if any")
    vec_epochs: Optional[int] = opt(None, "epochs of step 1; null = train.epochs")
    # ---- step 2: the decoder
    beta: float = opt(0.005, "weight of the adversarial loss L_adv in step 2's decoder loss (0: no discriminator at "
                             "all)", ge=0)
    gamma: float = opt(0.1, "weight of the latent loss L_latent = |mu_Enc(x_hat) - z|^2 in step 2's decoder loss",
                       ge=0)
    feature_layers: Optional[tuple[int, ...]] = opt(None, "encoder hidden layers (index); null = all")
    feature_weights: Optional[tuple[float, ...]] = opt(None, "w_l per chosen layer; null = all 1")
    feature_reduction: Literal["mean", "sum"] = opt("mean", "over the units of each layer")
    pixel_weight: float = opt(0.0, "optional pixel NLL added to L_rec", ge=0)
    latent_reduction: Literal["mean", "sum"] = opt("mean", "over latent dimensions")
    prior_fakes: bool = opt(True, "also show Dec(z_p), z_p ~ N(0, I), to Dis and to L_latent")
    disc_spectral_norm: bool = opt(True, "spectral normalization in the discriminator (validation)")
    decoder_epochs: Optional[int] = opt(None, "epochs of step 2; null = train.epochs")

    def __post_init__(self) -> None:
        """Resolve the latent-size dependent defaults, so a saved config shows what ran."""
        if self.vec_recon_weight is None:
            self.vec_recon_weight = AUX_WEIGHT if self.latent_dim > 2 else 0.0
        if self.decoder_init is None:
            self.decoder_init = "aux" if self.vec_recon_weight > 0 else "random"

    def validate(self) -> None:
        super().validate()
        if self.decoder_init == "aux" and self.vec_recon_weight <= 0:
            raise ValueError("model.decoder_init='aux' needs an auxiliary decoder: set "
                             "model.vec_recon_weight > 0")
        if self.feature_weights is not None and self.feature_layers is not None \
                and len(self.feature_weights) != len(self.feature_layers):
            raise ValueError("model.feature_weights needs one weight per model.feature_layers entry")


@register("ssavae")
class SSAVAE(SemiSupervised):
    """Semi-Supervised Adversarial VAE (Zemouri 2020): VEC, then an adversarial decoder."""

    tiny = {"data": {"labels_per_class": 8}}

    Config = SSAVAEConfig
    has_classifier = True
    has_latent_classifier = True
    class_sampling = True  # sample(n, y): prior draws the classifier assigns to class y
    fit_prior_after = "vec"  # model.sampler: fitted to the VEC's codes, used by step 2 and sample
    graph_phase = "vec"
    teacher_groups = ("enc", "cls")

    def __init__(self, cfg: SSAVAEConfig, info, parts=None):
        super().__init__(cfg, info, parts)
        spec = cfg.net_spec()
        self.enc = self.build_part("enc", lambda: GaussianEncoder(info.shape, cfg.latent_dim, spec))
        self.cls = self.build_part("cls", lambda: Classifier.on_codes(
            cfg.latent_dim, info.num_classes, cfg.cls_hidden))
        self.aux = self.build_part("aux", lambda: Decoder(info.shape, cfg.latent_dim, spec)) \
            if cfg.vec_recon_weight > 0 else None
        self.dec = self.build_part("dec", lambda: Decoder(info.shape, cfg.latent_dim, spec))
        self.disc = self.build_part("disc", lambda: Discriminator(
            info.shape, spec, spectral_norm=cfg.disc_spectral_norm)) if cfg.beta > 0 else None
        self.check_parts_used()
        n_layers = self.enc.trunk.n_features
        layers = cfg.feature_layers if cfg.feature_layers is not None else tuple(range(n_layers))
        if any(not 0 <= i < n_layers for i in layers):
            raise ValueError(f"model.feature_layers must index the encoder's {n_layers} hidden "
                             f"layers (0..{n_layers - 1}), got {list(layers)}")
        self.feature_layers = tuple(layers)

    # ------------------------------------------------------------------ contract
    def groups(self):
        g = {"enc": self.enc, "cls": self.cls, "dec": self.dec}
        if self.aux is not None:
            g["aux"] = self.aux
        if self.disc is not None:
            g["disc"] = self.disc
        return g

    def phases(self):
        c = self.cfg
        vec_groups = ("enc", "cls") + (("aux",) if self.aux is not None else ())
        adversarial = self.disc is not None
        # the decoder's update first: it hands its fakes, detached, to the discriminator's update
        # on the same batch, which would otherwise decode the same codes with the same weights
        dec_steps = (Step("dec", ("dec",), self.dec_loss, through=("disc",) if adversarial else ()),)
        dec_steps += (Step("disc", ("disc",), self.disc_loss),) if adversarial else ()
        return [
            Phase("vec", (Step("vec", vec_groups, self.vec_loss, data="labeled"),),
                  epochs=c.vec_epochs, figures=self.aux is not None),
            Phase("decoder", dec_steps, frozen=vec_groups, epochs=c.decoder_epochs),
        ]

    def on_phase_start(self, phase: str) -> None:
        """Step 2 may start from the auxiliary decoder of step 1 (``decoder_init='aux'``)."""
        super().on_phase_start(phase)
        if phase == "decoder" and self.cfg.decoder_init == "aux":
            self.dec.load_state_dict(copy.deepcopy(self.aux.state_dict()))

    # ------------------------------------------------------------------ step 1
    def vec_loss(self, batch: Batch) -> StepOutput:
        c = self.cfg
        x_lab, y_lab = batch.labeled()
        n, n_lab = len(batch.x), len(x_lab)
        unlabeled = batch.y < 0  # (n,)
        consistency = c.consistency_weight > 0 and bool(unlabeled.any())
        # one encoder pass: the mixed batch, the labeled stream (augmented), and for
        # consistency a strong view of the mixed batch's unlabeled images
        x_view, view_ce = self.labeled_view(x_lab, y_lab)
        views = [batch.x, x_view]
        if consistency:
            views.append(strong(batch.x[unlabeled], c.augment, self.info.unit_range))
        mu, logvar = self.enc(torch.cat(views))  # (n + n_lab [+ n_u], latent_dim) each
        z = losses.reparameterize(mu, logvar)
        logits = self.cls(z if c.cls_input == "z" else mu)
        y = torch.cat([batch.y, y_lab])
        kl = losses.gaussian_kl(mu[:n], logvar[:n])  # (n,): the mixed batch only
        # CE averages over every labeled example present (the mixed batch's and the stream's)
        ce = torch.cat([losses.masked_cross_entropy(logits[:n], batch.y), view_ce(logits[n:n + n_lab])])
        cls_ce = losses.labeled_mean(ce, y)
        loss = self.weight("kl_weight", batch) * kl.mean() + self.weight("lambda_cls", batch) * cls_ce
        logs = {"kl": kl.mean().detach(), "cls_ce": cls_ce.detach()}
        if c.entropy_weight:
            only_unlabeled = torch.where(unlabeled, 0, -1)  # labeled_mean over the unlabeled rows
            ent = losses.labeled_mean(losses.entropy(logits[:n]), only_unlabeled)
            loss = loss + self.weight("entropy_weight", batch) * ent
            logs["entropy"] = ent.detach()
        if consistency:
            with torch.no_grad():  # pseudo-labels from the clean view's mean code, as at test time
                target = F.softmax(self.cls(mu[:n][unlabeled]), -1) if self.teacher is None else \
                    F.softmax(self.teacher.call("cls", self.teacher.call("enc", batch.x[unlabeled])[0]), -1)
            cons, cons_logs = self.consistency_term(logits[n + n_lab:], target, batch)
            loss = loss + cons
            logs.update(cons_logs)
        graph, graph_logs = self.graph_term(logits[:n], batch)
        loss = loss + graph
        logs.update(graph_logs)
        if self.aux is not None:
            recon = self.nll(self.aux(z[:n]), batch.x)
            loss = loss + self.weight("vec_recon_weight", batch) * recon.mean()
            logs["recon"] = recon.mean().detach()
        labeled = y >= 0
        logs["acc"] = (logits[:n + n_lab].argmax(1)[labeled] == y[labeled]).float().mean().detach()
        logs["loss"] = loss.detach()
        return StepOutput(loss, logs)

    # ------------------------------------------------------------------ step 2
    def _codes(self, x: torch.Tensor):
        """Frozen encoder: z ~ q(z|x), the input's hidden features, and prior codes z_p, all
        constants of step 2 (no graph)."""
        with torch.no_grad():
            mu, logvar, feats = self.enc(x, return_features=True)
            z = losses.reparameterize(mu, logvar)
        z_p = self.prior.sample(len(z)) if self.cfg.prior_fakes else None
        return z, [feats[i] for i in self.feature_layers], z_p

    def disc_loss(self, batch: Batch) -> StepOutput:
        x = batch.x

        def decode():  # no decoder update ran on this batch
            z, _, z_p = self._codes(x)
            return [self.to_data_range(self.dec(c)) for c in (z, z_p) if c is not None]

        real_logit, fake_logits, _ = critic_pass(self.disc, x, fakes_for_critic(batch, decode))
        d = torch.stack([losses.gan_d_loss(real_logit, f) for f in fake_logits]).mean(0)
        loss = d.mean()
        return StepOutput(loss, {"d_loss": loss.detach(),
                                 "d_real": torch.sigmoid(real_logit).mean().detach(),
                                 "d_fake": torch.sigmoid(torch.cat(fake_logits)).mean().detach()})

    def dec_loss(self, batch: Batch) -> StepOutput:
        c = self.cfg
        x = batch.x
        n = len(x)
        z, feats_x, z_p = self._codes(x)
        enc = self.frozen(self.enc)  # gradients pass through the encoder to x_hat, not into it
        codes = z if z_p is None else torch.cat([z, z_p])  # one decoder pass for both kinds
        x_logits = self.dec(codes)  # (B [+ B], *shape)
        fakes = self.to_data_range(x_logits)
        mu_all, _, feats_all = enc(fakes, return_features=True)
        mu_hat = mu_all[:n]
        rec = losses.feature_distance(feats_x, [feats_all[i][:n] for i in self.feature_layers],
                                      c.feature_weights, c.feature_reduction)  # (B,)
        if c.pixel_weight:
            rec = rec + self.weight("pixel_weight", batch) * self.nll(x_logits[:n], x)
        lat = losses.squared_error(mu_hat, z, c.latent_reduction)  # (B,)
        if z_p is not None:
            lat = 0.5 * (lat + losses.squared_error(mu_all[n:], z_p, c.latent_reduction))
        loss = rec + self.weight("gamma", batch) * lat
        logs = {"rec": rec.mean().detach(), "latent": lat.mean().detach()}
        if self.disc is not None:
            hand_fakes(batch, list(fakes.split(n)))  # for disc_loss
            adv = losses.gan_g_loss(self.disc(fakes)[0]).view(-1, n).mean(0)  # (B,): mean over kinds
            loss = loss + self.weight("beta", batch) * adv
            logs["adv"] = adv.mean().detach()
        loss = loss.mean()
        logs["loss"] = loss.detach()
        return StepOutput(loss, logs)

    # ------------------------------------------------------------------ inference
    def _predict_proba(self, x):
        """p(y | x) = softmax(Cls(mu(x)))."""
        return F.softmax(self.cls(self.enc(x)[0]), dim=-1)

    def _predict_proba_latent(self, z):
        return F.softmax(self.cls(z), dim=-1)

    def sample_codes(self, n, y, generator):
        """Prior draws; with labels y (n,): from the class's own Gaussian with
        ``model.sampler class-gaussian``, else the draws the classifier is surest are of class
        y[i] (the best of 32 candidates per requested image)."""
        if y is None or self.prior.num_modes:
            return self.prior.sample(n, y, generator=generator)
        cand = self.prior.sample(32 * n, generator=generator)
        logp = F.log_softmax(self.cls(cand), -1)  # (32n, K)
        z = torch.empty(n, self.cfg.latent_dim, device=cand.device)
        for k in y.unique():
            rows = (y == k).nonzero().squeeze(1)
            z[rows] = cand[logp[:, k].topk(len(rows)).indices]
        return z
