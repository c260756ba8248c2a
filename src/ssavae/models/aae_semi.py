"""Adversarial autoencoders with a categorical code (Makhzani et al. 2016, sections 5-7):
``aae_semi``, ``aae_cluster`` and ``aae_dimred``, on the core of
``aae.py``.

The encoder has two heads on one trunk: y = softmax(logits) over K clusters and a style z. Two
critics push them onto their imposed distributions: y onto the one-hot vectors of Cat(K), z
onto N(0, style_std^2 I). Per batch::

    recon  (Enc, Dec[, heads]): nll(x | Dec(y, z))  [+ head_weight * sum_{i<j} relu(eta - |W_i - W_j|)]
    disc_y (Dis_y):  -log Dis_y(onehot) - log(1 - Dis_y(y.detach()))
    disc_z (Dis_z):  -log Dis_z(z_p)    - log(1 - Dis_z(z.detach()))
    gen    (Enc):    -log Dis_y(y) - log Dis_z(z)                          (through both critics)
                     [+ balance_weight * KL(mean_batch y || Uniform(K))]
    cls    (Enc):    cls_weight * CE(logits(augment(x_lab)), y_lab)        (labeled stream)
                     [+ cls_weight * consistency_weight * 1[max q >= tau] CE(logits(strong(x_u)), argmax q)]

The bracketed term (on by default; ``consistency_weight 0`` is Makhzani's phases alone) is the
VEC's pseudo-label consistency on the mixed batch's unlabeled images, q = q(y | x_u) of the clean
view from the batch's first critic step.

- ``aae_semi``: K = the number of classes, with the classification step; y is q(y | x).
- ``aae_cluster``: no labels used, K clusters (``num_clusters``, 16 by default); the clustering
  metrics of ``ssavae evaluate`` map clusters to classes afterwards.
- ``aae_dimred``: the decoder reads one n-dim representation r = W y + z (learned cluster heads
  W, K x n), with the penalty above keeping heads at least ``head_margin`` apart; with
  ``latent_dim 2`` the codes r are the 2-D map. ``use_labels`` adds the classification step.

Codes (``encode``) are (y, z) concatenated, (B, K + latent_dim), for ``aae_semi`` and
``aae_cluster`` (so ``reconstruct`` keeps the inferred cluster), and r, (B, latent_dim), for
``aae_dimred``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import losses
from ..data.augment import strong
from ..nets import Categorical, CategoricalStyle, Decoder, StandardNormal, Trunk, Upsample
from ..registry import register
from .aae import AAECore, code_critic
from .base import Batch, Step, StepOutput
from .semisup import SemiSupervised, SemiSupervisedConfig
from ..fields import opt


@dataclass
class SemiAAEConfig(SemiSupervisedConfig):
    latent_dim: int = opt(10, "the style z")
    upsample: Upsample = opt("resize", "")
    num_clusters: int = opt(0, "K of the y head; 0: the data's number of classes")
    use_labels: bool = opt(True, "the classification step on the labeled stream (needs K = classes)")
    cls_weight: float = opt(1.0, "weight of the classification step's cross-entropy on the labeled stream")
    cls_lr_scale: float = opt(3.0, "the classification step's learning rate, times train.lr: each step has its own "
                                   "Adam, so cls_weight alone cannot make it outweigh the reconstruction and "
                                   "critic-fooling steps that also move the encoder (validation: 85.9 % at 3 against "
                                   "79.9 % at 1, docs/aae.md)", gt=0)
    style_std: float = opt(1.0, "consistency_weight 0: Makhzani's classification phase alone (validation: docs/aae.md) "
                                "z is pushed onto N(0, style_std^2 I)", gt=0)
    balance_weight: float = opt(0.0, "weight of KL(batch mean of y || uniform) in the encoder's gen step: the cluster "
                                     "usage the y critic asks for, as a direct term (CatGAN's marginal entropy); 0: "
                                     "the critic alone", ge=0)
    disc_hidden: tuple[int, ...] = opt((1000, 1000), "each code critic's MLP (Makhzani: 2 x 1000)")

    def validate(self) -> None:
        super().validate()
        if self.num_clusters < 0 or self.num_clusters == 1:
            raise ValueError(f"model.num_clusters must be 0 (the number of classes) or >= 2, "
                             f"got {self.num_clusters}")
        if not self.disc_hidden:
            raise ValueError("model.disc_hidden needs at least one width")
        if self.sampler != "prior":
            raise ValueError("the categorical AAEs sample their own imposed code distribution: "
                             "leave model.sampler at 'prior'")


@register("aae_semi")
class SemiAAE(SemiSupervised, AAECore):
    """Semi-supervised AAE: a categorical y head (the classifier) and a style z head."""

    tiny = {"model": {"disc_hidden": [32], "latent_dim": 4}, "data": {"labels_per_class": 8}}

    Config = SemiAAEConfig
    has_classifier = True  # both False on an instance that learns without labels
    class_sampling = True
    clusters = True
    graph_phase = "train"
    teacher_groups = ("enc",)

    def __init__(self, cfg: SemiAAEConfig, info, parts=None):
        super().__init__(cfg, info, parts)
        self.k = cfg.num_clusters or info.num_classes
        if self.graph is not None and not cfg.use_labels:
            raise ValueError("model.graph_weight propagates labels: it needs model.use_labels true "
                             "(or set model.graph_weight 0)")
        if cfg.use_labels and self.k != info.num_classes:
            raise ValueError(f"model.use_labels trains y as the class: num_clusters must be 0 or "
                             f"{info.num_classes} (the number of classes), got {cfg.num_clusters}; "
                             "or set model.use_labels false")
        if not cfg.use_labels:  # y is a cluster, not a class
            self.has_classifier = self.class_sampling = False
        spec = cfg.net_spec()
        self.style = StandardNormal(cfg.latent_dim)
        self.enc = self.build_part("enc", lambda: Trunk(info.shape, spec, {"y": self.k, "z": cfg.latent_dim}))
        self.build_decoder()
        self.disc_y = self.build_part("disc_y", lambda: code_critic(self.k, cfg.disc_hidden))
        self.disc_z = self.build_part("disc_z", lambda: code_critic(cfg.latent_dim, cfg.disc_hidden))
        self.onehots = Categorical(self.k)
        self.check_parts_used()

    def build_decoder(self) -> None:
        """Dec(z, y): the style with the cluster probabilities as the decoder's condition."""
        self.dec = self.build_part("dec", lambda: Decoder(
            self.info.shape, self.cfg.latent_dim, self.cfg.net_spec(), cond_dim=self.k))
        self.prior = CategoricalStyle(self.k, self.cfg.latent_dim, self.cfg.style_std)

    def groups(self):
        return {"enc": self.enc, "dec": self.dec, "disc_y": self.disc_y, "disc_z": self.disc_z}

    def critics(self):
        return {"y": "disc_y", "z": "disc_z"}

    def extra_steps(self):
        if not self.cfg.use_labels:
            return ()
        return (Step("cls", ("enc",), self.cls_loss, data="labeled", lr_scale=self.cfg.cls_lr_scale),)

    @property
    def code_dim(self) -> int:
        return self.k + self.cfg.latent_dim

    # ------------------------------------------------------------------ pieces
    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cluster logits (B, K), style z (B, latent_dim))."""
        out = self.enc(x)
        return out["y"], out["z"]

    def codes(self, x):
        logits, z = self.heads(x)
        return {"y": F.softmax(logits, 1), "z": z}

    def code_penalties(self, codes):
        if not self.cfg.balance_weight:
            return {}
        return {"balance": self.cfg.balance_weight * losses.marginal_kl_to_uniform(codes["y"])}

    def real_codes(self, name, y):
        if name == "y":
            return self.onehots.sample(len(y)).to(y.device)
        return self.cfg.style_std * self.style.sample(len(y))

    def critic(self, name, code, y):
        return (self.disc_y if name == "y" else self.disc_z)(code)[0]

    def reconstruction(self, codes: dict[str, torch.Tensor]) -> torch.Tensor:
        """Decoder output for the codes of ``codes``."""
        return self.dec(codes["z"], codes["y"])

    # ------------------------------------------------------------------ losses
    def recon_loss(self, batch: Batch) -> StepOutput:
        loss = self.nll(self.reconstruction(self.codes(batch.x)), batch.x).mean()
        return StepOutput(loss, {"loss": loss.detach()})

    def cls_loss(self, batch: Batch) -> StepOutput:
        c = self.cfg
        x_lab, y_lab = batch.labeled()
        unlabeled = batch.y < 0
        consistency = c.consistency_weight > 0 and bool(unlabeled.any())
        graph = self.graph is not None and self.graph.ready and bool(unlabeled.any())
        x_view, view_ce = self.labeled_view(x_lab, y_lab)
        views = [x_view]
        if consistency:
            views.append(strong(batch.x[unlabeled], c.augment, self.info.unit_range))
        if graph:  # the clean view of the unlabeled images, for the propagated labels
            views.append(batch.x[unlabeled])
        logits = self.heads(torch.cat(views))[0]
        n, n_u = len(x_lab), int(unlabeled.sum())
        ce = view_ce(logits[:n]).mean()
        loss, logs = ce, {"cls_ce": ce.detach(), "acc": (logits[:n].argmax(1) == y_lab).float().mean()}
        if consistency:  # pseudo-labels: the clean view's q(y | x) from this batch's critic step
            if self.teacher is None:
                target = self.fakes(batch)["y"][unlabeled]
            else:  # or from the mean teacher
                with torch.no_grad():
                    target = F.softmax(self.teacher.call("enc", batch.x[unlabeled])["y"], -1)
            cons, cons_logs = self.consistency_term(logits[n:n + n_u], target, batch)
            loss = loss + cons
            logs.update(cons_logs)
        if graph:
            term, graph_logs = self.graph_term(logits[len(logits) - n_u:], batch, unlabeled)
            loss = loss + term
            logs.update(graph_logs)
        return StepOutput(c.cls_weight * loss, logs)

    def graph_features(self, x):
        """The encoder trunk's last hidden layer, which both heads read (the style z is meant
        to hold no class)."""
        return self.enc.features(x)[-1]

    # ------------------------------------------------------------------ inference
    def _cluster_proba(self, x):
        return F.softmax(self.heads(x)[0], 1)

    _predict_proba = _cluster_proba  # with labels, the clusters are the classes

    def _encode(self, x, y):
        c = self.codes(x)
        return torch.cat([c["y"], c["z"]], 1)

    def _decode(self, code, y):
        return self.dec(code[:, self.k:], code[:, :self.k])


@dataclass
class ClusterAAEConfig(SemiAAEConfig):
    num_clusters: int = opt(16, "")
    use_labels: bool = opt(False, "")
    balance_weight: float = opt(20.0, "chosen on a validation split (docs/aae.md): the y critic alone leaves 1 to 4 "
                                      "clusters in use; 20 uses all 16 and all 30 (validation accuracy 57 % and 66 % "
                                      "after 2 epochs), 50 lets the critic win outright at 30 clusters (the guard "
                                      "stops the run)", ge=0)


@register("aae_cluster")
class ClusterAAE(SemiAAE):
    """Unsupervised clustering: ``aae_semi`` with no labels and K clusters (Makhzani 6)."""

    tiny = {"model": {"disc_hidden": [32], "latent_dim": 4, "num_clusters": 6}}

    Config = ClusterAAEConfig
    has_classifier = False
    class_sampling = False

    def __init__(self, cfg: ClusterAAEConfig, info, parts=None):
        if cfg.use_labels:
            raise ValueError("aae_cluster learns without labels: leave model.use_labels false "
                             "(aae_semi is the semi-supervised one)")
        super().__init__(cfg, info, parts)


@dataclass
class DimRedAAEConfig(SemiAAEConfig):
    latent_dim: int = opt(2, "n: the representation's size (2 for maps)")
    head_margin: float = opt(6.0, "eta: cluster heads closer than this are pushed apart")
    head_weight: float = opt(1.0, "weight of the term that pushes close cluster heads apart")


@register("aae_dimred")
class DimRedAAE(SemiAAE):
    """Dimensionality reduction: r = W y + z, cluster heads kept apart (Makhzani 7)."""

    tiny = {"model": {"disc_hidden": [32]}, "data": {"labels_per_class": 8}}

    Config = DimRedAAEConfig

    def build_decoder(self) -> None:
        self.dec = self.build_part("dec", lambda: Decoder(
            self.info.shape, self.cfg.latent_dim, self.cfg.net_spec()))
        self.cluster_heads = self.build_part("cluster_heads",
                                             lambda: nn.Linear(self.k, self.cfg.latent_dim, bias=False))
        with torch.no_grad():  # start the heads on a circle of radius eta: apart from step one
            angle = 2 * torch.pi * torch.arange(self.k) / self.k
            w = torch.zeros(self.cfg.latent_dim, self.k)
            w[0], w[min(1, self.cfg.latent_dim - 1)] = angle.cos(), angle.sin()
            if isinstance(self.cluster_heads, nn.Linear):
                self.cluster_heads.weight.copy_(self.cfg.head_margin * w)

    def groups(self):
        return {**super().groups(), "cluster_heads": self.cluster_heads}

    def recon_step(self) -> Step:
        return Step("recon", ("enc", "dec", "cluster_heads"), self.recon_loss)

    @property
    def code_dim(self) -> int:
        return self.cfg.latent_dim

    def head_penalty(self) -> torch.Tensor:
        """sum over pairs of heads of relu(eta - distance): 0 once all are eta apart."""
        w = self.cluster_heads.weight.t()  # (K, n)
        d = torch.cdist(w, w)
        pairs = torch.triu(torch.ones_like(d, dtype=torch.bool), 1)
        return F.relu(self.cfg.head_margin - d[pairs]).sum()

    def reconstruction(self, codes):
        return self.dec(self.representation(codes))

    def recon_loss(self, batch: Batch) -> StepOutput:
        recon = self.nll(self.reconstruction(self.codes(batch.x)), batch.x).mean()
        penalty = self.head_penalty()
        loss = recon + self.cfg.head_weight * penalty
        return StepOutput(loss, {"loss": recon.detach(), "head_penalty": penalty.detach()})

    def sample_codes(self, n, y, generator):
        if y is None:
            y = torch.randint(self.k, (n,), generator=generator)
        z = self.cfg.style_std * self.style.sample(n, generator=generator)
        return self.cluster_heads(F.one_hot(torch.as_tensor(y).cpu(), self.k).float().to(z.device)) + z

    def representation(self, codes) -> torch.Tensor:
        """r = W y + z, (B, latent_dim)."""
        return self.cluster_heads(codes["y"]) + codes["z"]

    def _encode(self, x, y):
        return self.representation(self.codes(x))

    def _decode(self, code, y):
        return self.dec(code)
