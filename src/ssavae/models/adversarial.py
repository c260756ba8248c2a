"""Pieces the adversarial families share (SSAVAE's step 2, VAE-GAN, CVAE+CGAN): how a
discriminator update gets its fakes, one critic pass over reals and fakes, and the
equilibrium gate of VAE-GAN. The GAN losses themselves live in ``losses.py``.

The generator's update of a batch runs before the discriminator's and leaves its fakes, detached,
in ``batch.shared["fakes"]``: the discriminator then sees the generator's images from before this
batch's generator update (the same weights it would decode them with) without decoding twice.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .base import Batch


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

