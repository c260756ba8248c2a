"""All probability and GAN math of the project, as pure per-example functions.

Conventions: every function returns a ``(B,)`` tensor in nats, summed over pixels /
latent dimensions unless ``reduction="mean"`` asks for the mean over them; the model averages over
the batch exactly once. Decoders hand logits in; probabilities appear only at inference. Each
function is tested against an oracle in ``tests/test_losses.py``.
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F

Reduction = Literal["sum", "mean"]
LOG_2PI = math.log(2 * math.pi)


def _reduce(t: torch.Tensor, reduction: Reduction = "sum") -> torch.Tensor:
    """(B, ...) -> (B,), summing or averaging every non-batch dimension."""
    t = t.flatten(1) if t.dim() > 1 else t.unsqueeze(1)  # also for B = 0
    if reduction == "sum":
        return t.sum(1)
    if reduction == "mean":
        return t.mean(1)
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


# ---------------------------------------------------------------------------- Gaussians


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I) (Kingma & Welling 2014, eq. 10)."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per example, (B, D) -> (B,) (K&W appendix B)."""
    return 0.5 * _reduce(mu.pow(2) + logvar.exp() - 1.0 - logvar)


def gaussian_kl_between(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """KL(q || p) between diagonal Gaussians, per example (CVAE's KL to a learned prior)."""
    return 0.5 * _reduce(
        logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1.0
    )


def log_normal(z: torch.Tensor, mu: torch.Tensor | None = None,
               logvar: torch.Tensor | None = None) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) per example, summed over dimensions; standard if None."""
    mu = torch.zeros_like(z) if mu is None else mu
    logvar = torch.zeros_like(z) if logvar is None else logvar
    return -0.5 * _reduce(LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp())


# ---------------------------------------------------------------------------- likelihoods


def bernoulli_nll(x_logits: torch.Tensor, x: torch.Tensor, reduction: Reduction = "sum",
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """-log Bernoulli(x | sigmoid(x_logits)); x in [0, 1] (continuous x: the usual relaxation).
    ``weight`` (broadcast to x) scales each unit's term first: a 0/1 mask scores some pixels only."""
    t = F.binary_cross_entropy_with_logits(x_logits, x, reduction="none")
    return _reduce(t if weight is None else t * weight, reduction)


def gaussian_nll(mean: torch.Tensor, x: torch.Tensor, logvar: torch.Tensor | float = 0.0,
                 reduction: Reduction = "sum", weight: torch.Tensor | None = None) -> torch.Tensor:
    """-log N(x | mean, exp(logvar)) per example; logvar may be a tensor or a fixed float;
    ``weight`` as in ``bernoulli_nll``."""
    logvar = torch.as_tensor(logvar, dtype=mean.dtype, device=mean.device)
    t = 0.5 * (LOG_2PI + logvar + (x - mean).pow(2) / logvar.exp())
    return _reduce(t if weight is None else t * weight, reduction)


def squared_error(a: torch.Tensor, b: torch.Tensor, reduction: Reduction = "sum") -> torch.Tensor:
    """||a - b||^2 per example (sum) or its mean over dimensions."""
    return _reduce((a - b).pow(2), reduction)


# ---------------------------------------------------------------------------- classification


def masked_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CE(logits, y) per example, 0 where y = -1 (unlabeled). (B, K), (B,) -> (B,)."""
    labeled = y >= 0
    ce = F.cross_entropy(logits, y.clamp(min=0), reduction="none")
    return torch.where(labeled, ce, torch.zeros_like(ce))


def mixed_cross_entropy(logits: torch.Tensor, y: torch.Tensor, y_partner: torch.Tensor,
                        lam: torch.Tensor) -> torch.Tensor:
    """CE of mixup rows (Zhang et al. 2018), per example: ``lam CE(logits, y) + (1 - lam)
    CE(logits, y_partner)``, i.e. CE against the blended one-hot targets. (B, K), (B,) x 3 -> (B,)."""
    return lam * F.cross_entropy(logits, y, reduction="none") \
        + (1 - lam) * F.cross_entropy(logits, y_partner, reduction="none")


def labeled_mean(per_example: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over the labeled examples; exactly 0 (and finite) for a batch with none."""
    labeled = (y >= 0).to(per_example.dtype)
    return (per_example * labeled).sum() / labeled.sum().clamp(min=1.0)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(Cat(softmax(logits))) per example, (B, K) -> (B,)."""
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def marginal_kl_to_uniform(probs: torch.Tensor) -> torch.Tensor:
    """KL(mean_b probs_b || Uniform(K)) = log K - H(batch marginal) for (B, K) probabilities, a
    scalar: 0 when the batch uses every class equally, log K when it uses one (CatGAN's
    marginal entropy term)."""
    marginal = probs.mean(0)
    return math.log(probs.shape[-1]) + (marginal * marginal.clamp(min=1e-12).log()).sum()


def pseudo_label_ce(logits: torch.Tensor, probs_target: torch.Tensor,
                    threshold: float) -> torch.Tensor:
    """Consistency by confident pseudo-labels (FixMatch, Sohn et al. 2020, eq. 4), per example:
    ``1[max p >= threshold] * CE(logits, argmax p)``. ``probs_target`` (B, K) come from another
    view of the same inputs and carry no gradient; ``logits`` (B, K) are the perturbed view's."""
    conf, pseudo = probs_target.detach().max(-1)
    ce = F.cross_entropy(logits, pseudo, reduction="none")
    return torch.where(conf >= threshold, ce, torch.zeros_like(ce))


