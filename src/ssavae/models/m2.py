"""M2, the semi-supervised VAE (Kingma et al. 2014; the poster's "SSL VAE").

Generative story::

    p(y) = Cat(1/K),  p(z) = N(0, I),  p(x | y, z) = Bernoulli(sigmoid(Dec(z, onehot(y))))
    q(y | x) = softmax(Cls(x))                the classifier, the model's predictor
    q(z | x, y) = N(mu(x, y), diag sigma^2(x, y))

Per labeled example and per unlabeled one (all K labels enumerated in one batched pass of the
encoder and decoder, no loop over classes)::

    L(x, y) = -log p(x | y, z) + KL(q(z|x,y) || N(0, I)) - log p(y),   z ~ q(z|x,y)
    U(x)    = sum_y q(y|x) L(x, y) - H(q(y|x))

and the loss of a batch is the mean of L over its labeled examples (the mixed batch's labeled
rows and the labeled stream) and of U over its unlabeled ones, plus ``alpha`` times the mean
classification error ``CE(q(y | augment(x_lab)), y_lab)`` (Kingma et al.: alpha = 0.1 N / N_labeled
per labeled example, 5.5 for 1,000 labels of 55,000 images; the default 5). The classifier sees
the labeled images under the ``classifier`` baseline's augmentation, so a gain over that
baseline comes from the unlabeled images.

Codes (``encode``) are (onehot(y), z), (B, K + latent_dim), with y the predicted class, so that
``reconstruct`` keeps it and ``decode`` reads both; ``sample(n, y)`` draws class y.

``m2_gan`` (the poster's "SSL with GANs") adds the (K+1)-way conditional critic of ``cvae_cgan``
(``adversarial.ClassCritic``) on Dec(z_p, y_p): the bound trains the classifier and the encoder
(through the decoder), the decoder takes the bound's decoder terms plus ``adv_weight`` times the
critic's generator term, and the critic learns from every real image and the decoder's fakes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import losses
from ..data.augment import strong
from ..nets import Classifier, Decoder, GaussianEncoder, Trunk, Upsample
from ..registry import register
from .adversarial import ClassCritic
from .base import Batch, Phase, Step, StepOutput
from .semisup import SemiSupervised, SemiSupervisedConfig
from .vae import importance_weighted
from ..fields import opt


@dataclass
class M2Config(SemiSupervisedConfig):
    latent_dim: int = opt(20, "z")
    upsample: Upsample = opt("resize", "")
    alpha: float = opt(5.0, "weight of the classification error on labeled examples (schedulable)", ge=0)
    consistency_weight: float = opt(0.0, "0: Kingma's M2 (the shared term is not yet validated here)")
    cls_code: int = opt(100, "the classifier's network: the classifier baseline's (trunk, 100, MLP)")
    cls_hidden: tuple[int, ...] = opt((256, 256), "the classifier MLP on the code")

    def validate(self) -> None:
        super().validate()
        if self.sampler != "prior":
            raise ValueError("m2 samples its own p(y) p(z): leave model.sampler at 'prior'")


class CodeClassifier(torch.nn.Module):
    """q(y | x): the ``classifier`` baseline's network (a trunk to a code, an MLP on the code)."""

    def __init__(self, info, cfg: M2Config):
        super().__init__()
        self.trunk = Trunk(info.shape, cfg.net_spec(), {"code": cfg.cls_code})
        self.mlp = Classifier.on_codes(cfg.cls_code, info.num_classes, cfg.cls_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.trunk(x)["code"])


