"""The supervised-only baseline: the VEC's networks without the VAE.

    h = Trunk(x);  mu = W h;  p(y | x) = softmax(Cls(mu))
    L = CE(Cls(mu(augment(x_lab))), y_lab)          (labeled stream only)

The encoder trunk with its mean head and the classifier MLP on the code are the parts SSAVAE's
VEC uses (same sizes from the same config fields), trained on the labeled examples alone and with
the same augmentation of them (``augment``), so a semi-supervised model that beats it does so
through its unlabeled images. Not a generative model: it encodes (its codes are the means) and
classifies; decode, reconstruct and sample do not apply.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import losses
from ..data.augment import Augment, augment
from ..nets import Classifier, Trunk
from ..registry import register
from .base import Batch, GenerativeModel, ModelConfig, Phase, Step, StepOutput
from ..fields import opt


@dataclass
class ClassifierConfig(ModelConfig):
    latent_dim: int = opt(100, "the code between trunk and classifier, as in SSAVAE's VEC")
    cls_hidden: tuple[int, ...] = opt((256, 256), "the classifier MLP on the code")
    augment: Augment = opt("shift", "view of the labeled images (give SSAVAE the same)")


@register("classifier")
class SupervisedClassifier(GenerativeModel):
    """Supervised-only baseline: the VEC's encoder and classifier on the labeled examples alone."""

    tiny = {"data": {"labels_per_class": 8}}

    Config = ClassifierConfig
    generative = False
    has_classifier = True

    def __init__(self, cfg: ClassifierConfig, info, parts=None):
        super().__init__(cfg, info, parts)
        self.enc = self.build_part("enc", lambda: Trunk(info.shape, cfg.net_spec(), {"mu": cfg.latent_dim}))
        self.cls = self.build_part("cls", lambda: Classifier.on_codes(
            cfg.latent_dim, info.num_classes, cfg.cls_hidden))
        self.check_parts_used()

    def groups(self):
        return {"enc": self.enc, "cls": self.cls}

    def phases(self):
        return [Phase("train", (Step("cls", ("enc", "cls"), self.cls_loss, data="labeled"),),
                      figures=False)]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls(self.enc(x)["mu"])

    def cls_loss(self, batch: Batch) -> StepOutput:
        x_lab, y_lab = batch.labeled()
        logits = self.logits(augment(x_lab, self.cfg.augment))  # (B_lab, K)
        ce = losses.masked_cross_entropy(logits, y_lab).mean()
        acc = (logits.argmax(1) == y_lab).float().mean()
        return StepOutput(ce, {"loss": ce.detach(), "cls_ce": ce.detach(), "acc": acc.detach()})

    def _predict_proba(self, x):
        return F.softmax(self.logits(x), dim=-1)

    def _encode(self, x, y):
        return self.enc(x)["mu"]