# ---------------------------------------------------------------------------- GANs


def gan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator: -log D(real) - log(1 - D(fake)), per example (Goodfellow et al. 2014).

    Pass the fakes' logits computed from *detached* images: the discriminator step must not
    push gradients into the generator.
    """
    return F.softplus(-_reduce(real_logits)) + F.softplus(_reduce(fake_logits))


def gan_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator, non-saturating form: -log D(fake) = softplus(-logit), per example."""
    return F.softplus(-_reduce(fake_logits))


def class_gan_d_loss(real_logits: torch.Tensor, y_real: torch.Tensor,
                     fake_logits: torch.Tensor) -> torch.Tensor:
    """(K+1)-way discriminator (Salimans et al. 2016; the poster's CVAE+CGAN), per example.

    Logits (B, K+1): outputs 0..K-1 are "real, class k", output K is "fake". A real image with a
    label must be classified as its class; an unlabeled real one (y = -1) only as real, i.e.
    ``-log sum_{k<K} p_k``; a generated image (from *detached* images) as fake.
    """
    k = real_logits.shape[1] - 1
    labeled = y_real >= 0
    ce_real = F.cross_entropy(real_logits, y_real.clamp(min=0), reduction="none")
    not_fake = torch.logsumexp(real_logits, 1) - torch.logsumexp(real_logits[:, :k], 1)
    fake = torch.full((fake_logits.shape[0],), k, dtype=torch.long, device=fake_logits.device)
    return torch.where(labeled, ce_real, not_fake) + F.cross_entropy(fake_logits, fake, reduction="none")


def class_gan_g_loss(fake_logits: torch.Tensor, y_fake: torch.Tensor) -> torch.Tensor:
    """Generator of a (K+1)-way GAN: its image of class y must be classified "real, class y"."""
    return F.cross_entropy(fake_logits, y_fake, reduction="none")


# ---------------------------------------------------------------------------- features


def feature_distance(
    feats_a: Sequence[torch.Tensor],
    feats_b: Sequence[torch.Tensor],
    weights: Sequence[float] | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """sum_l w_l * reduce_units (h_l(a) - h_l(b))^2 per example.

    The "consistency principle for deep features" of SSAVAE (Zemouri 2020, sec. 3.3.1) and the
    learned similarity of VAE-GAN (Larsen et al. 2016, eq. 6 with a fixed variance).
    """
    if len(feats_a) != len(feats_b):
        raise ValueError(f"feature lists differ in length: {len(feats_a)} vs {len(feats_b)}")
    weights = [1.0] * len(feats_a) if weights is None else list(weights)
    if len(weights) != len(feats_a):
        raise ValueError(f"{len(weights)} layer weights for {len(feats_a)} feature layers")
    total = feats_a[0].new_zeros(feats_a[0].shape[0])
    for w, a, b in zip(weights, feats_a, feats_b):
        if w:
            total = total + w * squared_error(a, b, reduction)
    return total


# ---------------------------------------------------------------------------- bounds


def iwae_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """log (1/k) sum_i w_i from log w of shape (k, B) -> (B,) (Burda et al. 2016, eq. 8)."""
    k = log_weights.shape[0]
    return torch.logsumexp(log_weights, dim=0) - math.log(k)


def m2_unlabeled_bound(cls_logits: torch.Tensor, per_class_loss: torch.Tensor) -> torch.Tensor:
    """U(x) = sum_y q(y|x) L(x, y) - H(q(y|x)) (Kingma et al. 2014, eq. 7), enumerating classes.

    cls_logits: (B, K); per_class_loss: (B, K), the labeled bound L(x, y) for every class y.
    """
    q = F.softmax(cls_logits, dim=-1)
    return (q * per_class_loss).sum(-1) - entropy(cls_logits)