@register("m2")
class M2(SemiSupervised):
    """Semi-supervised VAE M2: classifier q(y|x), encoder q(z|x,y), decoder p(x|y,z)."""

    tiny = {"model": {"latent_dim": 4}, "data": {"labels_per_class": 8}}

    Config = M2Config
    has_classifier = True
    has_likelihood = True
    class_sampling = True
    graph_phase = "train"
    teacher_groups = ("cls",)

    def __init__(self, cfg: M2Config, info, parts=None):
        super().__init__(cfg, info, parts)
        spec, k = cfg.net_spec(), info.num_classes
        self.cls = self.build_part("cls", lambda: CodeClassifier(info, cfg))
        self.enc = self.build_part("enc", lambda: GaussianEncoder(info.shape, cfg.latent_dim, spec, cond_dim=k))
        self.dec = self.build_part("dec", lambda: Decoder(info.shape, cfg.latent_dim, spec, cond_dim=k))
        self.build_extra()
        self.check_parts_used()

    def build_extra(self) -> None:
        """Parts a variant adds (``m2_gan``: its critic)."""

    def groups(self):
        return {"cls": self.cls, "enc": self.enc, "dec": self.dec}

    def phases(self):
        return [Phase("train", (Step("m2", ("cls", "enc", "dec"), self.m2_loss, data="labeled"),))]

    @property
    def code_dim(self) -> int:
        return self.num_classes + self.cfg.latent_dim

    # ------------------------------------------------------------------ the bound
    def per_class_bound(self, x: torch.Tensor) -> torch.Tensor:
        """L(x, y) for every class y, (B, K): one pass over the B*K pairs (x_i, y)."""
        k = self.num_classes
        return self.pair_bound(x, torch.arange(k, device=x.device).repeat(len(x)), k).view(-1, k)

    def pair_bound(self, x: torch.Tensor, y: torch.Tensor, repeats=None) -> torch.Tensor:
        """L(x, y) per pair, (P,), one z ~ q(z | x, y) each. ``repeats`` (an int or one count per
        image): image i pairs with the next ``repeats[i]`` labels of y (P of them in all), its
        encoder body read once (``Trunk.features``); None: one label per image."""
        cond = self.one_hot(y)
        mu, logvar = self.enc(x, cond, repeats=repeats)
        target = x if repeats is None else x.repeat_interleave(repeats, 0)
        recon = self.nll(self.dec(losses.reparameterize(mu, logvar), cond), target)
        return recon + losses.gaussian_kl(mu, logvar) + math.log(self.num_classes)

    def class_pairs(self, x_lab, y_lab, x_u):
        """(images, labels, repeats) of ``pair_bound`` for the labeled pairs and every (unlabeled
        image, class) pair, labeled first, image i of x_u with class y at row n_l + i*K + y."""
        k, dev = self.num_classes, x_u.device
        repeats = torch.cat([torch.ones(len(x_lab), dtype=torch.long, device=dev),
                             torch.full((len(x_u),), k, dtype=torch.long, device=dev)])
        y = torch.cat([y_lab, torch.arange(k, device=dev).repeat(len(x_u))])
        return torch.cat([x_lab, x_u]), y, repeats

    def m2_loss(self, batch: Batch) -> StepOutput:
        x_lab, y_lab = self.labeled_examples(batch)
        x_u = batch.x[batch.y < 0]
        n_l, n_u, k = len(x_lab), len(x_u), self.num_classes
        consistency = self.cfg.consistency_weight > 0 and n_u > 0
        # one classifier pass (the labeled images augmented, the unlabeled ones, for consistency
        # a strong view of them) and one encoder/decoder pass over the labeled pairs and every
        # (unlabeled image, class) pair
        x_view, view_ce = self.labeled_view(x_lab, y_lab)
        views = [x_view, x_u]
        if consistency:
            views.append(strong(x_u, self.cfg.augment, self.info.unit_range))
        logits = self.cls(torch.cat(views))
        pairs = self.pair_bound(*self.class_pairs(x_lab, y_lab, x_u))
        bound_l = pairs[:n_l]  # (n_l,)
        bound_u = losses.m2_unlabeled_bound(logits[n_l:n_l + n_u], pairs[n_l:].view(n_u, k))  # (n_u,)
        bound = torch.cat([bound_l, bound_u]).mean()
        ce = view_ce(logits[:n_l]).mean()
        loss = bound + self.weight("alpha", batch) * ce
        logs = {"loss": loss.detach(), "bound": bound.detach(), "bound_labeled": bound_l.mean().detach(),
                "cls_ce": ce.detach(), "acc": (logits[:n_l].argmax(1) == y_lab).float().mean().detach()}
        if n_u:
            logs["bound_unlabeled"] = bound_u.mean().detach()
        if consistency:
            with torch.no_grad():
                target = F.softmax(logits[n_l:n_l + n_u] if self.teacher is None else self.teacher.call("cls", x_u), -1)
            cons, cons_logs = self.consistency_term(logits[n_l + n_u:], target, batch)
            loss = loss + cons
            logs.update(cons_logs, loss=loss.detach())
        graph, graph_logs = self.graph_term(logits[n_l:n_l + n_u], batch, batch.y < 0)
        if graph_logs:
            loss = loss + graph
            logs.update(graph_logs, loss=loss.detach())
        return StepOutput(loss, logs)

    def graph_features(self, x):
        """The classifier's code (``cls_code``): M2's z is the style, not the class."""
        return self.cls.trunk(x)["code"]

    # ------------------------------------------------------------------ inference
    def _predict_proba(self, x):
        return F.softmax(self.cls(x), -1)

    def _encode(self, x, y):
        y = self._predict_proba(x).argmax(1)
        cond = self.one_hot(y)
        return torch.cat([cond, self.enc(x, cond)[0]], 1)

    def _decode(self, code, y):
        k = self.num_classes
        return self.dec(code[:, k:], code[:, :k])

    def sample_codes(self, n, y, generator):
        if y is None:
            y = torch.randint(self.num_classes, (n,), generator=generator)
        z = self.prior.sample(n, None, generator)
        return torch.cat([self.one_hot(torch.as_tensor(y).to(z.device)), z], 1)

    def _negative_elbo(self, x):
        """U(x): the unlabeled bound with q(y | x), in nats."""
        return losses.m2_unlabeled_bound(self.cls(x), self.per_class_bound(x))

    def _log_likelihood(self, x, k, chunk: int = 100):
        """log p(x) = log sum_y p(y) p(x | y), each p(x | y) by importance sampling from
        q(z | x, y) with k // K samples (Burda et al. 2016): every class is summed exactly, so no
        class q(y | x) deems unlikely is left out of the estimate."""
        n_cls, b = self.num_classes, len(x)
        xk = x.repeat_interleave(n_cls, 0)  # (B*K, ...): image i with class y at row i*K + y
        cond = self.one_hot(torch.arange(n_cls, device=x.device).repeat(b))
        mu, logvar = self.enc(x, cond, repeats=n_cls)
        log_px_y = importance_weighted(self, xk, mu, logvar, max(1, k // n_cls), max(1, chunk // n_cls),
                                       lambda z, n: self.dec(z, cond.repeat(n, 1)))
        return torch.logsumexp(log_px_y.view(b, n_cls), 1) - math.log(n_cls)  # log sum_y p(y) p(x|y)


@dataclass
class M2GANConfig(M2Config):
    adv_weight: float = opt(1.0, "the critic's generator term in the decoder's loss (schedulable)", ge=0)
    disc_spectral_norm: bool = opt(True, "spectral normalization in the critic")



@register("m2_gan")
class M2GAN(ClassCritic, M2):
    """M2 whose decoder is also a conditional GAN generator against a (K+1)-way critic."""


    Config = M2GANConfig

    def build_extra(self) -> None:
        self.build_critic()

    def groups(self):
        return {**super().groups(), "disc": self.disc}

    def phases(self):
        return [Phase("train", (
            Step("m2", ("cls", "enc"), self.m2_loss, data="labeled", through=("dec",)),
            Step("dec", ("dec",), self.dec_loss, data="labeled", through=("disc",)),
            Step("disc", ("disc",), self.disc_loss)))]

    def dec_loss(self, batch: Batch) -> StepOutput:
        """The bound's decoder terms (labeled pairs, and every class of the unlabeled images
        weighted by q(y | x), both without gradient to the classifier or the encoder) plus the
        critic's generator term on Dec(z_p, y_p) for a batch of prior draws."""
        x_lab, y_lab = self.labeled_examples(batch)
        x_u = batch.x[batch.y < 0]
        n_l, n_u, k = len(x_lab), len(x_u), self.num_classes
        x_once, y, repeats = self.class_pairs(x_lab, y_lab, x_u)
        x = x_once.repeat_interleave(repeats, 0)
        with torch.no_grad():
            q = F.softmax(self.cls(x_u), -1).reshape(-1)  # (n_u * K,): the weight of each pair
            mu, logvar = self.enc(x_once, self.one_hot(y), repeats=repeats)
            z = losses.reparameterize(mu, logvar)
        z_p, y_p = self.prior.sample(len(batch.x)).to(z.device), \
            torch.randint(0, k, (len(batch.x),), device=z.device)
        out = self.dec(torch.cat([z, z_p]), self.one_hot(torch.cat([y, y_p])))  # one pass
        nll = self.nll(out[:len(x)], x)
        recon = (nll[:n_l].sum() + (q * nll[n_l:]).sum()) / (n_l + n_u)
        adv = self.generator_term(batch, self.to_data_range(out[len(x):]), y_p)
        loss = recon + self.weight("adv_weight", batch) * adv
        return StepOutput(loss, {"loss": loss.detach(), "recon": recon.detach(), "adv": adv.detach()})
