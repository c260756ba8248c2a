"""What the semi-supervised families share (``ssavae``, ``m2``, ``aae_semi`` and its variants):
the config fields of how the unlabeled examples teach the classifier, and the mixin that
implements them once: the labeled view (augmentation, mixup), pseudo-label consistency
(FixMatch), labels propagated over the graph of the training codes (propagation.py) and the
mean teacher (``model.ema``). docs/semisup.md explains each and how the defaults were chosen.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Iterator, Optional

import torch
import torch.nn.functional as F

from .. import losses
from ..data.augment import Augment, augment, mixup
from ..fields import opt
from .base import GenerativeModel, ModelConfig
from .contract import Batch, Step
from .propagation import EMAWeights, GraphLabels, features_in_batches


@dataclass
class SemiSupervisedConfig(ModelConfig):
    """Fields of the families that learn a classifier from few labels and many unlabeled
    examples (``ssavae``, ``m2``, ``aae_semi``): how the unlabeled ones teach it."""

    augment: Augment = opt("shift", "view of the labeled images in the classification term")
    consistency_weight: float = opt(1.0, "CE of a strong view of the unlabeled images against the classifier's "
                                         "confident pseudo-labels (FixMatch's consistency; docs/semisup.md)", ge=0)
    consistency_threshold: float = opt(0.95, "confidence a pseudo-label needs (FixMatch's tau)", ge=0, le=1)
    graph_weight: float = opt(0.0, "CE of the unlabeled images against labels propagated over a k-NN graph of the "
                                   "training set's codes, weighted by certainty and class balance (Iscen et al. 2019; "
                                   "propagation.py)", ge=0)
    graph_k: int = opt(20, "neighbours per example in the graph", ge=1)
    graph_alpha: float = opt(0.99, "diffusion: (I - alpha W_n) Z = Y", gt=0, lt=1)
    graph_start: int = opt(1, "the first epoch of the classifying phase whose labels it propagates", ge=0)
    graph_inputs: bool = opt(False, "the input vectors join the codes in the graph (tables)")
    mixup: float = opt(0.0, "mixup of the labeled view (Beta(mixup, mixup) blends of labeled rows and of their one-hot "
                            "labels); 0: off", ge=0)
    ema: float = opt(0.0, "decay of an exponential moving average of the classifier's weights (mean teacher): it gives "
                          "the consistency term's pseudo-labels, and the classifier ends its phase with the averaged "
                          "weights; 0: off", ge=0, lt=1)


class SemiSupervised(GenerativeModel):
    """Base of the semi-supervised families (``class SSAVAE(SemiSupervised)``; a family with
    another base mixes it in first: ``class SemiAAE(SemiSupervised, AAECore)``). A family names
    ``graph_phase`` (the phase that trains its classifier: the labels are propagated at the start
    of its epochs, the mean teacher follows it) and ``teacher_groups`` (the groups that classify),
    and calls ``labeled_view``, ``consistency_term`` and ``graph_term`` in its classification loss."""

    graph_phase: ClassVar[Optional[str]] = None
    teacher_groups: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: SemiSupervisedConfig, info, parts=None):
        super().__init__(cfg, info, parts)
        self.graph = GraphLabels(cfg.graph_k, cfg.graph_alpha) if self.graph_phase and cfg.graph_weight > 0 else None
        self.teacher: Optional[EMAWeights] = None  # built by check_parts_used (model.ema)

    def check_parts_used(self) -> None:
        super().check_parts_used()
        if self.teacher_groups and self.cfg.ema > 0 and self.has_classifier:
            self.teacher = EMAWeights({g: self.groups()[g] for g in self.teacher_groups}, self.cfg.ema)

    def after_update(self, step: Step) -> None:
        """The mean teacher follows every update of the classifier's groups."""
        if self.teacher is not None and set(step.groups) & set(self.teacher_groups):
            self.teacher.update()

    def on_phase_start(self, phase: str) -> None:
        """The mean teacher starts at the weights ``graph_phase`` begins with."""
        super().on_phase_start(phase)
        if phase == self.graph_phase and self.teacher is not None:
            self.teacher.reset()

    def on_phase_end(self, phase: str, data: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]) -> None:
        """The classifier takes the mean teacher's weights after ``graph_phase`` (then the base's
        ex-post sampler, which may read the classifier)."""
        if phase == self.graph_phase and self.teacher is not None:
            self.teacher.copy_to()
        super().on_phase_end(phase, data)

    def on_epoch_start(self, phase: str, epoch: int,
                       data: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]) -> dict:
        """Refreshes the propagated labels (``model.graph_weight``) in the epochs of
        ``graph_phase`` from ``model.graph_start`` on; returns what to log."""
        if self.graph is None or phase != self.graph_phase or epoch < self.cfg.graph_start:
            return {}
        was_training = self.training
        self.eval()
        with torch.no_grad():
            feats, y = features_in_batches(self.graph_features, data(), self.cfg.graph_inputs)
        self.train(was_training)
        return self.graph.refresh(feats, y, self.num_classes)

    def labeled_view(self, x_lab: torch.Tensor, y_lab: torch.Tensor
                     ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """The labeled rows' training view (``model.augment``, then ``model.mixup``) and the
        per-example CE (B,) of its logits against the labels (blended with mixup)."""
        x = augment(x_lab, self.cfg.augment)
        if not self.cfg.mixup or len(x) < 2:
            return x, lambda logits: F.cross_entropy(logits, y_lab, reduction="none")
        x, partner, lam = mixup(x, self.cfg.mixup)
        return x, lambda logits: losses.mixed_cross_entropy(logits, y_lab, y_lab[partner], lam.to(logits.dtype))

    def graph_features(self, x: torch.Tensor) -> torch.Tensor:
        """What the propagation's graph compares (B, D): by default the code."""
        return self._encode(x, None)

    def graph_term(self, logits: torch.Tensor, batch: Batch,
                   rows: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, dict]:
        """``graph_weight`` times the certainty- and balance-weighted CE of ``logits`` against
        the propagated labels (propagation.py), and its log; zero and no log before the first
        refresh or without ``model.graph_weight``. ``logits``: (B, K) of the mixed batch, or of
        its rows selected by the mask ``rows`` (B,)."""
        if self.graph is None or not self.graph.ready or batch.index is None:
            return logits.new_zeros(()), {}
        term = self.graph.loss(logits, batch.index if rows is None else batch.index[rows.to(batch.index.device)])
        return self.weight("graph_weight", batch) * term, {"graph": term.detach()}

    def consistency_term(self, strong_logits: torch.Tensor, target: torch.Tensor,
                         batch: Batch) -> tuple[torch.Tensor, dict]:
        """Pseudo-label consistency (FixMatch; the semi-supervised families' ``consistency_weight``
        and ``consistency_threshold``): the weighted mean CE of a strong view's logits (n, K)
        against the confident argmax of the clean view's probabilities ``target`` (n, K, no
        gradient), and its logs (the term, the fraction of confident pseudo-labels)."""
        tau = self.cfg.consistency_threshold
        cons = losses.pseudo_label_ce(strong_logits, target, tau).mean()
        confident = (target.detach().max(-1).values >= tau).float().mean()
        return self.weight("consistency_weight", batch) * cons, {"consistency": cons.detach(),
                                                                 "confident": confident}
